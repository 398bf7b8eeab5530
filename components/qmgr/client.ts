// Client stubs for talking to qmgr: the only way other components build qmgr-bound messages.

import type { Endpoint } from "../protocol/endpoint.ts";
import type {
  Envelope,
  QmgrCommitFailed,
  QmgrCommitted,
  QmgrConnVerdict,
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
