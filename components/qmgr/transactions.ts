// Delivery transactions, as the scheduler makes them and reads smtpc's answers to them. A message's
// recipients are grouped by domain (one route lookup each); recipients whose routes name the same hosts
// (protocol, port, host list) and who share an envelope sender (a list owner's recipients leave with the
// owner as MAIL FROM, results.ts returnPath()) form a batch, cut into transactions of at most the
// configured recipients each, in recipient order. An answer smtpc could not give becomes a temporary
// failure of every recipient (origin: the delivery agent). Pure; touches nothing.

import type { QmgrConfig } from "../../config/types.ts";
import { domainOf } from "../mail/address.ts";
import { reasonResult } from "../mail/result.ts";
import type { DeliveryTransaction, RouteResult, SmtpcResult } from "../protocol/messages.ts";
import type { AqEntry } from "./active_queue.ts";
import { returnPath } from "./results.ts";
import type { StoredMessage } from "./store_rows.ts";

export type OkRoute = Extract<RouteResult, { status: "ok" }>;

/** Recipients one transaction (or several, when there are many) may carry together. */
export interface Batch {
  route: OkRoute;
  /** The envelope sender of their deliveries. */
  sender: string;
  entries: AqEntry[];
}

/**
 * The entries grouped by the domain of their address (the route lookup's key), in order of first
 * appearance; an address without a domain is routed as the local host's.
 */
export function groupByDomain(entries: AqEntry[], localHost: string): Map<string, AqEntry[]> {
  const byDomain = new Map<string, AqEntry[]>();
  for (const e of entries) {
    const d = domainOf(e.address) || localHost.toLowerCase();
    const list = byDomain.get(d);
    if (list) list.push(e);
    else byDomain.set(d, [e]);
  }
  return byDomain;
}

/** Adds the entries of message `m` that `route` serves to their batches (same hosts, same sender). */
export function addToBatches(batches: Map<string, Batch>, m: StoredMessage, route: OkRoute, list: AqEntry[]) {
  // Recipients of domains with different TLS facts (tls_srv, DANE, MTA-STS) never share a transaction.
  const tlsKey = route.tls ? ` ${JSON.stringify(route.tls)}` : "";
  const wrap = route.implicitTls ? "s" : "";
  const hostsKey = `${route.protocol}${wrap}:${route.port}:${
    route.hosts.map((h) => h.address).join(",")
  }${tlsKey}`;
  for (const e of list) {
    const sender = returnPath(m, e);
    const key = `${hostsKey} ${sender}`;
    const g = batches.get(key) ?? { route, sender, entries: [] };
    g.entries.push(e);
    batches.set(key, g);
  }
}

/** A batch cut into the recipient lists of its transactions, in recipient order. */
export function splitBatch(batch: Batch, smtpc: QmgrConfig["smtpc"]): AqEntry[][] {
  const list = batch.entries;
  list.sort((a, b) => a.index - b.index);
  const max = Math.max(
    1,
    batch.route.protocol === "lmtp"
      ? smtpc.lmtp_max_rcpts_per_transaction
      : smtpc.smtp_max_rcpts_per_transaction,
  );
  const out: AqEntry[][] = [];
  for (let i = 0; i < list.length; i += max) out.push(list.slice(i, i + max));
  return out;
}

/** The transaction `taId` handing `list` of message `m` to smtpc, towards `hosts` (default: the route's). */
export function transactionOf(
  taId: string,
  m: StoredMessage,
  route: OkRoute,
  sender: string,
  list: AqEntry[],
  hosts: OkRoute["hosts"] = route.hosts,
): DeliveryTransaction {
  return {
    taId,
    messageId: m.id,
    cdbPath: m.cdbPath,
    size: m.size,
    sender,
    recipients: list.map((e) => ({ index: e.index, address: e.address, notify: e.notify, orcpt: e.orcpt })),
    route: {
      protocol: route.protocol,
      port: route.port,
      hosts,
      ...(route.tls ? { tls: route.tls } : {}),
      ...(route.implicitTls ? { implicitTls: true } : {}),
    },
    bodyType: m.bodyType,
    smtputf8: m.smtputf8,
    envid: m.envid,
    ret: m.ret,
    ...(m.requireTls ? { requireTls: true } : {}),
    ...(m.tlsRequiredNo ? { tlsRequiredNo: true } : {}),
  };
}

/** The answer for a transaction smtpc did not answer: every recipient fails temporarily. */
export function agentFailure(ta: DeliveryTransaction, err: Error): SmtpcResult {
  return {
    type: "smtpc.result",
    taId: ta.taId,
    results: ta.recipients.map((r) =>
      reasonResult(r.index, "temp", "agent", `delivery agent failed: ${err.message}`)
    ),
  };
}
