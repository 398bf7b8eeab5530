// Client stubs for talking to smtps: the only way other components build smtps-bound messages. Only the
// metrics worker asks smtps anything.

import type { Endpoint, PeerId } from "../protocol/endpoint.ts";
import type { RpcFailure, SmtpsSnapshotMessage } from "../protocol/messages.ts";

/** Asks an smtps worker (`peer`: `smtps`, or `smtps@2` of several) for its counters (the metrics worker). */
export async function smtpsSnapshot(
  ep: Endpoint,
  timeoutMs?: number,
  peer: PeerId = "smtps",
): Promise<SmtpsSnapshotMessage | RpcFailure> {
  const m = await ep.request(peer, { type: "metrics.snapshot" }, timeoutMs);
  if (m.type === "smtps.snapshot" || m.type === "rpc.failure") return m;
  return { type: "rpc.failure", reason: `unexpected answer ${m.type} to metrics.snapshot` };
}
