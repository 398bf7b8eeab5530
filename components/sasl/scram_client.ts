// The client side of SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677) without channel binding (GS2
// header `n,,`: we do not offer the -PLUS variants). Three steps: the client-first message (user and our
// nonce), the client-final message answering the server-first one (its nonce must extend ours; the salt
// and iteration count give the salted password), and the check of the server-final message (`v=`, the
// server's signature: a server that does not know the password cannot make it, so a failed check means
// we were not talking to the real server). Crypto in sasl/scram.ts. Pure apart from the random nonce.

import {
  digest,
  encodeSaslname,
  fromBase64,
  hmac,
  saltedPassword,
  sameBytes,
  type ScramHash,
  toBase64,
} from "./scram.ts";

/** A server's iteration count beyond this is refused: it would only make us burn CPU. */
export const MAX_ITERATIONS = 10_000_000;

/** Why the exchange cannot go on: a malformed or hostile server message. */
export class ScramClientError extends Error {
  override name = "ScramClientError";
}

export class ScramClient {
  readonly #clientFirstBare: string;
  #serverSignature: Uint8Array | undefined;

  constructor(
    readonly hash: ScramHash,
    user: string,
    readonly password: string,
    /** Our nonce (tests give a fixed one). */
    readonly nonce = toBase64(crypto.getRandomValues(new Uint8Array(18))),
  ) {
    this.#clientFirstBare = `n=${encodeSaslname(user.normalize("NFKC"))},r=${nonce}`;
  }

  /** The client-first message. */
  first(): string {
    return `n,,${this.#clientFirstBare}`;
  }

  /** The client-final message for the server-first message; throws ScramClientError on a bad one. */
  async final(serverFirst: string): Promise<string> {
    const attrs = parseAttributes(serverFirst);
    if (attrs.has("m")) throw new ScramClientError("server asks for a mandatory extension");
    const nonce = attrs.get("r");
    const salt = fromBase64(attrs.get("s") ?? "");
    const iterations = Number(attrs.get("i"));
    if (!nonce || !nonce.startsWith(this.nonce) || nonce.length === this.nonce.length) {
      throw new ScramClientError("server nonce does not extend ours");
    }
    if (!salt || salt.length === 0) throw new ScramClientError("no salt in the server-first message");
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
      throw new ScramClientError(`bad iteration count ${JSON.stringify(attrs.get("i"))}`);
    }
    const withoutProof = `c=${toBase64(new TextEncoder().encode("n,,"))},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const salted = await saltedPassword(this.hash, this.password, salt, iterations);
    const clientKey = await hmac(this.hash, salted, "Client Key");
    const storedKey = await digest(this.hash, clientKey);
    const signature = await hmac(this.hash, storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ signature[i]);
    this.#serverSignature = await hmac(this.hash, await hmac(this.hash, salted, "Server Key"), authMessage);
    return `${withoutProof},p=${toBase64(proof)}`;
  }

  /** Whether the server-final message proves the server knows the password; throws on `e=`. */
  verify(serverFinal: string): boolean {
    const attrs = parseAttributes(serverFinal);
    const error = attrs.get("e");
    if (error !== undefined) throw new ScramClientError(`server says: ${error}`);
    const v = fromBase64(attrs.get("v") ?? "");
    return v !== undefined && this.#serverSignature !== undefined && sameBytes(v, this.#serverSignature);
  }
}

/** `a=1,b=2` as a map (the first of a repeated attribute wins). */
function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(",")) {
    const m = /^([A-Za-z])=(.*)$/s.exec(part);
    if (m && !attrs.has(m[1])) attrs.set(m[1], m[2]);
  }
  return attrs;
}
