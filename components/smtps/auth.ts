// SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms: offered after EHLO when the
// section has an `auth { }` block, and only under TLS unless its flags allow plain text. Credentials are
// checked against the section's credentials map (salted slow hashes). A failed attempt is answered 535
// after a delay that grows with each failure; max_failures of them end the session with 421. A success
// with one of trusted_mechs lets the client relay. Reads the client's responses itself (334 challenges).

import { log } from "../util/log.ts";
import { MAX_COMMAND_LINE, readLine } from "../smtp_io/line_reader.ts";
import { R } from "./replies.ts";
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

/** Whether AUTH is offered to this session now (EHLO lists it). */
export function authOffered(s: Session): boolean {
  const auth = s.env.server.auth;
  return auth !== undefined && s.auth === undefined &&
    (s.tls !== undefined || auth.flags.includes("allow_plaintext"));
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

/** The credentials of one exchange, or ABORTED (the reply is sent already). */
async function exchange(
  s: Session,
  mechanism: string,
  initial: string | undefined,
): Promise<{ user: string; password: string } | Aborted | undefined> {
  const first = initial === undefined ? undefined : decodeResponse(initial);
  if (initial !== undefined && first === undefined) {
    s.refuse("AUTH", R.badBase64);
    return ABORTED;
  }
  if (mechanism === "PLAIN") {
    const message = first ?? await challenge(s, "");
    return typeof message === "string" ? parsePlain(message) : message;
  }
  const user = first ?? await challenge(s, btoa("Username:"));
  if (typeof user !== "string") return user;
  const password = await challenge(s, btoa("Password:"));
  if (typeof password !== "string") return password;
  return user === "" || password === "" ? undefined : { user, password };
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
  if (!s.tls && !cfg.flags.includes("allow_plaintext")) return s.refuse("AUTH", R.encryptionRequired);
  if (initial !== undefined && initial.length > MAX_AUTH_LINE - MAX_COMMAND_LINE) {
    return s.refuse("AUTH", R.badBase64);
  }
  const credentials = await exchange(s, mechanism, initial);
  if (credentials && "aborted" in credentials) return;
  s.busy = true;
  try {
    let ok = false;
    try {
      ok = credentials !== undefined &&
        await s.env.credentials.verify(credentials.user, credentials.password);
    } catch (err) {
      log.error(COMPONENT, `AUTH for ${s.clientLabel} failed: ${(err as Error).message}`);
      return s.refuse("AUTH", R.authTemporaryFailure);
    }
    if (ok) {
      s.auth = { user: credentials!.user, mechanism, trusted: s.env.trustedMechanisms.includes(mechanism) };
      log.info(
        COMPONENT,
        `${s.clientLabel}: sasl_method=${mechanism}, sasl_username=${printable(credentials!.user)}`,
      );
      return s.reply(R.authOk);
    }
    s.authFailures++;
    const delay = Math.min(cfg.failure_delay * s.authFailures, MAX_FAILURE_DELAY_MS);
    await new Promise((resolve) => setTimeout(resolve, delay));
    // Postfix's line, which fail2ban's postfix filter (mode auth) bans on.
    const user = credentials ? `, sasl_username=${printable(credentials.user)}` : "";
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
