// The SCRAM building blocks both sides use (RFC 5802, RFC 7677): Hi() (PBKDF2), HMAC and the hash over
// WebCrypto, StoredKey/ServerKey, base64, the `saslname` escaping of user names, and a comparison in
// constant time. smtps's server (smtps/sasl_scram.ts) and smtpc's client (sasl/scram_client.ts) share
// these; smtps's credentials map (smtps/sasl_secrets.ts) stores keys made with them. Pure.

export type ScramHash = "SHA-1" | "SHA-256";

const encoder = new TextEncoder();

export function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** Strict base64 (padded); undefined for anything else. */
export function fromBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** `saslname` (RFC 5802 5.1): `=2C` and `=3D` stand for `,` and `=`; any other `=` is an error. */
export function decodeSaslname(name: string): string | undefined {
  if (/=(?!2C|3D)/.test(name)) return undefined;
  return name.replace(/=2C/g, ",").replace(/=3D/g, "=");
}

/** A user name as a `saslname`: `=` and `,` escaped. */
export function encodeSaslname(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

export async function digest(hash: ScramHash, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest(hash, data as Uint8Array<ArrayBuffer>));
}

export async function hmac(hash: ScramHash, key: Uint8Array, data: Uint8Array | string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash },
    false,
    ["sign"],
  );
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes as Uint8Array<ArrayBuffer>));
}

/** RFC 5802 Hi(): PBKDF2 with HMAC-`hash`, as long as one hash, over the password normalized to NFKC. */
export async function saltedPassword(
  hash: ScramHash,
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(password.normalize("NFKC")),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash, salt: salt as Uint8Array<ArrayBuffer>, iterations },
    key,
    hash === "SHA-1" ? 160 : 256,
  );
  return new Uint8Array(bits);
}

/** StoredKey and ServerKey for `password` (RFC 5802 3). */
export async function scramKeys(
  hash: ScramHash,
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<{ storedKey: Uint8Array; serverKey: Uint8Array }> {
  const salted = await saltedPassword(hash, password, salt, iterations);
  const clientKey = await hmac(hash, salted, "Client Key");
  return { storedKey: await digest(hash, clientKey), serverKey: await hmac(hash, salted, "Server Key") };
}

/** Compares in time that does not depend on where the bytes differ. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
