// Client stubs for talking to qmgr: the only way other components build qmgr-bound messages.

import type { Endpoint } from "../protocol/endpoint.ts";
import type {
  Envelope,
  QmgrCommitFailed,
  QmgrCommitted,
  QmgrConnVerdict,
  QmgrQueueList,
  QmgrSnapshotMessage,
  RpcFailure,
} from "../protocol/messages.ts";

/** Asks qmgr to commit an envelope durably (IBDB group commit). Resolves once qmgr answers. */
export async function commitEnvelope(
  ep: Endpoint,
  envelope: Envelope,
  timeoutMs?: number,
): Promise<QmgrCommitted | QmgrCommitFailed | RpcFailure> {
  const m = await ep.request("qmgr", { type: "smtps.commit", envelope }, timeoutMs);
  if (m.type === "qmgr.committed" || m.type === "qmgr.commit_failed" || m.type === "rpc.failure") return m;
  return { type: "rpc.failure", reason: `unexpected answer ${m.type} to smtps.commit` };
}

/** Asks qmgr whether a new client connection from `ip` is within the connection limits. */
export async function connectionOpened(
  ep: Endpoint,
  ip: string,
  timeoutMs?: number,
): Promise<QmgrConnVerdict | RpcFailure> {
  const m = await ep.request("qmgr", { type: "smtps.conn_open", ip }, timeoutMs);
  if (m.type === "qmgr.conn_verdict" || m.type === "rpc.failure") return m;
  return { type: "rpc.failure", reason: `unexpected answer ${m.type} to smtps.conn_open` };
}

/** Tells qmgr a client connection from `ip` ended. */
export function connectionClosed(ep: Endpoint, ip: string): void {
  ep.notify("qmgr", { type: "smtps.conn_close", ip });
}

/** Asks qmgr for its counters and the queue's shape (the metrics worker, on a scrape). */
export async function qmgrSnapshot(
  ep: Endpoint,
  timeoutMs?: number,
): Promise<QmgrSnapshotMessage | RpcFailure> {
  const m = await ep.request("qmgr", { type: "metrics.snapshot" }, timeoutMs);
  if (m.type === "qmgr.snapshot" || m.type === "rpc.failure") return m;
  return { type: "rpc.failure", reason: `unexpected answer ${m.type} to metrics.snapshot` };
}

/** Asks qmgr for what `qmgrctl list` shows with these arguments (sender, recipient, domain, state, age, limit). */
export async function queueList(
  ep: Endpoint,
  args: Record<string, string | number>,
  timeoutMs?: number,
): Promise<QmgrQueueList | RpcFailure> {
  const m = await ep.request("qmgr", { type: "metrics.queue_list", args }, timeoutMs);
  if (m.type === "qmgr.queue_list" || m.type === "rpc.failure") return m;
  return { type: "rpc.failure", reason: `unexpected answer ${m.type} to metrics.queue_list` };
}
