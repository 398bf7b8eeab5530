// The opening of a session on a fresh connection: the server's greeting, EHLO (HELO after a 5xx to it)
// or LHLO, then STARTTLS as the host's TLS requirement says (mail/tls_policy.ts: none, may, encrypt,
// verify, dane, mta-sts; tls.ts does the handshake, dane.ts checks DANE), and EHLO again inside TLS. A
// requirement of encrypt or more that is not met ends the opening before any MAIL (the failure names the
// rule, with status 4.7.5; REQUIRETLS's 5.7.10 when the server does not offer REQUIRETLS after STARTTLS).
// Anything else that goes wrong here is a reason to try the next host, never to bounce: the result is a
// failure reason, and `retryPlain` when an opportunistic (`may`) handshake failed and the same host should
// be tried again without TLS. On an implicit-TLS route (`smtps:` / `lmtps:`) the handshake comes first,
// before the greeting, and STARTTLS is never sent. Bytes the server sent after its 220 to STARTTLS are discarded before the handshake and
// logged (the client side of the STARTTLS command injection, CVE-2021-38371 class). When the authinfo map
// has credentials for the host (authinfo.ts), TLS is required whatever the requirement says (4.7.10 when
// it cannot be had), and AUTH (auth.ts) follows the EHLO inside TLS: a host that refuses the credentials
// is a failure (deferred, never bounced), and no password ever goes out in clear. Talks only over the
// connection it is given.

import { log } from "../util/log.ts";
import { type Credentials, saslAuthenticate } from "./auth.ts";
import { type Extensions, parseExtensions } from "./commands.ts";
import type { LinkTarget } from "./link.ts";
import { replyClass, replyText } from "./reply_reader.ts";
import type { Deadlines } from "./timeouts.ts";
import { describeTls, startTls, type TlsInfo, type TlsSettings, type Upgraded } from "./tls.ts";
import { describeRequirement, requiresTls, type TlsRequirement } from "../mail/tls_policy.ts";
import { daneVerify } from "./dane.ts";
import { type Wire, WireError } from "./wire.ts";

export interface HelloOptions {
  /** Our name in EHLO/HELO/LHLO. */
  hostname: string;
  deadlines: Deadlines;
  tls: TlsSettings;
  /** What this host's connection must have (mail/tls_policy.ts decideTls). */
  requirement: TlsRequirement;
  /** False on the plain-text retry after a failed opportunistic handshake, and for unix sockets. */
  offerTls: boolean;
  /** Prefix of log lines (the message id). */
  logId: string;
  /** The authinfo map's credentials for this host: TLS is then required, and AUTH follows. */
  credentials?: Credentials;
}

/** A TLS requirement that was not met: the status the recipients get, and whether it is for good. */
export interface PolicyFailure {
  status: string;
  permanent: boolean;
}

export type Hello =
  | { ok: true; exts: Extensions; tls?: TlsInfo; authenticated?: boolean }
  | { ok: false; reason: string; retryPlain?: boolean; policy?: PolicyFailure; enhanced?: string };

/** RFC 5248 X.7.10: an encryption layer is needed for the authentication asked for. */
const NEED_TLS = "4.7.10";

/** Runs the opening on `wire`; on failure the caller closes the connection. */
export async function hello(wire: Wire, target: LinkTarget, relay: string, o: HelloOptions): Promise<Hello> {
  let stage = "receiving the initial server greeting";
  try {
    // Implicit TLS (`smtps:` / `lmtps:` routes): the handshake before the greeting, never STARTTLS.
    let implicit: TlsInfo | undefined;
    if (target.implicitTls) {
      stage = "doing the TLS handshake";
      const got = await implicitHandshake(wire, target, relay, o);
      if (!got.ok) return got;
      implicit = got.info;
      stage = "receiving the initial server greeting";
    }
    const greeting = await wire.readReply(o.deadlines.greeting);
    if (replyClass(greeting) !== 2) {
      return { ok: false, reason: `host ${relay} refused to talk to me: ${replyText(greeting)}` };
    }
    const lmtp = target.protocol === "lmtp";
    stage = lmtp ? "sending LHLO" : "sending EHLO";
    let exts = await ehlo(wire, lmtp, relay, o);
    if (typeof exts === "string") return { ok: false, reason: exts };

    const req = o.requirement;
    const level = req.level;
    const creds = o.credentials;
    const required = requiresTls(level) || creds !== undefined;
    const unmet = (why: string): Hello =>
      requiresTls(level) || !creds ? policyUnmet(req, relay, why) : {
        ok: false,
        reason: `TLS is required for AUTH (authinfo ${creds.key}) with ${relay}: ${why}`,
        enhanced: NEED_TLS,
      };
    // Inside TLS (implicit or after STARTTLS): the next hop must take REQUIRETLS on, then AUTH if asked.
    const inside = async (exts: Extensions, tls: TlsInfo): Promise<Hello> => {
      if (req.requireTls && !exts.has("REQUIRETLS")) return requireTlsRefused(relay);
      if (!creds) return { ok: true, exts, tls };
      stage = "sending AUTH";
      const done = await saslAuthenticate(wire, exts, creds, relay, o.deadlines.command);
      if (!done.ok) {
        log.warn("smtpc", `${o.logId}: ${done.reason}`);
        return { ok: false, reason: done.reason, enhanced: done.enhanced };
      }
      log.info(
        "smtpc",
        `${o.logId}: authenticated to ${relay} as ${creds.user} with ${done.mechanism} (authinfo ${creds.key})`,
      );
      return { ok: true, exts, tls, authenticated: true };
    };
    if (implicit) return await inside(exts, implicit);
    if (creds && level === "none") {
      return unmet(`the TLS policy (${describeRequirement({ ...req, unmet: undefined })}) says none`);
    }
    if (level === "none" || (!o.offerTls && !required)) return { ok: true, exts };
    if (!o.offerTls) return unmet("TLS cannot be used on this connection");
    if (!exts.has("STARTTLS")) {
      if (required) return unmet("the server does not offer STARTTLS");
      return { ok: true, exts };
    }
    stage = "sending STARTTLS";
    await wire.write("STARTTLS\r\n", o.deadlines.command);
    const go = await wire.readReply(o.deadlines.command);
    if (replyClass(go) !== 2) {
      const why = `host ${relay} refused STARTTLS: ${replyText(go)}`;
      // A 421 closes the session: that host is done, TLS or not.
      if (required) return unmet(why);
      if (go.code === 421) return { ok: false, reason: why };
      log.info("smtpc", `${o.logId}: ${why}; going on without TLS`);
      return { ok: true, exts };
    }
    const injected = wire.discardBuffered();
    if (injected > 0) {
      log.warn(
        "smtpc",
        `${o.logId}: discarded ${injected} bytes that ${relay} sent after its reply to STARTTLS (command injection)`,
      );
    }
    stage = "doing the TLS handshake";
    let upgraded: Upgraded;
    try {
      const names = level === "verify" && req.match.length > 0 ? req.match : [target.host.name];
      upgraded = await startTls(wire.stream, target.host.name, o.tls, o.deadlines.command, names);
    } catch (err) {
      const why = `${(err as Error).message} with ${relay}`;
      if (required) return unmet(why);
      log.info("smtpc", `${o.logId}: ${why}; trying again without TLS`);
      return { ok: false, reason: why, retryPlain: true };
    }
    wire.upgrade(upgraded.stream);
    const info = upgraded.info;
    const auth = authenticate(req, upgraded, target.host.name);
    if (auth.problem) return unmet(auth.problem);
    const by = auth.by ? `, authenticated by ${auth.by}` : "";
    log.info("smtpc", `${o.logId}: TLS with ${relay}: ${describeTls(info)}${by}`);
    stage = lmtp ? "sending LHLO" : "sending EHLO";
    exts = await ehlo(wire, lmtp, relay, { ...o, helo: false });
    if (typeof exts === "string") return { ok: false, reason: exts };
    return await inside(exts, info);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    const reason = err.kind === "timeout"
      ? `conversation with ${relay} timed out while ${stage}`
      : `lost connection with ${relay} while ${stage}: ${err.message}`;
    return { ok: false, reason };
  }
}

/** A TLS requirement `req` not met with `relay`, for the reason `why`. */
function policyUnmet(req: TlsRequirement, relay: string, why: string): Hello {
  return {
    ok: false,
    reason: `TLS policy ${describeRequirement({ ...req, unmet: undefined })} not met with ${relay}: ${why}`,
    policy: { status: req.status, permanent: req.permanent === true },
  };
}

/** RFC 8689 4.2.1: the next hop must take the REQUIRETLS promise on, or the message is returned. */
function requireTlsRefused(relay: string): Hello {
  return {
    ok: false,
    reason: `REQUIRETLS: ${relay} does not offer REQUIRETLS`,
    policy: { status: "5.7.10", permanent: true },
  };
}

/**
 * The handshake of an implicit-TLS route, on a connection nothing was read from yet. TLS is the route's
 * own requirement, so a failure moves on to the next host (never plain text); the certificate is checked
 * as the host's requirement says (verify, DANE, MTA-STS), not at all below that (encrypt: an lda's
 * self-signed certificate is fine unless security_level or tls_srv ask for verify).
 */
async function implicitHandshake(
  wire: Wire,
  target: LinkTarget,
  relay: string,
  o: HelloOptions,
): Promise<{ ok: true; info: TlsInfo } | Extract<Hello, { ok: false }>> {
  const req = o.requirement;
  const names = req.level === "verify" && req.match.length > 0 ? req.match : [target.host.name];
  let upgraded: Upgraded;
  try {
    upgraded = await startTls(wire.stream, target.host.name, o.tls, o.deadlines.greeting, names);
  } catch (err) {
    return { ok: false, reason: `${(err as Error).message} with ${relay} (implicit TLS)` };
  }
  wire.upgrade(upgraded.stream);
  const auth = authenticate(req, upgraded, target.host.name);
  if (auth.problem) return policyUnmet(req, relay, auth.problem) as Extract<Hello, { ok: false }>;
  const by = auth.by ? `, authenticated by ${auth.by}` : "";
  log.info("smtpc", `${o.logId}: implicit TLS with ${relay}: ${describeTls(upgraded.info)}${by}`);
  return { ok: true, info: upgraded.info };
}

/** EHLO (HELO after a 5xx, unless `helo` is false) or LHLO: the extensions, or why the server refused. */
async function ehlo(
  wire: Wire,
  lmtp: boolean,
  relay: string,
  o: HelloOptions & { helo?: boolean },
): Promise<Extensions | string> {
  const verb = lmtp ? "LHLO" : "EHLO";
  await wire.write(`${verb} ${o.hostname}\r\n`, o.deadlines.command);
  let reply = await wire.readReply(o.deadlines.command);
  if (replyClass(reply) === 2) return parseExtensions(reply);
  if (!lmtp && o.helo !== false && replyClass(reply) === 5) {
    await wire.write(`HELO ${o.hostname}\r\n`, o.deadlines.command);
    reply = await wire.readReply(o.deadlines.command);
    if (replyClass(reply) === 2) return new Map();
  }
  return `host ${relay} refused ${verb}: ${replyText(reply)}`;
}

/** Whether the handshake's result authenticates the server as `req` asks: why not, or by what. */
function authenticate(req: TlsRequirement, up: Upgraded, host: string): { problem?: string; by?: string } {
  switch (req.level) {
    case "none":
    case "may":
    case "encrypt":
      return {};
    case "verify":
    case "mta-sts":
      return up.info.verified
        ? { by: req.level === "verify" ? "its CA" : "its CA (MTA-STS)" }
        : { problem: `server certificate not verified: ${up.info.verifyError}` };
    case "dane": {
      const r = daneVerify(req.tlsa ?? [], up.chain, [host.toLowerCase()]);
      return r.ok ? { by: r.matched } : { problem: `DANE: ${r.reason}` };
    }
    default: {
      const never: never = req.level;
      return { problem: `unknown TLS level ${never}` };
    }
  }
}
