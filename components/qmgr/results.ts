// What happens to a recipient after a delivery attempt (or a failed route lookup): sent -> done;
// temporary -> deferred with exponential back-off (retry_min_delay doubling up to retry_max_delay), or
// failed once the message is older than queue_return_timeout; permanent -> failed. Writes the Postfix
// style log line and the attempt's history row, updates the store (riding along in the group commit), and
// decides which DSN the recipient owes (RFC 3461 NOTIFY; the DSN itself is made by notices.ts):
// - failed: unless NOTIFY=NEVER or without FAILURE; a message from <> owes its failure to postmaster,
//   and a failed notice to postmaster itself owes nothing (logged and dropped);
// A recipient expanded from a list with an owner (errorsTo) owes its DSNs to the owner, not to the
// sender (returnPath()); the owner is a normal sender, so a failed DSN to it goes to postmaster.
// - delayed: once per recipient, at queue_delay_timeout, unless NOTIFY excludes DELAY;
// - success: only with NOTIFY=SUCCESS, when the next hop did not take over DSN duty (no DSN extension)
//   or this was the final delivery (LMTP).
// Removes a message whose recipients are all done and owe nothing: rows first (durably), then its file.
// Receives: recipient results from the scheduler. May touch: the store; delete in the CDB directory.

import type { QmgrConfig } from "../../config/types.ts";
import { enhancedOf, reasonReply, relayText, replyLine } from "../mail/result.ts";
import type { RecipientResult, Relay } from "../protocol/messages.ts";
import { describeDuration, EXPIRED } from "../mail/dsn.ts";
import { log } from "../util/log.ts";
import type { AqEntry } from "./active_queue.ts";
import type { GroupCommit } from "./group_commit.ts";
import type { Stats } from "./stats.ts";
import {
  DELAY_SENT,
  DELIVERED,
  FAILED,
  NOTICE_DELAYED,
  NOTICE_FAILED,
  NOTICE_SUCCESS,
  type QueueStore,
  SENT,
} from "./store.ts";
import type { StoredMessage } from "./store_rows.ts";

export interface ResultContext {
  store: QueueStore;
  commit: GroupCommit;
  config: QmgrConfig;
  /** Our host name: postmaster@hostname gets the failures of mail from <>. */
  hostname: string;
  now: () => number;
  stats?: Stats;
}

/** How the attempt went beyond the recipient's own result. */
export interface AttemptInfo {
  /** The host talked to, when the result has none of its own; absent: no connection was made. */
  relay?: Relay;
  /** A deferral comes back then instead of after its back-off (its destination's probe). */
  retryAt?: number;
  /** The next hop offered the DSN extension (smtpc's report; undefined when unknown). */
  dsnOffered?: boolean;
  /** The route was LMTP: a success is a final delivery. */
  lmtp?: boolean;
  /** When qmgr committed the message (known for messages received since qmgr started). */
  committed?: number;
  /** When the transaction went to smtpc. */
  started?: number;
}

export interface Recorded {
  /** The next retry time when the recipient was deferred. */
  next?: number;
  /** The recipient now owes a DSN (notices.ts makes it). */
  notice: boolean;
  /** The store refused the change: the recipient keeps its previous state there; record it again later. */
  failed?: boolean;
}

/** The wait before try number `tries + 1`, given `tries` attempts so far (at least one). */
export function retryDelay(tries: number, min: number, max: number): number {
  const exp = Math.min(Math.max(tries - 1, 0), 40);
  return Math.min(max, min * 2 ** exp);
}

/**
 * A recipient's last result as the store keeps it (recipients.last_result, JSON), so that DSNs name the
 * remote server and its reply from the structure smtpc reported, never from parsed text.
 */
export interface StoredResult {
  origin: RecipientResult["origin"];
  reply: RecipientResult["reply"];
  relay?: Relay;
}

/** The stored form of a result (JSON). */
export function storedResult(r: StoredResult): string {
  const s: StoredResult = { origin: r.origin, reply: r.reply };
  if (r.relay !== undefined) s.relay = r.relay;
  return JSON.stringify(s);
}

/** A stored result read back; undefined for rows without one (written before protocol v2) or garbage. */
export function parseStoredResult(text: string | undefined): StoredResult | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || !Array.isArray(v.reply?.lines)) return undefined;
    return v as StoredResult;
  } catch {
    return undefined;
  }
}

/** Which DSNs NOTIFY asks for (RFC 3461 4.1: without NOTIFY, failures and delays are reported). */
export function wants(notify: string[] | undefined, what: "SUCCESS" | "FAILURE" | "DELAY"): boolean {
  if (notify === undefined || notify.length === 0) return what !== "SUCCESS";
  return !notify.includes("NEVER") && notify.includes(what);
}

/**
 * Who a recipient's DSNs go to, and the envelope sender of its deliveries: its list owner (errorsTo)
 * when it has one, else the message's sender. Mail from <> stays from <> (a DSN never gets a sender).
 */
export function returnPath(m: { sender: string }, r: { errorsTo?: string }): string {
  return m.sender !== "" && r.errorsTo ? r.errorsTo : m.sender;
}

/** Whether `address` is postmaster here (where notices about mail from <> go). */
export function isPostmaster(address: string, hostname: string): boolean {
  const at = address.lastIndexOf("@");
  const local = (at < 0 ? address : address.slice(0, at)).toLowerCase();
  const domain = at < 0 ? hostname : address.slice(at + 1);
  return local === "postmaster" && domain.toLowerCase() === hostname.toLowerCase();
}

/** What one recipient's log line says (structured, for whoever formats log lines). */
export interface ResultLog {
  relay?: Relay;
  tries: number;
  /** The enhanced status. */
  dsn: string;
  status: "sent" | "deferred" | "bounced";
  /** The reply on one line (for a bounce after expiry: with the reason in front). */
  reply: string;
  result: RecipientResult;
}

/**
 * Postfix's delivery line, which pflogsumm reads: `QID: to=<r>, orig_to=<o>, relay=host[addr]:port,
 * delay=N, delays=a/b/c/d, dsn=X.Y.Z, status=sent (reply)`. orig_to is the address RCPT named when an
 * alias or list expanded it (its ORCPT). delays: a before the queue (arrival to commit), b in the queue
 * (commit to hand-off to smtpc), c connection set-up and d transmission; smtpc does not report when its
 * connection was up, so c is 0 and d holds both (hand-off to result). Without a hand-off (a failed route
 * lookup) c and d are 0; a message from before qmgr's start has a 0.
 */
export function deliveryLogLine(
  now: number,
  m: StoredMessage,
  e: AqEntry,
  info: AttemptInfo,
  o: { relay?: Relay; dsn: string; status: string; reply: string },
): string {
  const s = (ms: number) => {
    const v = Math.max(0, ms) / 1000;
    return v < 0.1 ? v.toFixed(2).replace(/\.?0+$/, "") || "0" : v < 10 ? v.toFixed(1) : v.toFixed(0);
  };
  const committed = info.committed ?? m.arrival;
  const started = info.started ?? now;
  const delays = `${s(committed - m.arrival)}/${s(started - committed)}/0/${s(now - started)}`;
  const original = originalRecipient(e);
  const orig = original !== undefined && original.toLowerCase() !== e.address.toLowerCase()
    ? `, orig_to=<${original}>`
    : "";
  return `${m.id}: to=<${e.address}>${orig}, relay=${relayText(o.relay)}, delay=${s(now - m.arrival)}, ` +
    `delays=${delays}, dsn=${o.dsn}, status=${o.status} (${o.reply})`;
}

/** The address of a recipient's ORCPT (`rfc822;a@b`, xtext decoded as far as logs need), if it has one. */
function originalRecipient(e: { orcpt?: string }): string | undefined {
  if (e.orcpt === undefined) return undefined;
  const semi = e.orcpt.indexOf(";");
  const value = e.orcpt.slice(semi + 1).trim();
  return value.replace(/\+([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

function logLine(ctx: ResultContext, m: StoredMessage, e: AqEntry, info: AttemptInfo, o: ResultLog): void {
  log.info("qmgr", deliveryLogLine(ctx.now(), m, e, info, o));
}

/** The notice bits a failed recipient gets. */
export function failureNotice(
  hostname: string,
  m: StoredMessage,
  e: { address: string; notify?: string[]; orcpt?: string },
): number {
  if (m.sender !== "") return wants(e.notify, "FAILURE") ? NOTICE_FAILED : 0;
  // A notice to postmaster reaches its mailboxes through aliases: ORCPT still names postmaster.
  const original = e.orcpt === undefined ? undefined : e.orcpt.slice(e.orcpt.indexOf(";") + 1).trim();
  if (isPostmaster(e.address, hostname) || (original !== undefined && isPostmaster(original, hostname))) {
    log.warn("qmgr", `${m.id}: notice to <${e.address}> from <> failed: dropped (no notice about a notice)`);
    return 0;
  }
  return NOTICE_FAILED; // to postmaster, whatever NOTIFY says: mail from <> is never returned to <>
}

/**
 * Records one recipient's result (see the file header). A store failure is logged and reported as
 * `failed`; `lost` is called when the transaction that carried the change fails later. Either way the
 * store still has the recipient in its previous state, and the caller records the result again.
 */
export function recordResult(
  ctx: ResultContext,
  m: StoredMessage,
  e: AqEntry,
  r: RecipientResult,
  info: AttemptInfo = {},
  lost?: () => void,
): Recorded {
  const tries = e.tries + 1;
  const now = ctx.now();
  const q = ctx.config;
  const dsn = enhancedOf(r.reply, r.status);
  const relayInfo = r.relay ?? info.relay;
  const relay = relayText(relayInfo);
  const storedRelay = relayInfo === undefined ? undefined : relay;
  const text = replyLine(r.reply);
  const result = storedResult({ ...r, relay: relayInfo });
  const line = (status: ResultLog["status"], reply: string) =>
    logLine(ctx, m, e, info, { relay: relayInfo, tries, dsn, status, reply, result: r });
  try {
    if (r.status === "sent") {
      const success = m.sender !== "" && wants(e.notify, "SUCCESS") &&
        (info.lmtp || info.dsnOffered !== true);
      const notice = success ? NOTICE_SUCCESS | (info.lmtp ? DELIVERED : 0) : 0;
      const changed = ctx.commit.apply(() => {
        ctx.store.addHistory(m.id, e.index, now, "sent", relay, text);
        return ctx.store.markDone(m.id, e.index, SENT, {
          tries,
          reply: text,
          relay: storedRelay,
          notice,
          result,
        });
      }, lost);
      line("sent", text);
      ctx.stats?.add("delivered");
      ctx.stats?.observeDelay("sent", m.arrival);
      return { notice: changed && notice !== 0 };
    }
    if (r.status === "temp" && now - m.arrival <= q.queue_return_timeout) {
      let next = info.retryAt ?? now + retryDelay(tries, q.retry_min_delay, q.retry_max_delay);
      // Be back when the message expires (to fail it on time) and when the delay notice is due.
      next = Math.min(next, m.arrival + q.queue_return_timeout + 1);
      const delayWanted = m.sender !== "" && wants(e.notify, "DELAY");
      const delayAt = m.arrival + q.queue_delay_timeout;
      if (delayWanted && now < delayAt) next = Math.min(next, delayAt);
      const delayNow = delayWanted && now >= delayAt;
      const changed = ctx.commit.apply(() => {
        ctx.store.addHistory(m.id, e.index, now, "deferred", relay, text);
        return ctx.store.markDeferred(m.id, e.index, next, {
          tries,
          reply: text,
          relay: storedRelay,
          result,
          notice: 0,
          delayNotice: delayNow ? NOTICE_DELAYED | DELAY_SENT : 0,
        });
      }, lost);
      line("deferred", text);
      ctx.stats?.add("deferred");
      ctx.stats?.observeDelay("deferred", m.arrival);
      return { next: changed ? next : undefined, notice: changed && delayNow };
    }
    const reason = r.status === "temp"
      ? `${EXPIRED}: tried for ${describeDuration(now - m.arrival)} (${tries} attempt${
        tries === 1 ? "" : "s"
      }), last error: ${text}`
      : text;
    const notice = failureNotice(ctx.hostname, m, e);
    const changed = ctx.commit.apply(() => {
      ctx.store.addHistory(m.id, e.index, now, "bounced", relay, reason);
      return ctx.store.markDone(m.id, e.index, FAILED, {
        tries,
        reply: reason,
        relay: storedRelay,
        notice,
        result,
      });
    }, lost);
    line("bounced", reason);
    ctx.stats?.add("bounced");
    ctx.stats?.observeDelay("bounced", m.arrival);
    return { notice: changed && notice !== 0 };
  } catch (err) {
    log.error(
      "qmgr",
      `${m.id}: record the result for <${e.address}>: ${(err as Error).message}: tried again`,
    );
  }
  return { notice: false, failed: true };
}

/** True when every recipient of the message is sent or failed and owes no DSN (open transaction). */
export function isMessageDone(ctx: ResultContext, id: string): boolean {
  return ctx.store.undoneCount(id) === 0;
}

/**
 * Fails every open recipient of a message whose content file is lost (missing or unfinished), so the
 * sender gets a DSN (from the envelope, which the store still has) and the postmaster a log line.
 * Returns how many recipients were failed; the caller has notices.ts make the DSN.
 */
export async function failLostMessage(ctx: ResultContext, id: string, why: string): Promise<number> {
  const m = ctx.store.getMessage(id);
  if (!m) return 0;
  const reply = reasonReply(`message content lost in the queue: ${why}`, undefined, "5.3.0");
  const reason = replyLine(reply);
  const result = storedResult({ origin: "agent", reply });
  const open = ctx.store.recipientsOf(id).filter((r) => r.state !== SENT && r.state !== FAILED);
  if (open.length === 0) return 0; // failed already (a delivery attempt and recovery both noticed)
  await ctx.commit.run(() => {
    for (const r of open) {
      ctx.store.addHistory(id, r.index, ctx.now(), "bounced", "none", reason);
      ctx.store.failOpen(id, r.index, reason, failureNotice(ctx.hostname, m, r), result);
    }
  });
  log.error(
    "qmgr",
    `${id}: postmaster: ${why}: the message from <${m.sender}> to ${open.length} recipient(s) ` +
      `(${open.map((r) => `<${r.address}>`).join(", ")}) cannot be delivered; the sender is told by a DSN. ` +
      `If the file can be restored from a backup, put it back before the DSN leaves`,
  );
  ctx.stats?.add("bounced", open.length);
  return open.length;
}

/** Deletes a finished message: rows first (durably), then the CDB file. False when the store refused. */
export async function removeMessage(
  ctx: ResultContext,
  m: { id: string; cdbPath: string },
): Promise<boolean> {
  try {
    // Durable: once the file is gone, the rows must not come back after a power cut.
    await ctx.commit.run(() => ctx.store.deleteMessage(m.id), { durable: true });
  } catch (err) {
    log.error("qmgr", `${m.id}: remove the message from the queue: ${(err as Error).message}`);
    return false;
  }
  try {
    await Deno.remove(m.cdbPath);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      log.error("qmgr", `${m.id}: remove the CDB file ${m.cdbPath}: ${(err as Error).message}`);
    }
  }
  log.info("qmgr", `${m.id}: removed`);
  return true;
}
