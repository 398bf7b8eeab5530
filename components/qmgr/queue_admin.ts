// The queue store's queries for the control socket (qmgrctl) and the metrics worker: counts per state, a
// filtered list of messages, the queue's shape (messages per state with their ages, recipients per
// domain), and the operator's changes (hold, release, flush). Runs SQL on the store's connection; changes
// go through the group commit like every other change (the caller wraps them). Listing is bounded by a
// limit; counts scan the recipients once (milliseconds for 100,000 rows), which is fine for a command
// an operator types, and never happens on the delivery path.
// May touch: the queue database (through the connection it is given).

import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { ACTIVE, FAILED, HELD, SENT, WAITING } from "./store.ts";
import type { DomainSnapshot, QueueStateSnapshot } from "../protocol/messages.ts";
import { Histogram } from "../util/histogram.ts";

export const LIST_STATES = ["incoming", "active", "deferred", "hold"] as const;
export type ListState = typeof LIST_STATES[number];

export interface ListFilter {
  /** Part of the sender address (case-insensitive); "<>" for the null sender. */
  sender?: string;
  /** Part of a recipient address (case-insensitive). */
  recipient?: string;
  /** A recipient domain, exactly (case-insensitive). */
  domain?: string;
  state?: ListState;
  /** Only messages older than this (ms). */
  minAge?: number;
  limit: number;
}

export interface ListRow {
  id: string;
  arrival: number;
  size: number;
  sender: string;
  recipients: number;
  state: ListState | "done";
  nextTry?: number;
  lastError?: string;
  /** Why a milter or policy service quarantined it (state hold). */
  holdReason?: string;
}

export interface QueueCounts {
  messages: number;
  /** Recipients by state: waiting for a first try, in the active queue, deferred, held, finished. */
  incoming: number;
  active: number;
  deferred: number;
  held: number;
  finished: number;
}

type Row = Record<string, SQLInputValue>;

function newState(): QueueStateSnapshot {
  return { messages: 0, bytes: 0, age: new Histogram().data() };
}

/** `%text%` for LIKE, with LIKE's own wildcards escaped. */
function like(text: string, prefix = "%", suffix = "%"): string {
  return prefix + text.replace(/[\\%_]/g, (c) => `\\${c}`) + suffix;
}

const STATE_OF = `CASE
  WHEN m.held = 1 THEN 'hold'
  WHEN EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = ${ACTIVE}) THEN 'active'
  WHEN EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = ${WAITING} AND r.tries > 0)
    THEN 'deferred'
  WHEN EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = ${WAITING}) THEN 'incoming'
  ELSE 'done' END`;

export class QueueAdmin {
  readonly #db: DatabaseSync;
  readonly #s: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    const p = (sql: string) => db.prepare(sql);
    this.#s = {
      messages: p(`SELECT COUNT(*) AS n FROM messages`),
      byState: p(`SELECT state, tries > 0 AS tried, COUNT(*) AS n FROM recipients GROUP BY state, tried`),
      hold: p(`UPDATE messages SET held = 1 WHERE id = ?`),
      holdRecipients: p(`UPDATE recipients SET state = ${HELD} WHERE message_id = ? AND state = ${WAITING}`),
      release: p(`UPDATE messages SET held = 0, hold_reason = NULL WHERE id = ?`),
      holdReason: p(`SELECT hold_reason FROM messages WHERE id = ?`),
      releaseRecipients: p(
        `UPDATE recipients SET state = ${WAITING}, next_try = ? WHERE message_id = ? AND state = ${HELD}`,
      ),
      flushOne: p(
        `UPDATE recipients SET next_try = ? WHERE message_id = ? AND state = ${WAITING} AND next_try > ?`,
      ),
      flushDomain: p(
        `UPDATE recipients SET next_try = ?
         WHERE state = ${WAITING} AND next_try > ? AND address LIKE ? ESCAPE '\\'`,
      ),
      flushAll: p(`UPDATE recipients SET next_try = ? WHERE state = ${WAITING} AND next_try > ?`),
      isHeld: p(`SELECT held FROM messages WHERE id = ?`),
      history: p(`SELECT idx, at, status, relay, reply FROM history WHERE message_id = ? ORDER BY rowid`),
      shape: p(`SELECT m.arrival, m.size, m.held,
          MAX(r.state = ${ACTIVE}) AS active,
          MAX(r.state = ${WAITING} AND r.tries > 0) AS deferred,
          MAX(r.state = ${WAITING}) AS waiting
        FROM messages m JOIN recipients r ON r.message_id = m.id GROUP BY m.id`),
      // With exactly one MIN() aggregate, SQLite takes the bare m.id from the row holding that minimum.
      domains: p(`SELECT lower(substr(r.address, instr(r.address, '@') + 1)) AS domain,
          COUNT(*) AS recipients, COUNT(DISTINCT r.message_id) AS messages,
          SUM(r.state = ${WAITING} AND r.tries > 0) AS deferred, MIN(m.arrival) AS oldest, m.id AS oldest_id
        FROM recipients r JOIN messages m ON m.id = r.message_id
        WHERE r.state IN (${WAITING}, ${ACTIVE}, ${HELD})
        GROUP BY domain ORDER BY recipients DESC, domain LIMIT ?`),
    };
  }

  /**
   * The messages in each state (as list names them: a held message is "hold" whatever its recipients,
   * one with a recipient in delivery "active", ...), their bytes and ages at `now`. One pass over the
   * queue: the metrics worker asks at most once a second.
   */
  shape(now: number): Record<"incoming" | "active" | "deferred" | "hold", QueueStateSnapshot> {
    const states = { incoming: newState(), active: newState(), deferred: newState(), hold: newState() };
    const ages = {
      incoming: new Histogram(),
      active: new Histogram(),
      deferred: new Histogram(),
      hold: new Histogram(),
    };
    for (const r of this.#s.shape.iterate() as Iterable<Row>) {
      const state = Number(r.held) === 1
        ? "hold"
        : Number(r.active)
        ? "active"
        : Number(r.deferred)
        ? "deferred"
        : Number(r.waiting)
        ? "incoming"
        : undefined;
      if (state === undefined) continue; // done, a notice still owed
      const s = states[state];
      const arrival = Number(r.arrival);
      s.messages++;
      s.bytes += Number(r.size);
      s.oldest = s.oldest === undefined ? arrival : Math.min(s.oldest, arrival);
      ages[state].observe(Math.max(0, now - arrival) / 1000);
    }
    for (const k of Object.keys(states) as (keyof typeof states)[]) states[k].age = ages[k].data();
    return states;
  }

  /** The recipient domains with the most open recipients (at most `limit`), each with its oldest message. */
  domains(limit: number): DomainSnapshot[] {
    return (this.#s.domains.all(limit) as Row[]).map((r) => ({
      domain: String(r.domain),
      recipients: Number(r.recipients),
      messages: Number(r.messages),
      deferred: Number(r.deferred),
      oldest: Number(r.oldest),
      oldestId: String(r.oldest_id),
    }));
  }

  counts(): QueueCounts {
    const c: QueueCounts = { messages: 0, incoming: 0, active: 0, deferred: 0, held: 0, finished: 0 };
    c.messages = Number((this.#s.messages.get() as Row).n);
    for (const r of this.#s.byState.all() as Row[]) {
      const n = Number(r.n);
      const state = Number(r.state);
      if (state === WAITING) Number(r.tried) ? (c.deferred += n) : (c.incoming += n);
      else if (state === ACTIVE) c.active += n;
      else if (state === HELD) c.held += n;
      else if (state === SENT || state === FAILED) c.finished += n;
    }
    return c;
  }

  /** Messages matching `f`, oldest first, at most f.limit; `more` says whether others matched too. */
  list(f: ListFilter, now: number): { rows: ListRow[]; more: boolean } {
    const where: string[] = [];
    const args: SQLInputValue[] = [];
    if (f.sender !== undefined) {
      if (f.sender === "<>" || f.sender === "") where.push(`m.sender = ''`);
      else {
        where.push(`m.sender LIKE ? ESCAPE '\\'`);
        args.push(like(f.sender));
      }
    }
    const rcpt = (cond: string, arg: string) => {
      where.push(`EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND ${cond})`);
      args.push(arg);
    };
    if (f.recipient !== undefined) rcpt(`r.address LIKE ? ESCAPE '\\'`, like(f.recipient));
    if (f.domain !== undefined) rcpt(`r.address LIKE ? ESCAPE '\\'`, like(f.domain, "%@", ""));
    if (f.minAge !== undefined) {
      where.push(`m.arrival <= ?`);
      args.push(now - f.minAge);
    }
    if (f.state !== undefined) {
      where.push(`(${STATE_OF}) = ?`);
      args.push(f.state);
    }
    const sql = `SELECT m.id, m.arrival, m.size, m.sender, m.hold_reason, (${STATE_OF}) AS state,
        (SELECT COUNT(*) FROM recipients r WHERE r.message_id = m.id) AS recipients,
        (SELECT MIN(next_try) FROM recipients r WHERE r.message_id = m.id AND r.state = ${WAITING}) AS next_try,
        (SELECT last_reply FROM recipients r WHERE r.message_id = m.id AND r.state NOT IN (${SENT})
           AND r.last_reply IS NOT NULL ORDER BY r.tries DESC LIMIT 1) AS last_error
      FROM messages m ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY m.arrival, m.id LIMIT ?`;
    const found = this.#db.prepare(sql).all(...args, f.limit + 1) as Row[];
    return {
      more: found.length > f.limit,
      rows: found.slice(0, f.limit).map((r) => ({
        id: r.id as string,
        arrival: Number(r.arrival),
        size: Number(r.size),
        sender: r.sender as string,
        recipients: Number(r.recipients),
        state: r.state as ListRow["state"],
        nextTry: r.next_try === null ? undefined : Number(r.next_try),
        lastError: r.last_error === null ? undefined : r.last_error as string,
        ...(r.hold_reason === null ? {} : { holdReason: r.hold_reason as string }),
      })),
    };
  }

  /** Puts a message on hold; returns how many waiting recipients now wait for release. */
  hold(id: string): number {
    this.#s.hold.run(id);
    return Number(this.#s.holdRecipients.run(id).changes);
  }

  /** Takes a message off hold; its held recipients are due at `now`. */
  release(id: string, now: number): number {
    this.#s.release.run(id);
    return Number(this.#s.releaseRecipients.run(now, id).changes);
  }

  /** Why a milter or policy service quarantined the message (on hold), if it did. */
  holdReason(id: string): string | undefined {
    const r = (this.#s.holdReason.get(id) as Row | undefined)?.hold_reason;
    return r === null || r === undefined ? undefined : String(r);
  }

  isHeld(id: string): boolean {
    return Number((this.#s.isHeld.get(id) as Row | undefined)?.held ?? 0) === 1;
  }

  /** Makes waiting recipients due at `now`: of one message, of one domain, or all; returns how many. */
  flush(target: { id?: string; domain?: string }, now: number): number {
    if (target.id !== undefined) return Number(this.#s.flushOne.run(now, target.id, now).changes);
    if (target.domain !== undefined) {
      return Number(this.#s.flushDomain.run(now, now, like(target.domain, "%@", "")).changes);
    }
    return Number(this.#s.flushAll.run(now, now).changes);
  }

  /** Every attempt of a message's recipients, oldest first. */
  history(id: string): { index: number; at: number; status: string; relay?: string; reply: string }[] {
    return (this.#s.history.all(id) as Row[]).map((r) => ({
      index: Number(r.idx),
      at: Number(r.at),
      status: r.status as string,
      relay: r.relay === null ? undefined : r.relay as string,
      reply: r.reply as string,
    }));
  }
}
