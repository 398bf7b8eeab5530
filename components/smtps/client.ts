// Client stubs for talking to smtps: the only way other components build smtps-bound messages. Only the
// metrics worker asks smtps anything.

import type { Endpoint } from "../protocol/endpoint.ts";
import type { RpcFailure, SmtpsSnapshotMessage } from "../protocol/messages.ts";

/** Asks smtps for its counters (the metrics worker, on a scrape). */
export async function smtpsSnapshot(
  ep: Endpoint,
  timeoutMs?: number,
): Promise<SmtpsSnapshotMessage | RpcFailure> {
  const m = await ep.request("smtps", { type: "metrics.snapshot" }, timeoutMs);
  if (m.type === "smtps.snapshot" || m.type === "rpc.failure") return m;
  return { type: "rpc.failure", reason: `unexpected answer ${m.type} to metrics.snapshot` };
}
