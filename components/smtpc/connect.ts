// Finding a server that will talk: the route's hosts are tried in the order smar gave them (MX preference,
// equal preferences shuffled by smar; mailertable host lists as written). A refused or timed-out
// connection, a dead connection, a greeting that is not 2xx (421 included), a refused EHLO/HELO/LHLO or a
// TLS requirement that cannot be met moves on to the next host; an opportunistic handshake that fails is
// retried once on the same host without TLS. Returns a Link (link.ts) to the first host that got through
// the opening (hello.ts), or the reason the last attempt failed (every recipient then gets `temp`: the
// opening of a session is never reason enough to bounce). Connects out only to the route's hosts and
// port, or to the LMTP unix socket `LMTP_socket` for a route host LMTP_SOCKET_ADDRESS.

import { LMTP_SOCKET_ADDRESS } from "../protocol/messages.ts";
import type { DeliveryTransaction, FailedHost, Relay } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { hello } from "./hello.ts";
import { Link, type LinkTarget } from "./link.ts";
import type { Deadlines } from "./timeouts.ts";
import type { TlsSettings } from "./tls.ts";
import { ioMessage, Wire } from "./wire.ts";

export type Connection =
  | { ok: true; link: Link; failed: FailedHost[] }
  | { ok: false; reason: string; failed: FailedHost[] };

export interface ConnectOptions {
  hostname: string;
  ioTimeout: number;
  deadlines: Deadlines;
  tls: TlsSettings;
  /** The LMTP unix socket (smtpc's LMTP_socket), when configured. */
  lmtpSocket?: string;
  /** Aborted on graceful stop: the attempt in progress ends at once. */
  signal: AbortSignal;
  now: () => number;
}

/** `name[address]:port` (or `name[path]` for a unix socket), the way logs and results name a server. */
export function relayName(host: { name: string; address: string }, port: number, socket?: string): string {
  return socket !== undefined ? `${host.name}[${socket}]` : `${host.name}[${host.address}]:${port}`;
}

/** Opens a link to the first host of `ta.route` that gets through the opening of a session. */
export async function connectFirst(ta: DeliveryTransaction, opts: ConnectOptions): Promise<Connection> {
  const { protocol, port, hosts } = ta.route;
  let reason = "no host to connect to";
  const failed: FailedHost[] = [];
  for (const host of hosts) {
    const target: LinkTarget = { protocol, host, port };
    let offerTls = true;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (opts.signal.aborted) return { ok: false, reason: "delivery agent is stopping", failed };
      const got = await openLink(ta, target, offerTls, opts);
      if (got.ok) return { ok: true, link: got.link, failed };
      reason = got.reason;
      log.info("smtpc", `${ta.messageId}: ${reason}`);
      if (!got.retryPlain) {
        if (!opts.signal.aborted) failed.push({ address: host.address, port, reason });
        break;
      }
      offerTls = false;
    }
  }
  return { ok: false, reason, failed };
}

/** The server of `target` as results name it: a unix socket has its path as address and port 0. */
function serverOf(target: LinkTarget, socket: string | undefined): Relay {
  return socket !== undefined
    ? { name: target.host.name, address: socket, port: 0 }
    : { name: target.host.name, address: target.host.address, port: target.port };
}

type Opening = { ok: true; link: Link } | { ok: false; reason: string; retryPlain?: boolean };

async function openLink(
  ta: DeliveryTransaction,
  target: LinkTarget,
  offerTls: boolean,
  opts: ConnectOptions,
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
    return { ok: false, reason: `connect to ${relay}: ${describeConnectError(err)}` };
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
      offerTls: offerTls && !unix,
      logId: ta.messageId,
    });
    if (h.ok) {
      const server = serverOf(target, unix ? opts.lmtpSocket : undefined);
      return {
        ok: true,
        link: new Link(wire, target, relay, h.exts, opts.deadlines, h.tls, opts.now(), server),
      };
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

function describeConnectError(err: unknown): string {
  if (err instanceof Error && err.name === "NotCapable") return "Connection not permitted";
  return ioMessage(err);
}
