// The server side of SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677) without channel binding (the
// -PLUS variants are not offered, so a client asking for binding with `p=` is refused; `y` and `n` are
// accepted). Two steps: the client-first message gets the server-first message (our nonce, the user's
// salt and iteration count), the client-final message is checked against the stored StoredKey and
// answered with the server's signature (v=...). A user who is unknown or has no key for this hash gets
// a salt made up from the name (the same each time), so the exchange does not tell that the user does
// not exist; the proof then fails. Pure apart from the random nonce; crypto through sasl/scram.ts.

import {
  decodeSaslname,
  digest,
  fromBase64,
  hmac,
  sameBytes,
  type ScramHash,
  toBase64,
} from "../sasl/scram.ts";
import type { Secret } from "./sasl_secrets.ts";

/** Why a step failed: a malformed message, or credentials that do not match. */
export type ScramFailure = { kind: "fail"; why: string };

const FAKE_KEY = crypto.getRandomValues(new Uint8Array(32));

export class ScramServer {
  #user = "";
  #clientFirstBare = "";
  #serverFirst = "";
  #gs2Header = "";
  #nonce = "";
  #secret: Extract<Secret, { kind: "scram" }> | undefined;

  constructor(
    readonly hash: ScramHash,
    readonly lookup: (user: string) => Promise<Secret[] | undefined>,
    readonly fakeIterations = 4096,
    /** Our part of the nonce (tests give a fixed one). */
    readonly nonceSuffix = () => toBase64(crypto.getRandomValues(new Uint8Array(18))),
  ) {}

  /** The user named in the client-first message (after first()). */
  get user(): string {
    return this.#user;
  }

  /** Reads the client-first message; answers the server-first message. */
  async first(message: string): Promise<{ kind: "challenge"; text: string } | ScramFailure> {
    const m = /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/.exec(message);
    if (!m) return { kind: "fail", why: "malformed client-first message" };
    if (m[1].startsWith("p=")) return { kind: "fail", why: "channel binding asked for, not offered" };
    const bare = m[3];
    const parts = bare.split(",");
    if (parts[0]?.startsWith("m=")) return { kind: "fail", why: "mandatory extension not supported" };
    const user = parts[0]?.startsWith("n=") ? decodeSaslname(parts[0].slice(2)) : undefined;
    const nonce = parts[1]?.startsWith("r=") ? parts[1].slice(2) : "";
    if (user === undefined || user === "" || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) {
      return { kind: "fail", why: "malformed client-first message" };
    }
    const authzid = m[2] ? decodeSaslname(m[2].slice(2)) : "";
    if (authzid === undefined || (authzid !== "" && authzid !== user)) {
      return { kind: "fail", why: "authorization identity other than the user" };
    }
    this.#user = user;
    this.#gs2Header = `${m[1]},${m[2] ?? ""},`;
    this.#clientFirstBare = bare;
    this.#nonce = nonce + this.nonceSuffix();
    const secrets = await this.lookup(user);
    this.#secret = secrets?.find((s): s is Extract<Secret, { kind: "scram" }> =>
      s.kind === "scram" && s.hash === this.hash
    );
    const salt = this.#secret?.salt ??
      (await hmac("SHA-256", FAKE_KEY, `${this.hash}:${user.toLowerCase()}`)).slice(0, 16);
    const iterations = this.#secret?.iterations ?? this.fakeIterations;
    this.#serverFirst = `r=${this.#nonce},s=${toBase64(salt)},i=${iterations}`;
    return { kind: "challenge", text: this.#serverFirst };
  }

  /** Checks the client-final message; answers the server-final message (v=...) when the proof holds. */
  async final(message: string): Promise<{ kind: "ok"; text: string } | ScramFailure> {
    const at = message.lastIndexOf(",p=");
    if (at < 0) return { kind: "fail", why: "malformed client-final message" };
    const withoutProof = message.slice(0, at);
    const proof = fromBase64(message.slice(at + 3));
    const parts = withoutProof.split(",");
    const binding = parts[0]?.startsWith("c=") ? fromBase64(parts[0].slice(2)) : undefined;
    if (!proof || !binding || parts[1] !== `r=${this.#nonce}`) {
      return { kind: "fail", why: "malformed client-final message or wrong nonce" };
    }
    if (new TextDecoder().decode(binding) !== this.#gs2Header) {
      return { kind: "fail", why: "channel binding data does not match the GS2 header" };
    }
    const secret = this.#secret;
    if (!secret) return { kind: "fail", why: "no SCRAM key for this user" };
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const signature = await hmac(this.hash, secret.storedKey, authMessage);
    if (proof.length !== signature.length) return { kind: "fail", why: "wrong proof" };
    const clientKey = proof.map((b, i) => b ^ signature[i]);
    if (!sameBytes(await digest(this.hash, clientKey), secret.storedKey)) {
      return { kind: "fail", why: "wrong proof" };
    }
    const serverSignature = await hmac(this.hash, secret.serverKey, authMessage);
    return { kind: "ok", text: `v=${toBase64(serverSignature)}` };
  }
}
