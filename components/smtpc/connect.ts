// Finding a server that will talk: the route's hosts are tried in order; a refused or timed-out
// connection, a dead connection or a greeting that is not 2xx moves on to the next host. Returns the first
// host that greeted with 2xx, or the reason the last attempt failed (every recipient then gets `temp`:
// a greeting is never reason enough to bounce). Connects out only to the route's hosts and port.

import type { DeliveryTransaction } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { replyClass, replyText } from "./reply_reader.ts";
import { ioMessage, Wire, WireError } from "./wire.ts";

export const CONNECT_TIMEOUT = 30_000;

export type Connection =
  | { ok: true; wire: Wire; relay: string }
  | { ok: false; reason: string };

export interface ConnectOptions {
  ioTimeout: number;
  /** Aborted on graceful stop: the attempt in progress ends at once. */
  signal: AbortSignal;
}

/** `name[address]:port`, the way logs and results name a server. */
export function relayName(host: { name: string; address: string }, port: number): string {
  return `${host.name}[${host.address}]:${port}`;
}

/** Connects to the first host of `ta.route` that greets with 2xx. */
export async function connectFirst(ta: DeliveryTransaction, opts: ConnectOptions): Promise<Connection> {
  const { port, hosts } = ta.route;
  let reason = "no host to connect to";
  for (const host of hosts) {
    if (opts.signal.aborted) return { ok: false, reason: "delivery agent is stopping" };
    const relay = relayName(host, port);
    let conn: Deno.Conn;
    try {
      conn = await connectWithin(host.address, port, Math.min(CONNECT_TIMEOUT, opts.ioTimeout), opts.signal);
    } catch (err) {
      reason = `connect to ${relay}: ${describeConnectError(err)}`;
      log.info("smtpc", `${ta.messageId}: ${reason}`);
      continue;
    }
    // Our writes are whole commands, batches or 64 KiB chunks: Nagle would only delay the last one.
    (conn as Deno.TcpConn).setNoDelay?.(true);
    const wire = new Wire(conn, opts.ioTimeout);
    const onAbort = () => wire.abort("delivery agent is stopping");
    opts.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const greeting = await wire.readReply();
      if (replyClass(greeting) === 2) return { ok: true, wire, relay };
      reason = `host ${relay} refused to talk to me: ${replyText(greeting)}`;
      await wire.write("QUIT\r\n").catch(() => {});
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      reason = err.kind === "timeout"
        ? `conversation with ${relay} timed out while receiving the initial server greeting`
        : `lost connection with ${relay} while receiving the initial server greeting: ${err.message}`;
    } finally {
      opts.signal.removeEventListener("abort", onAbort);
    }
    wire.close();
    log.info("smtpc", `${ta.messageId}: ${reason}`);
  }
  return { ok: false, reason };
}

class ConnectTimeout extends Error {
  override name = "ConnectTimeout";
}

/** Deno.connect with a deadline and an abort signal; a connection that arrives too late is closed. */
function connectWithin(
  hostname: string,
  port: number,
  timeoutMs: number,
  stop: AbortSignal,
): Promise<Deno.Conn> {
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
    Deno.connect({ hostname, port, signal: cancel.signal }).then(
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
