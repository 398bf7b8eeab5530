// Finding a server that will talk: the route's hosts are tried in the order smar gave them (MX preference,
// equal preferences shuffled by smar; mailertable host lists as written). A refused or timed-out
// connection, a dead connection, a greeting that is not 2xx (421 included), a refused EHLO/HELO/LHLO or a
// TLS requirement that cannot be met moves on to the next host; an opportunistic handshake that fails is
// retried once on the same host without TLS. Each host's TLS requirement is decided first
// (mail/tls_policy.ts decideTls: tls_srv, DANE, MTA-STS, security_level); a host whose requirement cannot
// be met at all (a failed TLSA lookup, an MX host outside the MTA-STS policy) is skipped without a
// connection. When the last failure was a TLS policy's, the recipients get its status (4.7.5, or 5.7.10
// for REQUIRETLS when every host failed it for good). Returns a Link (link.ts) to the first host that got through
// the opening (hello.ts), or the reason the last attempt failed (every recipient then gets `temp`: the
// opening of a session is never reason enough to bounce). A host the authinfo map names (authinfo.ts)
// gets its credentials in the opening; an entry that cannot be used (a refused inline secret, a secret
// file that cannot be read) fails that host without connecting (4.7.0). Connects out only to the route's
// hosts and port, or to the LMTP unix socket `LMTP_socket` for a route host LMTP_SOCKET_ADDRESS.

import { LMTP_SOCKET_ADDRESS } from "../protocol/messages.ts";
import type {
  DeliveryTransaction,
  FailedHost,
  Relay,
  TlsFailure,
  TlsPolicyReport,
} from "../protocol/messages.ts";
import { decideTls, describeRequirement, type TlsRequirement } from "../mail/tls_policy.ts";
import { log } from "../util/log.ts";
import type { Credentials } from "./auth.ts";
import type { Authinfo } from "./authinfo.ts";
import { hello, type PolicyFailure } from "./hello.ts";
import { Link, type LinkTarget } from "./link.ts";
import type { Deadlines } from "./timeouts.ts";
import type { TlsSettings } from "./tls.ts";
import { ioMessage, Wire } from "./wire.ts";

export type Connection =
  /** `tlsFailures`: hosts a TLS policy refused after connecting (TLS-RPT counts them). */
  | { ok: true; link: Link; failed: FailedHost[]; tlsFailures: TlsFailure[] }
  | {
    ok: false;
    reason: string;
    failed: FailedHost[];
    tlsFailures: TlsFailure[];
    /** The last failure was a TLS policy's (every one for good: permanent). */
    policy?: PolicyFailure;
    /** The TLS requirement of the last host tried. */
    report?: TlsPolicyReport;
    /** The enhanced status of the last failure when it was AUTH's (4.7.0, 4.7.8, 4.7.10). */
    enhanced?: string;
  };

export interface ConnectOptions {
  hostname: string;
  ioTimeout: number;
  deadlines: Deadlines;
  tls: TlsSettings;
  /** The LMTP unix socket (smtpc's LMTP_socket), when configured. */
  lmtpSocket?: string;
  /** The authinfo map, when configured: which hosts get AUTH, as whom. */
  authinfo?: Authinfo;
  /** Aborted on graceful stop: the attempt in progress ends at once. */
  signal: AbortSignal;
  now: () => number;
}

/** `name[address]:port` (or `name[path]` for a unix socket), the way logs and results name a server. */
export function relayName(host: { name: string; address: string }, port: number, socket?: string): string {
  return socket !== undefined ? `${host.name}[${socket}]` : `${host.name}[${host.address}]:${port}`;
}

/** The TLS requirement of delivering `ta` to `host` (mail/tls_policy.ts). */
export function requirementFor(
  ta: DeliveryTransaction,
  host: { name: string; address: string },
  securityLevel: TlsSettings["level"],
): TlsRequirement {
  if (host.address === LMTP_SOCKET_ADDRESS) {
    return { level: "none", match: [], source: "security_level", rule: "LMTP socket", status: "4.7.5" };
  }
  // REQUIRETLS is about relaying: an LMTP route is final delivery (RFC 8689 4.2.1 covers SMTP relays).
  return decideTls(ta.route.tls, host, securityLevel, {
    requireTls: ta.requireTls && ta.route.protocol === "esmtp",
    tlsRequiredNo: ta.tlsRequiredNo,
  });
}

/** What smtpc reports about the requirement `req` (for qmgr's logs and TLS reports). */
export function reportOf(ta: DeliveryTransaction, req: TlsRequirement, failure?: string): TlsPolicyReport {
  const r: TlsPolicyReport = {
    level: req.level,
    source: req.source,
    rule: req.rule,
    met: failure === undefined,
  };
  if (ta.route.tls) r.domain = ta.route.tls.domain;
  if (failure !== undefined) r.failure = failure;
  return r;
}

/** The recipients' domain, which authinfo keys may name (qmgr groups a transaction by destination). */
export function domainOf(ta: DeliveryTransaction): string | undefined {
  const address = ta.recipients[0]?.address ?? "";
  const at = address.lastIndexOf("@");
  return at < 0 ? undefined : address.slice(at + 1);
}

/**
 * Who a link to `host` must be authenticated as for `ta`: "" for no AUTH, else the authinfo key and user
 * (an unusable entry too, so that no cached link matches it). The connection cache compares it.
 */
export function authIdentity(
  authinfo: Authinfo | undefined,
  ta: DeliveryTransaction,
  host: { name: string; address: string },
): string {
  const entry = authinfo?.find(host, ta.route.port, domainOf(ta));
  if (!entry) return "";
  return entry.problem !== undefined ? `!${entry.key}` : `${entry.key}\0${entry.user}`;
}

type HostAuth = { credentials?: Credentials; identity: string } | { problem: string };

/** The credentials for `host`, none, or why its authinfo entry cannot be used. */
async function hostAuth(
  ta: DeliveryTransaction,
  host: { name: string; address: string },
  opts: ConnectOptions,
): Promise<HostAuth> {
  const entry = opts.authinfo?.find(host, ta.route.port, domainOf(ta));
  if (!entry) return { identity: "" };
  if (entry.problem !== undefined) return { problem: entry.problem };
  try {
    const credentials = await opts.authinfo!.credentials(entry);
    return { credentials, identity: `${entry.key}\0${entry.user}` };
  } catch (err) {
    return { problem: (err as Error).message };
  }
}

/** Opens a link to the first host of `ta.route` that gets through the opening of a session. */
export async function connectFirst(ta: DeliveryTransaction, opts: ConnectOptions): Promise<Connection> {
  const { protocol, port, hosts } = ta.route;
  let reason = "no host to connect to";
  let policy: PolicyFailure | undefined;
  let report: TlsPolicyReport | undefined;
  let allPermanent = hosts.length > 0;
  let enhanced: string | undefined;
  const failed: FailedHost[] = [];
  const tlsFailures: TlsFailure[] = [];
  for (const host of hosts) {
    const target: LinkTarget = {
      protocol,
      host,
      port,
      ...(ta.route.implicitTls ? { implicitTls: true } : {}),
    };
    const req = requirementFor(ta, host, opts.tls.level);
    if (req.unmet) {
      reason = `TLS policy ${describeRequirement({ ...req, unmet: undefined })} not met for ${
        relayName(host, port)
      }: ${req.unmet}`;
      log.info("smtpc", `${ta.messageId}: ${reason}`);
      policy = { status: req.status, permanent: req.permanent === true };
      allPermanent &&= policy.permanent;
      report = reportOf(ta, req, req.unmet);
      continue;
    }
    const auth = await hostAuth(ta, host, opts);
    if ("problem" in auth) {
      reason = `no AUTH for ${relayName(host, port)}: ${auth.problem}`;
      log.error("smtpc", `${ta.messageId}: ${reason}`);
      policy = undefined;
      allPermanent = false;
      enhanced = "4.7.0";
      continue;
    }
    let offerTls = true;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (opts.signal.aborted) {
        return { ok: false, reason: "delivery agent is stopping", failed, tlsFailures };
      }
      const got = await openLink(ta, target, offerTls, req, opts, auth);
      if (got.ok) return { ok: true, link: got.link, failed, tlsFailures };
      if (got.policy) {
        tlsFailures.push({ name: host.name, address: host.address, source: req.source, reason: got.reason });
      }
      reason = got.reason;
      policy = got.policy;
      enhanced = got.enhanced;
      allPermanent &&= got.policy?.permanent === true;
      report = reportOf(ta, req, got.policy ? got.reason : undefined);
      log.info("smtpc", `${ta.messageId}: ${reason}`);
      if (!got.retryPlain) {
        // A TLS policy's refusal is no sign the host is down: no down mark (other mail may go there).
        if (!opts.signal.aborted && !got.policy) failed.push({ address: host.address, port, reason });
        break;
      }
      offerTls = false;
    }
  }
  if (policy) policy = { status: allPermanent ? policy.status : "4.7.5", permanent: allPermanent };
  return { ok: false, reason, failed, tlsFailures, policy, report, enhanced: policy ? undefined : enhanced };
}

/** The server of `target` as results name it: a unix socket has its path as address and port 0. */
function serverOf(target: LinkTarget, socket: string | undefined): Relay {
  return socket !== undefined
    ? { name: target.host.name, address: socket, port: 0 }
    : { name: target.host.name, address: target.host.address, port: target.port };
}

type Opening =
  | { ok: true; link: Link }
  | { ok: false; reason: string; retryPlain?: boolean; policy?: PolicyFailure; enhanced?: string };

async function openLink(
  ta: DeliveryTransaction,
  target: LinkTarget,
  offerTls: boolean,
  requirement: TlsRequirement,
  opts: ConnectOptions,
  auth: { credentials?: Credentials; identity: string },
): Promise<Opening> {
  const unix = target.host.address === LMTP_SOCKET_ADDRESS;
  if (unix && (target.protocol !== "lmtp" || opts.lmtpSocket === undefined)) {
    const why = target.protocol !== "lmtp" ? "only LMTP is spoken" : "LMTP_socket is not configured";
    return { ok: false, reason: `connect to the LMTP socket: ${why}` };
  }
  const relay = relayName(target.host, target.port, unix ? opts.lmtpSocket : undefined);
  let conn: Deno.Conn;
  try {
    conn = await connectWithin(
      unix
        ? { transport: "unix", path: opts.lmtpSocket! }
        : { hostname: target.host.address, port: target.port },
      opts.deadlines.connect,
      opts.signal,
    );
  } catch (err) {
    return { ok: false, reason: `connect to ${relay}: ${describeConnectError(err, target.host.address)}` };
  }
  // Our writes are whole commands, batches or 64 KiB chunks: Nagle would only delay the last one.
  if (!unix) (conn as Deno.TcpConn).setNoDelay?.(true);
  const wire = new Wire(conn, opts.ioTimeout);
  const onAbort = () => wire.abort("delivery agent is stopping");
  opts.signal.addEventListener("abort", onAbort, { once: true });
  try {
    const h = await hello(wire, target, relay, {
      hostname: opts.hostname,
      deadlines: opts.deadlines,
      tls: opts.tls,
      requirement,
      offerTls: offerTls && !unix,
      logId: ta.messageId,
      credentials: auth.credentials,
    });
    if (h.ok && auth.credentials && !h.authenticated) {
      // Every path of the opening that has credentials ends in AUTH; one that does not (a bug) must
      // never lead to mail sent unauthenticated to a hop the authinfo map names.
      wire.close();
      return {
        ok: false,
        reason: `AUTH to ${relay} was not done (authinfo ${auth.credentials.key})`,
        enhanced: "4.7.0",
      };
    }
    if (h.ok) {
      const server = serverOf(target, unix ? opts.lmtpSocket : undefined);
      const link = new Link(wire, target, relay, h.exts, opts.deadlines, h.tls, opts.now(), server);
      link.requirement = requirement;
      link.report = reportOf(ta, requirement);
      link.auth = auth.identity;
      return { ok: true, link };
    }
    if (!wire.closed) await wire.write("QUIT\r\n", opts.deadlines.quit).catch(() => {});
    wire.close();
    return h;
  } catch (err) {
    wire.close();
    throw err;
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
  }
}

class ConnectTimeout extends Error {
  override name = "ConnectTimeout";
}

type Address = { hostname: string; port: number } | { transport: "unix"; path: string };

/** Deno.connect with a deadline and an abort signal; a connection that arrives too late is closed. */
function connectWithin(to: Address, timeoutMs: number, stop: AbortSignal): Promise<Deno.Conn> {
  return new Promise((resolve, reject) => {
    let settled = false;
    // Cancels the pending connect when we give up on it (never aborted once connected).
    const cancel = new AbortController();
    const finish = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
      cancel.abort();
      reject(err);
    };
    const onStop = () => finish(new Error("delivery agent is stopping"));
    const timer = setTimeout(() => finish(new ConnectTimeout("Connection timed out")), timeoutMs);
    stop.addEventListener("abort", onStop, { once: true });
    const connecting: Promise<Deno.Conn> = "path" in to
      ? Deno.connect(to)
      : Deno.connect({ hostname: to.hostname, port: to.port, signal: cancel.signal });
    connecting.then(
      (conn) => {
        if (settled) {
          try {
            conn.close();
          } catch {
            // closed by the cancel signal already
          }
          return;
        }
        settled = true;
        clearTimeout(timer);
        stop.removeEventListener("abort", onStop);
        resolve(conn);
      },
      (err) => finish(err instanceof Error ? err : new Error(String(err))),
    );
  });
}

function describeConnectError(err: unknown, address: string): string {
  if (err instanceof Error && err.name === "NotCapable") {
    // Without the ipv6 flag only the mailertable's IPv6 literals are in smtpc's permission.
    return address.includes(":") && address !== LMTP_SOCKET_ADDRESS
      ? "Connection not permitted: IPv6 delivery is off (smtpc flags = { ipv6 })"
      : "Connection not permitted";
  }
  return ioMessage(err);
}
