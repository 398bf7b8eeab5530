// What the AUTH credentials map keeps per user: one or more secrets separated by blanks, each in a form
// that serves some SASL mechanisms, never the password itself:
// - `$pbkdf2-sha256$i=N$salt$hash` (password_hash.ts): PLAIN and LOGIN;
// - `SCRAM-SHA-1$N:salt$StoredKey:ServerKey` and `SCRAM-SHA-256$N:salt$StoredKey:ServerKey` (RFC 5803's
//   format, base64): SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), and PLAIN/LOGIN (the key is
//   derived from the password sent and compared);
// - `CRAM-MD5$<64 hex digits>`: HMAC-MD5's two precomputed states for the password (RFC 2104 4, inner
//   then outer), which CRAM-MD5 (RFC 2195) needs; it is not the password but stands for it towards
//   CRAM-MD5 and falls to a fast dictionary attack, so createmap writes it only when asked.
// SCRAM keys are derived from the password normalized to NFKC (most of SASLprep, RFC 4013). Unknown
// forms are ignored (a newer map read by an older smx). SCRAM's crypto in sasl/scram.ts (shared with smtpc's
// client); MD5 in md5.ts. Pure.

import { hmacMd5FromStates, hmacMd5States, statesFromBytes, statesToBytes } from "./md5.ts";
import { isPasswordHash, verifyPassword } from "./password_hash.ts";
import { fromBase64, sameBytes, type ScramHash, scramKeys, toBase64 } from "../sasl/scram.ts";

export type Secret =
  | { kind: "pbkdf2"; text: string }
  | {
    kind: "scram";
    hash: ScramHash;
    iterations: number;
    salt: Uint8Array;
    storedKey: Uint8Array;
    serverKey: Uint8Array;
  }
  | { kind: "cram-md5"; states: ReturnType<typeof statesFromBytes> };

/** SCRAM's iteration count when createmap is not told one (RFC 7677 asks for at least 4096). */
export const DEFAULT_SCRAM_ITERATIONS = 100_000;
const encoder = new TextEncoder();

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** The secrets of one map value; forms this version does not know are left out. */
export function parseSecrets(value: string): Secret[] {
  const out: Secret[] = [];
  for (const token of value.trim().split(/\s+/)) {
    if (isPasswordHash(token)) {
      out.push({ kind: "pbkdf2", text: token });
      continue;
    }
    const scram = /^SCRAM-(SHA-1|SHA-256)\$(\d{1,9}):([^$:]+)\$([^$:]+):([^$:]+)$/i.exec(token);
    if (scram) {
      const hash = scram[1].toUpperCase() as ScramHash;
      const [salt, storedKey, serverKey] = [scram[3], scram[4], scram[5]].map(fromBase64);
      const size = hash === "SHA-1" ? 20 : 32;
      const iterations = Number(scram[2]);
      if (salt && storedKey?.length === size && serverKey?.length === size && iterations > 0) {
        out.push({ kind: "scram", hash, iterations, salt, storedKey, serverKey });
      }
      continue;
    }
    const cram = /^CRAM-MD5\$([0-9a-f]{64})$/i.exec(token);
    if (cram) {
      const bytes = Uint8Array.from(cram[1].match(/../g)!, (h) => parseInt(h, 16));
      out.push({ kind: "cram-md5", states: statesFromBytes(bytes) });
    }
  }
  return out;
}

/** The mechanisms (upper case) these secrets can serve. */
export function mechanismsServed(secrets: Secret[]): Set<string> {
  const m = new Set<string>();
  if (secrets.length > 0) m.add("PLAIN").add("LOGIN");
  for (const s of secrets) {
    if (s.kind === "scram") m.add(`SCRAM-${s.hash}`);
    if (s.kind === "cram-md5") m.add("CRAM-MD5");
  }
  return m;
}

/** The SCRAM secret of `password` in RFC 5803's format, with a fresh 16-byte salt unless given. */
export async function scramSecret(
  hash: ScramHash,
  password: string,
  iterations = DEFAULT_SCRAM_ITERATIONS,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(16)),
): Promise<string> {
  const { storedKey, serverKey } = await scramKeys(hash, password, salt, iterations);
  return `SCRAM-${hash}$${iterations}:${toBase64(salt)}$${toBase64(storedKey)}:${toBase64(serverKey)}`;
}

/** The CRAM-MD5 secret of `password`: HMAC-MD5's precomputed states. */
export function cramSecret(password: string): string {
  return `CRAM-MD5$${hex(statesToBytes(hmacMd5States(encoder.encode(password))))}`;
}

/** The CRAM-MD5 answer (hex) to `challenge` from the stored states. */
export function cramDigest(secret: Extract<Secret, { kind: "cram-md5" }>, challenge: string): string {
  return hex(hmacMd5FromStates(secret.states, encoder.encode(challenge)));
}

/** Whether `password` (sent in the clear: PLAIN, LOGIN) matches the strongest secret there is. */
export async function verifyPlain(password: string, secrets: Secret[]): Promise<boolean> {
  const pbkdf2 = secrets.find((s) => s.kind === "pbkdf2");
  if (pbkdf2) return await verifyPassword(password, pbkdf2.text);
  const scram = secrets.find((s) => s.kind === "scram" && s.hash === "SHA-256") ??
    secrets.find((s) => s.kind === "scram");
  if (scram?.kind === "scram") {
    const { storedKey } = await scramKeys(scram.hash, password, scram.salt, scram.iterations);
    return sameBytes(storedKey, scram.storedKey);
  }
  const cram = secrets.find((s) => s.kind === "cram-md5");
  if (cram?.kind === "cram-md5") {
    return sameBytes(statesToBytes(hmacMd5States(encoder.encode(password))), statesToBytes(cram.states));
  }
  return false;
}
