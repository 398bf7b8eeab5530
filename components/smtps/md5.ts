// MD5 (RFC 1321) with its chaining state exposed, for CRAM-MD5 (RFC 2195): WebCrypto has no MD5, and the
// credentials map keeps HMAC-MD5's two precomputed states (the key XOR ipad and XOR opad blocks run
// through MD5) instead of the password, as RFC 2104 section 4 suggests. hmacMd5FromStates() finishes an
// HMAC from them. Pure functions; touch nothing.

/** MD5's chaining state: four 32-bit words. */
export type Md5State = [number, number, number, number];

const INITIAL: Md5State = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);

/** Runs one 64-byte block at `offset` of `data` through the compression function. */
function compress(s: Md5State, data: Uint8Array, offset: number): Md5State {
  const m = new Uint32Array(16);
  for (let i = 0; i < 16; i++) {
    const o = offset + i * 4;
    m[i] = data[o] | (data[o + 1] << 8) | (data[o + 2] << 16) | (data[o + 3] << 24);
  }
  let [a, b, c, d] = s;
  for (let i = 0; i < 64; i++) {
    let f: number;
    let g: number;
    if (i < 16) [f, g] = [(b & c) | (~b & d), i];
    else if (i < 32) [f, g] = [(d & b) | (~d & c), (5 * i + 1) % 16];
    else if (i < 48) [f, g] = [b ^ c ^ d, (3 * i + 5) % 16];
    else [f, g] = [c ^ (b | ~d), (7 * i) % 16];
    const shift = SHIFTS[(i >> 4) * 4 + (i % 4)];
    const sum = (a + f + K[i] + m[g]) >>> 0;
    [a, d, c] = [d, c, b];
    b = (b + ((sum << shift) | (sum >>> (32 - shift)))) >>> 0;
  }
  return [(s[0] + a) >>> 0, (s[1] + b) >>> 0, (s[2] + c) >>> 0, (s[3] + d) >>> 0];
}

/** The state after the first 64-byte block `block` (an HMAC key XOR ipad or opad). */
export function md5Block(block: Uint8Array): Md5State {
  if (block.length !== 64) throw new RangeError(`MD5 block must be 64 bytes, not ${block.length}`);
  return compress(INITIAL, block, 0);
}

/**
 * MD5 of `prefixLength` bytes already run into `state` (a multiple of 64) followed by `data`: the digest.
 */
export function md5Continue(state: Md5State, data: Uint8Array, prefixLength = 0): Uint8Array {
  const total = prefixLength + data.length;
  const padded = new Uint8Array(Math.ceil((data.length + 9) / 64) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const bits = BigInt(total) * 8n;
  for (let i = 0; i < 8; i++) padded[padded.length - 8 + i] = Number((bits >> BigInt(8 * i)) & 0xffn);
  let s = state;
  for (let o = 0; o < padded.length; o += 64) s = compress(s, padded, o);
  const out = new Uint8Array(16);
  s.forEach((w, i) => {
    for (let j = 0; j < 4; j++) out[i * 4 + j] = (w >>> (8 * j)) & 0xff;
  });
  return out;
}

/** MD5 of `data`. */
export function md5(data: Uint8Array): Uint8Array {
  return md5Continue(INITIAL, data);
}

/** HMAC-MD5's two precomputed states for `key` (RFC 2104: a key over 64 bytes is hashed first). */
export function hmacMd5States(key: Uint8Array): { inner: Md5State; outer: Md5State } {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? md5(key) : key);
  return {
    inner: md5Block(k.map((b) => b ^ 0x36)),
    outer: md5Block(k.map((b) => b ^ 0x5c)),
  };
}

/** HMAC-MD5 of `message` from the two precomputed states. */
export function hmacMd5FromStates(
  states: { inner: Md5State; outer: Md5State },
  message: Uint8Array,
): Uint8Array {
  return md5Continue(states.outer, md5Continue(states.inner, message, 64), 64);
}

/** The states as 32 bytes (inner then outer, each word little-endian), for storing. */
export function statesToBytes(states: { inner: Md5State; outer: Md5State }): Uint8Array {
  const out = new Uint8Array(32);
  [...states.inner, ...states.outer].forEach((w, i) => {
    for (let j = 0; j < 4; j++) out[i * 4 + j] = (w >>> (8 * j)) & 0xff;
  });
  return out;
}

/** The states back from their 32 bytes. */
export function statesFromBytes(bytes: Uint8Array): { inner: Md5State; outer: Md5State } {
  if (bytes.length !== 32) throw new RangeError(`HMAC-MD5 states must be 32 bytes, not ${bytes.length}`);
  const w = (i: number) =>
    (bytes[i * 4] | (bytes[i * 4 + 1] << 8) | (bytes[i * 4 + 2] << 16) | (bytes[i * 4 + 3] << 24)) >>> 0;
  return { inner: [w(0), w(1), w(2), w(3)], outer: [w(4), w(5), w(6), w(7)] };
}
