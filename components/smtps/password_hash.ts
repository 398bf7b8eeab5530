// Salted slow password hashes for the AUTH credentials map: PBKDF2-HMAC-SHA256 through WebCrypto, written
// in the PHC string format `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>` (unpadded base64), so the cost
// can be raised later without invalidating old entries. Never a plain-text password. Used by smtps to
// check AUTH and by `deno task createmap auth` to build the map. Pure apart from the random salt.

/** OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256. */
export const DEFAULT_ITERATIONS = 600_000;
const PREFIX = "$pbkdf2-sha256$";
const SALT_BYTES = 16;
const HASH_BITS = 256;
const encoder = new TextEncoder();

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/=+$/, "");
}

function fromBase64(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as Uint8Array<ArrayBuffer>, iterations },
    key,
    HASH_BITS,
  );
  return new Uint8Array(bits);
}

/** Hashes `password` with a fresh random salt. */
export async function hashPassword(password: string, iterations = DEFAULT_ITERATIONS): Promise<string> {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new RangeError(`Invalid PBKDF2 iteration count: ${iterations}`);
  }
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  return `${PREFIX}i=${iterations}$${toBase64(salt)}$${toBase64(await derive(password, salt, iterations))}`;
}

/** True when `stored` looks like a hash this module writes. */
export function isPasswordHash(stored: string): boolean {
  return parse(stored) !== undefined;
}

function parse(stored: string): { iterations: number; salt: Uint8Array; hash: Uint8Array } | undefined {
  if (!stored.startsWith(PREFIX)) return undefined;
  const [params, saltText, hashText, ...extra] = stored.slice(PREFIX.length).split("$");
  const m = /^i=(\d{1,9})$/.exec(params ?? "");
  const salt = saltText ? fromBase64(saltText) : undefined;
  const hash = hashText ? fromBase64(hashText) : undefined;
  if (!m || !salt || !hash || extra.length > 0 || Number(m[1]) < 1 || hash.length === 0) return undefined;
  return { iterations: Number(m[1]), salt, hash };
}

/** Checks `password` against a stored hash in constant time; a malformed hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const p = parse(stored);
  if (!p) return false;
  const got = await derive(password, p.salt, p.iterations);
  if (got.length !== p.hash.length) return false;
  let diff = 0;
  for (let i = 0; i < got.length; i++) diff |= got[i] ^ p.hash[i];
  return diff === 0;
}

/** Spends about the time a real check takes, so an unknown user cannot be told from a wrong password. */
export async function dummyVerify(password: string, iterations = DEFAULT_ITERATIONS): Promise<void> {
  await derive(password, new Uint8Array(SALT_BYTES), iterations);
}
