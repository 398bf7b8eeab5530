// Client stub for handing a delivery transaction to smtpc.

import { reasonResult } from "../mail/result.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import type { DeliveryTransaction, SmtpcResult } from "../protocol/messages.ts";

/** Hands `ta` to smtpc; on any failure to get an answer every recipient is reported as a temporary failure. */
export async function deliver(
  ep: Endpoint,
  ta: DeliveryTransaction,
  timeoutMs = 30 * 60_000,
): Promise<SmtpcResult> {
  const m = await ep.request("smtpc", { type: "qmgr.deliver", ta }, timeoutMs);
  if (m.type === "smtpc.result") return m;
  const reason = m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type} to qmgr.deliver`;
  return {
    type: "smtpc.result",
    taId: ta.taId,
    results: ta.recipients.map((r) =>
      reasonResult(r.index, "temp", "agent", `delivery agent failed: ${reason}`)
    ),
  };
}
