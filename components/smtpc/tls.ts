// Client-side TLS for STARTTLS (RFC 3207): the settings read once at start (`smtpc { tls { ... } }`: the
// security level, CA certificates from CAcert_file and CAcert_directory, an optional client certificate),
// and the upgrade of an open connection. node:tls is used rather than Deno.startTls because it reports the
// protocol version, the cipher and why a certificate does not verify, and can go on without verification
// (opportunistic TLS); it runs over a node Duplex wrapping the Deno.Conn, so the plain-text path keeps
// Deno's own sockets. The certificate is always checked (chain, and the host name the route gives); the
// security level decides whether a failure matters (connect.ts / hello.ts). Reads the TLS files it is
// configured with; connects nowhere by itself.

import tls from "node:tls";
import { isIP } from "node:net";
import { Duplex } from "node:stream";
import { join } from "node:path";
import type { SmtpcTlsConfig } from "../../config/types.ts";
import type { TlsSummary } from "../protocol/messages.ts";
import type { ByteStream } from "./wire.ts";

/** none: never STARTTLS; may: when offered, plain text if it fails; encrypt: TLS required; verify: TLS with a verified certificate required. */
export type SecurityLevel = "none" | "may" | "encrypt" | "verify";

export interface TlsSettings {
  level: SecurityLevel;
  /**
   * Trust anchors (PEM) from CAcert_file and CAcert_directory, given to node:tls as `ca`; none: the
   * runtime's default roots. (node:tls's roots are not added: reading them takes sys permission.)
   */
  ca: string[];
  cert?: string;
  key?: string;
}

/** What a handshake gave: logged, and reported to qmgr with the result. */
export type TlsInfo = TlsSummary;

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads the configured TLS files; throws an Error naming the file that cannot be read. */
export async function loadTlsSettings(cfg: SmtpcTlsConfig | undefined): Promise<TlsSettings> {
  const settings: TlsSettings = { level: cfg?.security_level ?? "may", ca: [] };
  if (!cfg) return settings;
  const read = async (what: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new Error(`Read TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  if (cfg.CAcert_file) settings.ca.push(...certsIn(await read("CAcert_file", cfg.CAcert_file)));
  if (cfg.CAcert_directory) {
    try {
      for await (const e of Deno.readDir(cfg.CAcert_directory)) {
        if (!e.isFile) continue;
        const text = await Deno.readTextFile(join(cfg.CAcert_directory, e.name)).catch(() => "");
        settings.ca.push(...certsIn(text));
      }
    } catch (err) {
      throw new Error(`Read TLS CAcert_directory ${cfg.CAcert_directory}: ${(err as Error).message}`);
    }
  }
  if (cfg.cert_file !== undefined || cfg.key_file !== undefined) {
    if (!cfg.cert_file || !cfg.key_file) {
      throw new Error("Read TLS client certificate: cert_file and key_file go together");
    }
    settings.cert = await read("cert_file", cfg.cert_file);
    settings.key = await read("key_file", cfg.key_file);
  }
  return settings;
}

function certsIn(text: string): string[] {
  return text.match(PEM_CERT) ?? [];
}

/** `TLSv1.3 TLS_AES_256_GCM_SHA384, verified` or `..., not verified (REASON)`, for logs. */
export function describeTls(info: TlsInfo): string {
  const v = info.verified ? "verified" : `not verified (${info.verifyError ?? "unknown reason"})`;
  return `${info.version} ${info.cipher}, ${v}`;
}

/** What a handshake gives: the encrypted stream, its summary, and the peer's chain for DANE. */
export interface Upgraded {
  stream: TlsStream;
  info: TlsInfo;
  /** The certificates the server presented (DER), its own first. */
  chain: Uint8Array[];
}

/**
 * Whether the certificate `cert` is for one of `names` (`host`, or `.domain` for any name below it);
 * undefined when it is, else an Error saying why not.
 */
export function checkNames(names: string[], cert: tls.PeerCertificate): Error | undefined {
  let first: Error | undefined;
  for (const n of names) {
    if (!n.startsWith(".")) {
      const err = tls.checkServerIdentity(n, cert);
      if (!err) return undefined;
      first ??= err;
      continue;
    }
    const dns = (cert.subjectaltname ?? "").split(/,\s*/).filter((e) => e.startsWith("DNS:"))
      .map((e) => e.slice(4).toLowerCase());
    const cn = typeof cert.subject?.CN === "string" ? [cert.subject.CN.toLowerCase()] : [];
    if ((dns.length > 0 ? dns : cn).some((d) => d.endsWith(n.toLowerCase()))) return undefined;
    first ??= new Error(
      `certificate names ${[...dns, ...cn].join(", ") || "none"} are not below ${n.slice(1)}`,
    );
  }
  return first ?? new Error("no name to check the certificate against");
}

/** The DER certificates of the peer's chain as node:tls reports it, the peer's own first. */
function peerChain(socket: tls.TLSSocket): Uint8Array[] {
  const out: Uint8Array[] = [];
  let c = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  const seen = new Set<unknown>();
  while (c && c.raw && !seen.has(c) && out.length < 10) {
    seen.add(c);
    out.push(new Uint8Array(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}

/**
 * Runs the TLS handshake over `conn` (nothing of it may be read or written by anyone else from now on)
 * within `timeoutMs`, sending `hostName` as SNI and checking the certificate against `names` (default:
 * `hostName`). Resolves with the encrypted stream; rejects with an Error saying why the handshake failed
 * (the connection is closed then).
 */
export function startTls(
  conn: ByteStream,
  hostName: string,
  settings: TlsSettings,
  timeoutMs: number,
  names: string[] = [hostName],
): Promise<Upgraded> {
  const raw = duplexOf(conn);
  const socket = tls.connect({
    socket: raw,
    servername: isIP(hostName) ? undefined : hostName,
    ca: settings.ca.length > 0 ? settings.ca : undefined,
    cert: settings.cert,
    key: settings.key,
    rejectUnauthorized: false,
    checkServerIdentity: (_name, cert) => checkNames(names, cert),
  });
  const stream = new TlsStream(socket, raw);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.close();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail("TLS handshake timed out"), Math.max(1, timeoutMs));
    const onError = (err: Error) => fail(`TLS handshake failed: ${err.message}`);
    const onClose = () => fail("TLS handshake failed: connection closed");
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("secureConnect", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("close", onClose);
      const err = socket.authorizationError as unknown;
      const info: TlsInfo = {
        version: socket.getProtocol() ?? "unknown",
        cipher: socket.getCipher()?.name ?? "unknown",
        verified: socket.authorized === true,
      };
      if (!info.verified) {
        info.verifyError = err instanceof Error ? err.message : String(err ?? "unknown reason");
      }
      resolve({ stream, info, chain: peerChain(socket) });
    });
  });
}

/** A node Duplex over a Deno.Conn (or any ByteStream), for node:tls to run on (the test sink uses it too). */
export function duplexOf(conn: ByteStream): Duplex {
  return new Duplex({
    read() {
      const buf = new Uint8Array(16 * 1024);
      conn.read(buf).then(
        (n) => this.push(n === null ? null : buf.subarray(0, n)),
        (err) => this.destroy(err),
      );
    },
    write(chunk: Uint8Array, _enc, done) {
      (async () => {
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      })().then(() => done(), done);
    },
    destroy(err, done) {
      try {
        conn.close();
      } catch {
        // already closed
      }
      done(err);
    },
  });
}

const HIGH_WATER = 256 * 1024;

/** The encrypted side of a connection as a ByteStream: what Wire reads replies from and writes to. */
export class TlsStream implements ByteStream {
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #writes = new Set<(err: Error) => void>();

  constructor(readonly socket: tls.TLSSocket, readonly raw: Duplex) {
    socket.on("data", (d: Uint8Array) => {
      this.#chunks.push(d);
      this.#queued += d.length;
      if (this.#queued > HIGH_WATER) socket.pause();
      this.#notify();
    });
    const end = () => {
      this.#ended = true;
      this.#notify();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#notify();
    });
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const c = this.#chunks[0];
      const take = Math.min(c.length, p.length - n);
      p.set(c.subarray(0, take), n);
      n += take;
      if (take === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(take);
    }
    this.#queued -= n;
    if (this.#queued < HIGH_WATER / 2 && this.socket.isPaused()) this.socket.resume();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#ended) return Promise.reject(new Error("connection closed"));
    // node keeps a reference to what it is given, and our callers reuse their buffers.
    const copy = p.slice();
    return new Promise((resolve, reject) => {
      this.#writes.add(reject);
      this.socket.write(copy, (err?: Error | null) => {
        this.#writes.delete(reject);
        if (err) reject(err);
        else resolve(p.length);
      });
    });
  }

  close(): void {
    this.#ended = true;
    for (const reject of this.#writes) reject(new Error("connection closed"));
    this.#writes.clear();
    this.socket.destroy();
    this.raw.destroy();
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
