// SMTP AUTH (RFC 4954) with SCRAM-SHA-256 (RFC 7677), SCRAM-SHA-1 (RFC 5802), CRAM-MD5 (RFC 2195),
// PLAIN (RFC 4616) and LOGIN: offered after EHLO when the section has an `auth { }` block, as
// sasl_mechanisms.ts chooses them; PLAIN and LOGIN only under TLS unless the flags allow plain text.
// Credentials are checked against the section's credentials map (sasl_secrets.ts: salted slow hashes,
// SCRAM keys, CRAM-MD5's HMAC states). SCRAM's server signature goes out as a last 334 challenge, which
// the client answers with an empty line (RFC 4954 4). A failed attempt is answered 535 after a delay that
// grows with each failure; max_failures of them end the session with 421. A success with one of
// trusted_mechs lets the client relay. Reads the client's responses itself (334 challenges).

import { log } from "../util/log.ts";
import { MAX_COMMAND_LINE, readLine } from "../smtp_io/line_reader.ts";
import { R } from "./replies.ts";
import { sendsNoPassword } from "./sasl_mechanisms.ts";
import { ScramServer } from "./sasl_scram.ts";
import { sameBytes } from "../sasl/scram.ts";
import { cramDigest } from "./sasl_secrets.ts";
import type { Session } from "./session.ts";

const COMPONENT = "smtps";
/** RFC 4954 4: a server should accept lines of 12288 octets in an authentication exchange. */
const MAX_AUTH_LINE = 12_288;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });
/** The longest delay before answering a failed attempt, however many there were. */
const MAX_FAILURE_DELAY_MS = 10_000;

/** Why an exchange ended without credentials: the reply is sent already, or the client went away. */
type Aborted = { aborted: true };
const ABORTED: Aborted = { aborted: true };

/** A client-chosen name made safe for one log line. */
export function printable(name: string): string {
  return name.replace(/[^\x21-\x7e]/g, "?").slice(0, 64);
}

/** Decodes a base64 response ("=" is the empty initial response); undefined when malformed. */
export function decodeResponse(text: string): string | undefined {
  if (text === "=") return "";
  if (!BASE64.test(text)) return undefined;
  try {
    return utf8.decode(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** Splits a PLAIN message `authzid NUL authcid NUL passwd`; no proxy authorization (authzid "" or authcid). */
export function parsePlain(message: string): { user: string; password: string } | undefined {
  const parts = message.split("\0");
  if (parts.length !== 3) return undefined;
  const [authzid, user, password] = parts;
  if (user === "" || password === "" || (authzid !== "" && authzid !== user)) return undefined;
  return { user, password };
}

/** The mechanisms offered to this session now (EHLO lists them; AUTH accepts only those). */
export function sessionMechanisms(s: Session): string[] {
  const auth = s.env.server.auth;
  if (auth === undefined || s.auth !== undefined) return [];
  const plaintext = s.tls !== undefined || auth.flags.includes("allow_plaintext");
  return s.env.mechanisms.filter((m) => plaintext || sendsNoPassword(m));
}

/** Whether AUTH is offered to this session now (EHLO lists it). */
export function authOffered(s: Session): boolean {
  return sessionMechanisms(s).length > 0;
}

/** Sends a 334 challenge and reads the client's base64 answer, or answers the abort / bad line itself. */
async function challenge(s: Session, base64: string): Promise<string | Aborted> {
  s.reply(R.authChallenge(base64));
  await s.flush();
  const line = await readLine(s.input, Date.now() + s.env.server.io_timeout, s.strictNewlines, MAX_AUTH_LINE);
  switch (line.kind) {
    case "eof":
      return ABORTED;
    case "bare_newline":
      s.end("AUTH", R.bareNewline(s.host));
      return ABORTED;
    case "too_long":
    case "bad_utf8":
      s.refuse("AUTH", R.badBase64);
      return ABORTED;
  }
  if (line.text === "*") {
    s.refuse("AUTH", R.authAborted);
    return ABORTED;
  }
  const decoded = decodeResponse(line.text);
  if (decoded === undefined) {
    s.refuse("AUTH", R.badBase64);
    return ABORTED;
  }
  return decoded;
}

/** How one exchange ended: who, and whether the credentials hold; undefined when malformed (a failure). */
type Outcome = { user: string; ok: boolean } | Aborted | undefined;

/** The credentials of one PLAIN or LOGIN exchange, checked. */
async function plainExchange(s: Session, mechanism: string, first: string | undefined): Promise<Outcome> {
  let credentials: { user: string; password: string } | undefined;
  if (mechanism === "PLAIN") {
    const message = first ?? await challenge(s, "");
    if (typeof message !== "string") return message;
    credentials = parsePlain(message);
  } else {
    const user = first ?? await challenge(s, btoa("Username:"));
    if (typeof user !== "string") return user;
    const password = await challenge(s, btoa("Password:"));
    if (typeof password !== "string") return password;
    credentials = user === "" || password === "" ? undefined : { user, password };
  }
  if (!credentials) return undefined;
  return {
    user: credentials.user,
    ok: await s.env.credentials!.verify(credentials.user, credentials.password),
  };
}

/** CRAM-MD5: a challenge `<random.time@host>`, answered with `user hex(HMAC-MD5(secret, challenge))`. */
async function cramExchange(s: Session, first: string | undefined): Promise<Outcome> {
  if (first !== undefined) return undefined; // CRAM-MD5 has no initial response
  const nonce = crypto.getRandomValues(new Uint32Array(2)).join("");
  const text = `<${nonce}.${Date.now()}@${s.host}>`;
  const answer = await challenge(s, btoa(text));
  if (typeof answer !== "string") return answer;
  const m = /^(\S+) ([0-9a-f]{32})$/i.exec(answer);
  if (!m) return undefined;
  const secrets = await s.env.credentials!.secrets(m[1]);
  const secret = secrets?.find((x) => x.kind === "cram-md5");
  const want = secret?.kind === "cram-md5" ? cramDigest(secret, text) : "0".repeat(32);
  const enc = new TextEncoder();
  return {
    user: m[1],
    ok: secret !== undefined && sameBytes(enc.encode(want), enc.encode(m[2].toLowerCase())),
  };
}

/** SCRAM-SHA-1 / SCRAM-SHA-256: client-first, server-first, client-final, server-final, empty line. */
async function scramExchange(s: Session, mechanism: string, first: string | undefined): Promise<Outcome> {
  const scram = new ScramServer(
    mechanism === "SCRAM-SHA-1" ? "SHA-1" : "SHA-256",
    (user) => s.env.credentials!.secrets(user),
  );
  const clientFirst = first ?? await challenge(s, "");
  if (typeof clientFirst !== "string") return clientFirst;
  const serverFirst = await scram.first(clientFirst);
  if (serverFirst.kind === "fail") return scram.user === "" ? undefined : { user: scram.user, ok: false };
  const clientFinal = await challenge(s, btoa(serverFirst.text));
  if (typeof clientFinal !== "string") return clientFinal;
  const serverFinal = await scram.final(clientFinal);
  if (serverFinal.kind === "fail") return { user: scram.user, ok: false };
  const last = await challenge(s, btoa(serverFinal.text));
  if (typeof last !== "string") return last;
  return { user: scram.user, ok: last === "" };
}

/** Runs the exchange of `mechanism`. */
function exchange(s: Session, mechanism: string, first: string | undefined): Promise<Outcome> {
  if (mechanism === "CRAM-MD5") return cramExchange(s, first);
  if (mechanism.startsWith("SCRAM-")) return scramExchange(s, mechanism, first);
  return plainExchange(s, mechanism, first);
}

/** The AUTH command: `AUTH <mechanism> [initial-response]`. */
export async function authenticate(s: Session, arg: string): Promise<void> {
  const cfg = s.env.server.auth;
  if (!cfg || !s.env.credentials) return s.badCommand("AUTH", R.notImplemented);
  if (!s.esmtp) return s.badCommand("AUTH", R.needHelo);
  if (s.auth) return s.badCommand("AUTH", R.alreadyAuthenticated);
  if (s.transaction) return s.badCommand("AUTH", R.authInTransaction);
  const [word, initial, ...extra] = arg.split(" ");
  const mechanism = word.toUpperCase();
  if (word === "" || extra.length > 0) {
    return s.badCommand("AUTH", R.syntax("AUTH mechanism [initial-response]"));
  }
  if (!s.env.mechanisms.includes(mechanism)) return s.badCommand("AUTH", R.unknownMechanism);
  if (!sessionMechanisms(s).includes(mechanism)) return s.refuse("AUTH", R.encryptionRequired);
  if (initial !== undefined && initial.length > MAX_AUTH_LINE - MAX_COMMAND_LINE) {
    return s.refuse("AUTH", R.badBase64);
  }
  const first = initial === undefined ? undefined : decodeResponse(initial);
  if (initial !== undefined && first === undefined) return s.refuse("AUTH", R.badBase64);
  s.busy = true;
  try {
    let outcome: Outcome;
    try {
      outcome = await exchange(s, mechanism, first);
    } catch (err) {
      log.error(COMPONENT, `AUTH for ${s.clientLabel} failed: ${(err as Error).message}`);
      return s.refuse("AUTH", R.authTemporaryFailure);
    }
    if (outcome && "aborted" in outcome) return;
    if (outcome?.ok) {
      s.auth = { user: outcome.user, mechanism, trusted: s.env.trustedMechanisms.includes(mechanism) };
      log.info(
        COMPONENT,
        `${s.clientLabel}: sasl_method=${mechanism}, sasl_username=${printable(outcome.user)}`,
      );
      return s.reply(R.authOk);
    }
    s.authFailures++;
    s.env.counters.saslFailure(mechanism);
    const delay = Math.min(cfg.failure_delay * s.authFailures, MAX_FAILURE_DELAY_MS);
    await new Promise((resolve) => setTimeout(resolve, delay));
    // Postfix's line, which fail2ban's postfix filter (mode auth) bans on.
    const user = outcome ? `, sasl_username=${printable(outcome.user)}` : "";
    log.warn(
      COMPONENT,
      `${s.clientLabel}: SASL ${mechanism} authentication failed: authentication failure${user}`,
    );
    if (cfg.max_failures > 0 && s.authFailures >= cfg.max_failures) {
      return s.end("AUTH", R.tooManyAuthFailures(s.host), `after ${s.authFailures} failures`);
    }
    s.refuse("AUTH", R.authFailed, "", { quiet: true });
  } finally {
    s.busy = false;
  }
}
