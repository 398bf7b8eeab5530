// What happens to a recipient after a delivery attempt (or a failed route lookup): sent -> done;
// temporary -> deferred with exponential back-off (retry_min_delay doubling up to retry_max_delay), or
// bounced once the message is older than queue_return_timeout; permanent -> bounced. Writes the Postfix
// style log line, updates the store (riding along in the group commit), and removes a message whose
// recipients are all done: rows first (durably), then its CDB file.
// Receives: recipient results from the scheduler. May touch: the store; delete in the CDB directory.

import type { QmgrConfig } from "../../config/types.ts";
import type { RecipientResult } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { AqEntry } from "./active_queue.ts";
import type { GroupCommit } from "./group_commit.ts";
import { FAILED, type QueueStore, SENT, type StoredMessage } from "./store.ts";

export interface ResultContext {
  store: QueueStore;
  commit: GroupCommit;
  config: QmgrConfig;
  now: () => number;
}

/** The wait before try number `tries + 1`, given `tries` attempts so far (at least one). */
export function retryDelay(tries: number, min: number, max: number): number {
  const exp = Math.min(Math.max(tries - 1, 0), 40);
  return Math.min(max, min * 2 ** exp);
}

/** The enhanced status code in a reply, else the class default (2.0.0, 4.0.0, 5.0.0). */
export function dsnOf(reply: string, status: RecipientResult["status"]): string {
  const m = /(?:^|[\s(])([245]\.\d{1,3}\.\d{1,3})(?=$|[\s),;])/.exec(reply);
  if (m) return m[1];
  return status === "sent" ? "2.0.0" : status === "temp" ? "4.0.0" : "5.0.0";
}

function logLine(
  ctx: ResultContext,
  m: StoredMessage,
  e: AqEntry,
  o: { relay: string; tries: number; dsn: string; status: string; reply: string },
): void {
  const delay = ((ctx.now() - m.arrival) / 1000).toFixed(2);
  const text = `${m.id}: to=<${e.address}>, relay=${o.relay}, delay=${delay}, tries=${o.tries}, ` +
    `dsn=${o.dsn}, status=${o.status} (${o.reply})`;
  log.info("qmgr", text);
}

/**
 * Records one recipient's result. Returns the next retry time when the recipient was deferred.
 * Store failures are logged; the recipient then keeps its previous state and is retried after a restart.
 */
export function recordResult(
  ctx: ResultContext,
  m: StoredMessage,
  e: AqEntry,
  r: RecipientResult,
  relay = "none",
): number | undefined {
  const tries = e.tries + 1;
  const now = ctx.now();
  const dsn = dsnOf(r.reply, r.status);
  try {
    if (r.status === "sent") {
      ctx.commit.apply(() => ctx.store.markDone(m.id, e.index, SENT, tries, r.reply));
      logLine(ctx, m, e, { relay, tries, dsn, status: "sent", reply: r.reply });
      return undefined;
    }
    if (r.status === "temp" && now - m.arrival <= ctx.config.queue_return_timeout) {
      const next = now + retryDelay(tries, ctx.config.retry_min_delay, ctx.config.retry_max_delay);
      ctx.commit.apply(() => ctx.store.markDeferred(m.id, e.index, tries, next, r.reply));
      logLine(ctx, m, e, { relay, tries, dsn, status: "deferred", reply: r.reply });
      return next;
    }
    const reason = r.status === "temp" ? `message expired in queue: ${r.reply}` : r.reply;
    ctx.commit.apply(() => ctx.store.markDone(m.id, e.index, FAILED, tries, reason));
    logLine(ctx, m, e, { relay, tries, dsn, status: "bounced", reply: reason });
    bounceRecipient(ctx, m, e, reason, dsn);
  } catch (err) {
    log.error("qmgr", `${m.id}: record the result for <${e.address}>: ${(err as Error).message}`);
  }
  return undefined;
}

/**
 * The one place a failed recipient produces a bounce. DSN generation (RFC 3464, to m.sender unless it is
 * the null sender <>, honouring NOTIFY and RET) hooks in here; for now the failure is only logged.
 */
export function bounceRecipient(
  _ctx: ResultContext,
  m: StoredMessage,
  e: AqEntry,
  reason: string,
  dsn: string,
): void {
  log.debug("qmgr", `${m.id}: no DSN sent yet for <${e.address}> (dsn=${dsn}, ${reason})`);
}

/** True when every recipient of the message is sent or failed (as seen in the open transaction). */
export function isMessageDone(ctx: ResultContext, id: string): boolean {
  return ctx.store.undoneCount(id) === 0;
}

/** Deletes a finished message: rows first (waits for the commit), then the CDB file. */
export async function removeMessage(ctx: ResultContext, m: StoredMessage): Promise<void> {
  try {
    await ctx.commit.run(() => ctx.store.deleteMessage(m.id));
  } catch (err) {
    log.error("qmgr", `${m.id}: remove the message from the queue: ${(err as Error).message}`);
    return;
  }
  try {
    await Deno.remove(m.cdbPath);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      log.error("qmgr", `${m.id}: remove the CDB file ${m.cdbPath}: ${(err as Error).message}`);
    }
  }
  log.info("qmgr", `${m.id}: removed`);
}
