// STARTTLS for smtps (RFC 3207) and implicit TLS (RFC 8314, flag implicit: the handshake before the
// greeting, as on port 465): loads an smtps section's certificate, key and CA certificates once at
// start, and upgrades an accepted node:net socket to TLS in place. Deno has no server-side STARTTLS, so
// the socket's "data" listeners are removed and the socket paused BEFORE it is wrapped in a server-side
// tls.TLSSocket (without the pause the ClientHello is read as plaintext and the handshake never starts:
// denoland/deno#31759). Client certificates are requested and verified here against the CA certificates
// (Deno's server side accepts any client certificate and reports none as authorized, so the chain, its
// signatures and validity dates are checked with node:crypto's X509Certificate); the issuer and subject
// are written as sendmail X writes them for `certissuer:` / `certsubject:` lookups.
// Touches: the TLS files named by the configuration (read once, at start).

import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import type { Socket } from "node:net";
import tls from "node:tls";
import type { SmtpsTlsConfig } from "../../config/types.ts";
import { InputTimeout } from "../smtp_io/input.ts";

/** What a session learns from a completed handshake (for Received:, logs and smar). */
export interface TlsInfo {
  /** e.g. "TLSv1.3". */
  version: string;
  /** e.g. "TLS_AES_256_GCM_SHA384". */
  cipher: string;
  /** Bits of the cipher's key, when known. */
  bits?: number;
  /** The client presented a certificate that one of our CA certificates verified. */
  verified: boolean;
  /** The client certificate's issuer and subject DNs, encoded (encodeDn), when it presented one. */
  issuer?: string;
  subject?: string;
}

/** The TLS side of one smtps section, ready for upgrades. */
export interface TlsService {
  context: tls.SecureContext;
  /** The CA certificates that verify client certificates. */
  cas: X509Certificate[];
  /** Whether client certificates can be verified at all (some CA certificate is configured). */
  requestCert: boolean;
  /** A verified client certificate allows relaying (flag allow_relaying_if_verified). */
  relayIfVerified: boolean;
  /** Ask smar about certissuer:/certsubject: for relaying (flag check_access_map_for_relaying). */
  checkAccessMap: boolean;
  /** RFC 8314 implicit TLS (flag implicit): the handshake comes first, before the greeting. */
  implicit: boolean;
}

/** Reads the files a `tls { }` section names; throws an Error naming the file that could not be read. */
export async function loadTls(c: SmtpsTlsConfig): Promise<TlsService> {
  const read = async (what: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new Error(`Load TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  const cert = await read("certificate", c.cert_file);
  const key = await read("key", c.key_file);
  const ca: string[] = [];
  if (c.CAcert_file) ca.push(await read("CA certificates", c.CAcert_file));
  if (c.CAcert_directory) {
    try {
      for await (const entry of Deno.readDir(c.CAcert_directory)) {
        if (!entry.isFile && !entry.isSymlink) continue;
        const text = await read("CA certificate", join(c.CAcert_directory, entry.name));
        if (text.includes("-----BEGIN CERTIFICATE-----")) ca.push(text);
      }
    } catch (err) {
      if ((err as Error).message.startsWith("Load TLS")) throw err;
      throw new Error(`Load TLS CA directory ${c.CAcert_directory}: ${(err as Error).message}`);
    }
  }
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ cert, key, ...(ca.length > 0 ? { ca } : {}) });
  } catch (err) {
    throw new Error(`Load TLS certificate ${c.cert_file} and key ${c.key_file}: ${(err as Error).message}`);
  }
  const cas = ca.flatMap(pemCertificates).flatMap((pem) => {
    try {
      const x509 = new X509Certificate(pem);
      return x509.ca ? [x509] : [];
    } catch {
      return []; // not a certificate we can use to verify
    }
  });
  return {
    context,
    cas,
    requestCert: cas.length > 0,
    relayIfVerified: c.flags.includes("allow_relaying_if_verified"),
    checkAccessMap: c.flags.includes("check_access_map_for_relaying"),
    implicit: c.flags.includes("implicit"),
  };
}

/**
 * Upgrades `raw` to TLS (after our 220 went out and every plaintext byte the client sent was dropped,
 * or at once on an implicit-TLS listener);
 * resolves with the TLS socket once the handshake completes within `timeoutMs`. On failure the socket is
 * destroyed and the promise rejects.
 */
export function upgrade(raw: Socket, service: TlsService, timeoutMs: number): Promise<tls.TLSSocket> {
  raw.removeAllListeners("data");
  raw.pause();
  const secure = new tls.TLSSocket(raw, {
    isServer: true,
    secureContext: service.context,
    requestCert: service.requestCert,
    rejectUnauthorized: false, // an unverified certificate only means "not verified", never a refusal
  });
  secure.on("error", () => {}); // the session's input reports it; never let it escape
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      secure.off("secure", onSecure);
      secure.off("error", done);
      secure.off("close", onClose);
      secure.off("end", onClose);
      if (!err) return resolve(secure);
      secure.destroy();
      raw.destroy();
      reject(err);
    };
    const onSecure = () => done();
    const onClose = () => done(new Error("TLS handshake: connection closed"));
    const timer = setTimeout(() => done(new InputTimeout("TLS handshake: deadline passed")), timeoutMs);
    secure.once("secure", onSecure);
    secure.once("error", done);
    secure.once("close", onClose);
    // A client gone before the handshake ends (FIN or RST) shows only as "end" here: without this the
    // session would wait for the deadline (io_timeout), holding its slot.
    secure.once("end", onClose);
  });
}

/** What the handshake on `socket` settled: protocol, cipher, and the client certificate if any. */
export function tlsInfo(socket: tls.TLSSocket, service: TlsService, now = new Date()): TlsInfo {
  const cipher = socket.getCipher();
  const info: TlsInfo = {
    version: socket.getProtocol() ?? "TLS",
    cipher: cipher?.standardName ?? cipher?.name ?? "unknown",
    verified: false,
  };
  const peer = socket.getPeerCertificate(true);
  if (peer && peer.raw) {
    try {
      const leaf = new X509Certificate(peer.raw);
      info.issuer = encodeDn(onelineDn(leaf.issuer));
      info.subject = encodeDn(onelineDn(leaf.subject));
      info.verified = verifyChain(leaf, presentedChain(peer), service.cas, now);
    } catch {
      // An unreadable certificate: nothing to look up, nothing verified.
    }
  }
  return info;
}

/** The certificates the client sent above its own (intermediates), in order. */
function presentedChain(peer: tls.DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  let next = peer.issuerCertificate;
  while (next && next.raw && next !== next.issuerCertificate && out.length < 8) {
    out.push(new X509Certificate(next.raw));
    next = next.issuerCertificate;
  }
  return out;
}

/**
 * True when `leaf` is within its validity dates and one of `cas` issued it, directly or through the
 * client's intermediates (each a CA, in date, signed by the next).
 */
export function verifyChain(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  cas: X509Certificate[],
  now = new Date(),
): boolean {
  const current = (x: X509Certificate) => x.validFromDate <= now && now <= x.validToDate;
  const signedBy = (x: X509Certificate, issuer: X509Certificate) =>
    current(issuer) && x.checkIssued(issuer) && x.verify(issuer.publicKey);
  let cert = leaf;
  if (!current(cert)) return false;
  for (let depth = 0; depth <= intermediates.length; depth++) {
    if (cas.some((ca) => signedBy(cert, ca))) return true;
    const next = intermediates.find((x) => x.ca && signedBy(cert, x));
    if (!next) return false;
    cert = next;
  }
  return false;
}

/** Every PEM certificate block in `text`. */
function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** node's multi-line DN (`C=XX\nO=Org\nCN=Name`) in OpenSSL's one-line form (`/C=XX/O=Org/CN=Name`). */
export function onelineDn(multiline: string): string {
  return multiline.split("\n").filter((l) => l !== "").map((l) => `/${l}`).join("");
}

/**
 * Encodes a DN for the access map as sendmail X does: every byte that is not printable ASCII, and each of
 * `< > ( ) " +` and space, becomes `+XX` (upper-case hex), e.g. `/O=smx test` -> `/O=smx+20test`.
 */
export function encodeDn(dn: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(dn)) {
    const special = byte <= 0x20 || byte >= 0x7f || byte === 0x3c || byte === 0x3e || byte === 0x28 ||
      byte === 0x29 || byte === 0x22 || byte === 0x2b;
    out += special ? `+${byte.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(byte);
  }
  return out;
}
