// DANE authentication of an SMTP server (RFC 7672 section 3, RFC 7671): the chain the server presented
// (DER, its own certificate first, from node:tls getPeerCertificate(true)) against the TLSA records smar
// found for the MX host.
// - DANE-EE(3): the server's own certificate (selector 0) or its public key (selector 1, the SPKI) equals
//   the record's data (matching type 0), or its SHA-256 (1) or SHA-512 (2) digest; no name, chain or
//   expiry checks (RFC 7672 3.1.1).
// - DANE-TA(2): some certificate of the presented chain above the server's matches the record, every
//   certificate from the server's up to it is signed by the next, the server's certificate is within its
//   validity and names one of the reference identifiers (the MX host name; RFC 7672 3.2.2).
// Usages 0 and 1 (PKIX-TA, PKIX-EE) are unusable for SMTP (RFC 7672 3.1.3) and never match.
// Pure (node:crypto); touches nothing.

import { createHash, X509Certificate } from "node:crypto";
import { Buffer } from "node:buffer";
import type { TlsaRecord } from "../mail/tls_policy.ts";
import { nameMatches, usableTlsa } from "../mail/tls_policy.ts";

export type DaneResult = { ok: true; matched: string } | { ok: false; reason: string };

/** `3 1 1 abcd1234…`, for logs. */
export function describeTlsa(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.slice(0, 16)}${r.data.length > 16 ? "…" : ""}`;
}

function selected(cert: X509Certificate, selector: number): Uint8Array {
  if (selector === 0) return new Uint8Array(cert.raw);
  return new Uint8Array(cert.publicKey.export({ type: "spki", format: "der" }) as Buffer);
}

function associated(bytes: Uint8Array, matchingType: number): string {
  if (matchingType === 0) return Buffer.from(bytes).toString("hex");
  return createHash(matchingType === 1 ? "sha256" : "sha512").update(bytes).digest("hex");
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  return associated(selected(cert, r.selector), r.matchingType) === r.data.toLowerCase();
}

/** The names of a certificate: its DNS subjectAltNames, else its subject CN. */
function namesOf(cert: X509Certificate): string[] {
  const dns = (cert.subjectAltName ?? "").split(/,\s*/).filter((e) => e.startsWith("DNS:"))
    .map((e) => e.slice(4).toLowerCase());
  if (dns.length > 0) return dns;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** Whether a certificate name (possibly `*.domain`) covers `host`. */
function covers(certName: string, host: string): boolean {
  if (certName.startsWith("*.")) {
    const rest = certName.slice(1);
    return host.endsWith(rest) && !host.slice(0, host.length - rest.length).includes(".");
  }
  return nameMatches(certName, host);
}

/**
 * Checks the presented `chain` against `records` for an MX host known by `names` (reference identifiers,
 * lower case); `now` in ms.
 */
export function daneVerify(
  records: TlsaRecord[],
  chainDer: Uint8Array[],
  names: string[],
  now = Date.now(),
): DaneResult {
  const usable = records.filter(usableTlsa);
  if (usable.length === 0) return { ok: false, reason: "no usable TLSA record" };
  if (chainDer.length === 0) return { ok: false, reason: "the server presented no certificate" };
  let chain: X509Certificate[];
  try {
    chain = chainDer.map((d) => new X509Certificate(d));
  } catch (err) {
    return { ok: false, reason: `unreadable server certificate: ${(err as Error).message}` };
  }
  const leaf = chain[0];
  for (const r of usable) {
    if (r.usage === 3 && matches(leaf, r)) return { ok: true, matched: `DANE-EE ${describeTlsa(r)}` };
  }
  let taProblem = "";
  for (const r of usable.filter((x) => x.usage === 2)) {
    const at = chain.findIndex((c, i) => i > 0 && matches(c, r));
    if (at < 0) continue;
    const broken = chain.slice(0, at).findIndex((c, i) =>
      !c.checkIssued(chain[i + 1]) || !c.verify(chain[i + 1].publicKey)
    );
    if (broken >= 0) {
      taProblem = `certificate ${broken} of the chain is not signed by the next`;
      continue;
    }
    const from = Date.parse(leaf.validFrom);
    const to = Date.parse(leaf.validTo);
    if (!(now >= from && now <= to)) {
      taProblem = `the server certificate is not valid now (${leaf.validFrom} to ${leaf.validTo})`;
      continue;
    }
    const certNames = namesOf(leaf);
    if (!names.some((n) => certNames.some((c) => covers(c, n)))) {
      taProblem = `certificate names ${certNames.join(", ") || "none"} do not match ${names.join(", ")}`;
      continue;
    }
    return { ok: true, matched: `DANE-TA ${describeTlsa(r)}` };
  }
  return { ok: false, reason: taProblem || "no TLSA record matches the server's certificate chain" };
}
