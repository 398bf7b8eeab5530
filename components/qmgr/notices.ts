// Makes the DSNs recipients owe (results.ts sets the notice bits, durably, with the result itself).
// A message's failed recipients wait up to DSN_handling.merge_delay_max so that failures close together
// leave in one DSN, unless every recipient is decided or max_errors_per_DSN are waiting: then at once.
// Each DSN is a new message: its text goes into a new CDB file (notice_file.ts), its envelope (sender <>,
// the DSN's addressee expanded by smar's aliases, e.g. postmaster to the users it stands for; unexpanded
// when smar cannot answer, ORCPT naming the addressee otherwise) is committed through the group commit
// together with clearing the notice bits it reports, so a crash can neither lose a DSN nor send it twice,
// and the scheduler then delivers it like any message. Recipients of one message owing different kinds
// (failed, delayed, success) get one DSN per kind, and per addressee: the sender, or the list owner of
// recipients expanded from a list with an owner- alias (results.ts returnPath()). Mail from <> is never
// returned to <>: its failures go to postmaster@hostname (results.ts).
// Receives: owe() from the scheduler, the control socket and recovery. May touch: the store; create files
// in the CDB directory; read the original's CDB file.

import type { Config } from "../../config/types.ts";
import { cdbPath } from "../mail/cdb.ts";
import { type DsnAction, type DsnRecipient, type DsnReport, EXPIRED } from "../mail/dsn.ts";
import { newQueueId } from "../mail/queue_id.ts";
import { enhancedOf, replyLine } from "../mail/result.ts";
import type { Envelope } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { ActiveQueue } from "./active_queue.ts";
import type { GroupCommit } from "./group_commit.ts";
import { writeNoticeFile } from "./notice_file.ts";
import { parseStoredResult, returnPath, type StoredResult } from "./results.ts";
import type { Stats } from "./stats.ts";
import {
  DELIVERED,
  NOTICE_DELAYED,
  NOTICE_FAILED,
  NOTICE_SUCCESS,
  PENDING,
  type QueueStore,
} from "./store.ts";
import type { RecipientRow, StoredMessage } from "./store_rows.ts";

/** How long a DSN that could not be made waits before the next try (ms). */
export const NOTICE_RETRY = 60_000;
/** DSNs made at the same time at most. */
const PARALLEL = 4;

export interface NoticeDeps {
  store: QueueStore;
  commit: GroupCommit;
  aq: ActiveQueue;
  config: Config;
  now: () => number;
  /** Hands a committed DSN to the scheduler (its first `active` recipients hold reserved AQ slots). */
  admit: (env: Envelope, active: number) => void;
  /** Called after a message's notices were made: the message may be done now. */
  settled: (id: string) => void;
  /** The final addresses of a DSN's addressee after aliases (smar); undefined keeps it as it is. */
  expand?: (address: string) => Promise<string[] | undefined>;
  stats?: Stats;
}

/** The Remote-MTA of a stored result: the relay's name, else its address. */
function remoteMta(r: StoredResult | undefined): string | undefined {
  const relay = r?.relay;
  if (relay === undefined) return undefined;
  return relay.name !== "" ? relay.name : relay.address;
}

/** The remote server's own reply, for Diagnostic-Code: only a reply the server gave (origin remote). */
function diagnosticOf(r: StoredResult | undefined): string | undefined {
  return r?.origin === "remote" ? replyLine(r.reply) : undefined;
}

/** A recipient's enhanced status for its DSN: the stored result's, else the class default. */
function statusOf(r: StoredResult | undefined, action: DsnAction): string {
  const status = action === "failed" ? "perm" : action === "delayed" ? "temp" : "sent";
  return enhancedOf(r?.reply ?? { lines: [] }, status);
}

export class Notices {
  readonly #d: NoticeDeps;
  /** Messages to look at now, in order. */
  readonly #now = new Set<string>();
  /** Messages whose merge delay runs, with when it ends (inserted in time order). */
  readonly #later = new Map<string, number>();
  readonly #busy = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  readonly #idle = new Set<() => void>();

  constructor(deps: NoticeDeps) {
    this.#d = deps;
  }

  /** Messages waiting for their notices (tests, status). */
  get waiting(): number {
    return this.#now.size + this.#later.size + this.#busy.size;
  }

  /** Looks again at every message that owes DSNs (after a restart: their merge time is over). */
  recover(): void {
    for (const id of this.#d.store.messagesWithNotices()) this.owe(id, true);
  }

  /** A recipient of message `id` owes a DSN; `atOnce` skips the merge delay. */
  owe(id: string, atOnce: boolean): void {
    if (this.#stopped) return;
    const delay = this.#d.config.qmgr.DSN_handling.merge_delay_max;
    if (atOnce || delay <= 0 || this.#mustHurry(id)) {
      this.#later.delete(id);
      this.#now.add(id);
    } else if (!this.#later.has(id) && !this.#now.has(id)) {
      this.#later.set(id, this.#d.now() + delay);
    }
    this.#pump();
  }

  /** Resolves once no notice is being made or waits to be made at once (tests). */
  settled(): Promise<void> {
    if (this.#now.size === 0 && this.#busy.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const r of this.#idle) r();
    this.#idle.clear();
  }

  /** Every recipient decided, or max_errors_per_DSN failures waiting: no reason to wait. */
  #mustHurry(id: string): boolean {
    const { store, config } = this.#d;
    if (store.openCount(id) === 0) return true;
    return store.pendingNotices(id).length >= config.qmgr.max_errors_per_DSN;
  }

  #pump(): void {
    if (this.#stopped) return;
    const now = this.#d.now();
    for (const [id, at] of this.#later) {
      if (at > now) break;
      this.#later.delete(id);
      this.#now.add(id);
    }
    for (const id of this.#now) {
      if (this.#busy.size >= PARALLEL) break;
      if (this.#busy.has(id)) continue;
      this.#now.delete(id);
      this.#busy.add(id);
      this.#make(id).catch((err) => {
        log.error("qmgr", `${id}: make the delivery status notification: ${(err as Error).stack ?? err}`);
        if (!this.#stopped) this.#later.set(id, this.#d.now() + NOTICE_RETRY);
      }).finally(() => {
        this.#busy.delete(id);
        this.#pump();
      });
    }
    this.#arm();
    if (this.#now.size === 0 && this.#busy.size === 0) {
      for (const r of this.#idle) r();
      this.#idle.clear();
    }
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const first = this.#later.values().next();
    if (first.done || this.#stopped) return;
    this.#timer = setTimeout(() => this.#pump(), Math.max(0, first.value - this.#d.now()));
  }

  /** Makes every DSN message `id` owes now, then lets the scheduler look at the message. */
  async #make(id: string): Promise<void> {
    const { store, aq } = this.#d;
    const m = aq.message(id) ?? store.getMessage(id);
    if (!m) return;
    const rows = store.pendingNotices(id);
    const failed = rows.filter((r) => r.notice & NOTICE_FAILED);
    const delayed = rows.filter((r) => r.notice & NOTICE_DELAYED && !(r.notice & NOTICE_FAILED));
    const success = rows.filter((r) => r.notice & NOTICE_SUCCESS);
    const max = Math.max(1, this.#d.config.qmgr.max_errors_per_DSN);
    for (const [action, all] of [["failed", failed], ["delayed", delayed], ["relayed", success]] as const) {
      const byAddressee = Map.groupBy(all, (r) => returnPath(m, r));
      for (const [sender, list] of byAddressee) {
        for (let i = 0; i < list.length && !this.#stopped; i += max) {
          await this.#send(m, action, sender, list.slice(i, i + max));
        }
      }
    }
    if (!this.#stopped) this.#d.settled(id);
  }

  /** One DSN about `rows` of message `m` to `sender`; commits it with the clearing of their notice bits. */
  async #send(m: StoredMessage, action: DsnAction, sender: string, rows: RecipientRow[]): Promise<void> {
    const { store, commit, aq, config, now } = this.#d;
    const q = config.qmgr;
    const to = sender !== "" ? sender : action === "failed" ? `postmaster@${config.hostname}` : undefined;
    const clear = () => {
      for (const r of rows) store.clearNotice(m.id, r.index, PENDING);
    };
    if (to === undefined) {
      await commit.run(clear);
      return;
    }
    const at = now();
    const recipients: DsnRecipient[] = rows.map((r) => {
      const result = parseStoredResult(r.lastResult);
      return {
        address: r.address,
        orcpt: r.orcpt,
        action: action === "relayed" && r.notice & DELIVERED ? "delivered" : action,
        // RFC 3463 4.4.7: delivery time expired (the last error, a temporary one, is the Diagnostic-Code).
        status: action === "failed" && r.lastReply?.startsWith(EXPIRED) ? "4.4.7" : statusOf(result, action),
        remoteMta: remoteMta(result),
        diagnostic: diagnosticOf(result),
        reason: r.lastReply,
        lastAttempt: store.lastAttempt(m.id, r.index) ?? at,
        willRetryUntil: action === "delayed" ? m.arrival + q.queue_return_timeout : undefined,
      };
    });
    // A REQUIRETLS message's content must not leave by a path less protected than it asked for (RFC
    // 8689): its notices return only the headers.
    const headersOnly = action !== "failed" || m.ret === "HDRS" || q.DSN_handling.flags.header_only ||
      m.bodyType === "BINARYMIME" || m.requireTls === true;
    const id = newQueueId(at);
    const report: DsnReport = {
      reportingMta: config.hostname,
      queueId: m.id,
      envid: m.envid,
      arrival: m.arrival,
      date: at,
      to,
      recipients,
      returns: headersOnly ? "headers" : "full",
      mime: q.DSN_handling.flags.MIME_Format,
      boundary: `${id}/${config.hostname}`,
      messageId: `${id}@${config.hostname}`,
    };
    const rcpts = await this.#expand(to);
    const path = cdbPath(config.CDB_base_directory, id);
    const env: Envelope = {
      id,
      cdbPath: path,
      size: 0,
      arrival: at,
      sender: "",
      recipients: rcpts.map((address) => address === to ? { address } : { address, orcpt: `rfc822;${to}` }),
      client: { ip: "127.0.0.1", helo: config.hostname },
      bodyType: m.bodyType === "8BITMIME" || m.smtputf8 ? "8BITMIME" : undefined,
      smtputf8: m.smtputf8,
    };
    await writeNoticeFile(env, report, m.cdbPath);
    const active = aq.reserve(rcpts.length);
    try {
      await commit.run(() => {
        store.insertEnvelope(env, active, at);
        clear();
      }, { envelope: true });
    } catch (err) {
      aq.release(active);
      await Deno.remove(path).catch(() => {});
      throw err;
    }
    const what = action === "failed" ? "non-delivery" : action === "delayed" ? "delay" : "delivery";
    const expanded = rcpts.length === 1 && rcpts[0] === to ? "" : `, expanded to <${rcpts.join(">, <")}>`;
    log.info(
      "qmgr",
      `${m.id}: sender ${what} notification: ${id} (to=<${to}>${expanded}, recipients=${rows.length})`,
    );
    this.#d.stats?.add("dsn");
    this.#d.admit(env, active);
  }

  /** The DSN's envelope recipients: `to` after aliases, or `to` itself when smar cannot tell. */
  async #expand(to: string): Promise<string[]> {
    try {
      const list = await this.#d.expand?.(to);
      if (list && list.length > 0) return list;
    } catch (err) {
      log.warn("qmgr", `expand <${to}>: ${(err as Error).message}: kept as it is`);
    }
    return [to];
  }
}
