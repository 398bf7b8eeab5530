// The queue store: one SQLite database (node:sqlite, WAL, synchronous=NORMAL: group_commit.ts syncs the
// WAL where needed) holding every envelope qmgr owns and the state of each recipient. It plays both sendmail X roles in one file:
// - the IBDB: envelopes are appended here by the group commit (group_commit.ts) before smtps may say 250;
// - the DEFEDB: each recipient row carries its delivery state, tries, next retry time, last reply and
//   relay, and the DSNs it still owes (notice bits, store_schema.ts); a history row per attempt.
// Why one database and not two: an envelope and its recipient state then change in one atomic transaction
// (SQLite's WAL is not atomic across ATTACHed files), recovery needs no cross-file reconciliation, and the
// scheduler's "what is due" query is one indexed range scan. The file lives in IBDB.base_directory; the
// DEFEDB directory is created but stays empty (kept so a configuration that names it remains valid).
// Scale: rows are keyed by (message_id, idx); the index on (state, next_try) makes a scheduling round and
// "earliest next retry" cost O(log n + due rows), independent of how many messages wait. All statements are
// prepared once. This file runs SQL only (the records it returns, and their conversion from rows, are in
// store_rows.ts); transactions are opened and committed by group_commit.ts.
// May touch: the database file in the IBDB directory.

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import { prepareDatabaseFileSync } from "../util/private_files.ts";
import type { Envelope } from "../protocol/messages.ts";
import {
  ACTIVE,
  applySchema,
  DELAY_SENT,
  type DoneState,
  FAILED,
  HELD,
  PENDING,
  TLS_NOT_REQUIRED,
  TLS_REQUIRE,
  WAITING,
} from "./store_schema.ts";
import {
  type AttemptEnd,
  type DueRecipient,
  type RecipientRow,
  type Row,
  type StoredMessage,
  toMessage,
  toRecipient,
  toRow,
} from "./store_rows.ts";

export {
  ACTIVE,
  DELAY_SENT,
  DELIVERED,
  type DoneState,
  FAILED,
  HELD,
  NOTICE_DELAYED,
  NOTICE_FAILED,
  NOTICE_SUCCESS,
  PENDING,
  SENT,
  WAITING,
} from "./store_schema.ts";

export const DB_FILE = "queue.sqlite";
/** How long a statement waits for a lock held by another connection (ms). */
export const BUSY_TIMEOUT = 5_000;
/** Recipient states that still need work (not sent, not failed). */
const OPEN = `(${WAITING}, ${ACTIVE}, ${HELD})`;

/** An optional value as SQL: undefined is NULL. */
const nul = <T>(v: T | undefined): T | null => v === undefined ? null : v;

export class QueueStore {
  readonly db: DatabaseSync;
  /** The database's write-ahead log (group_commit.ts syncs it). */
  readonly wal: string;
  readonly #s: Record<string, StatementSync>;

  private constructor(db: DatabaseSync, path: string) {
    this.db = db;
    this.wal = `${path}-wal`;
    const p = (sql: string) => db.prepare(sql);
    const ifActive = `WHERE message_id = ? AND idx = ? AND state = ${ACTIVE}`;
    this.#s = {
      insertMessage: p(
        `INSERT INTO messages (id, cdb_path, size, arrival, sender, client_ip, client_helo, body_type,
         smtputf8, envid, ret, tls_flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertRecipient: p(
        `INSERT INTO recipients (message_id, idx, address, notify, orcpt, state, next_try, errors_to)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      setState: p(`UPDATE recipients SET state = ? WHERE message_id = ? AND idx = ?`),
      quarantine: p(`UPDATE messages SET held = 1, hold_reason = ? WHERE id = ?`),
      finish: p(
        `UPDATE recipients SET state = ?, tries = ?, last_reply = ?, last_relay = ?, last_result = ?,
         notice = notice | ? ${ifActive}`,
      ),
      // A recipient of a held message goes on hold instead of waiting for its retry.
      defer: p(
        `UPDATE recipients SET state = CASE WHEN (SELECT held FROM messages WHERE id = message_id) = 1
         THEN ${HELD} ELSE ${WAITING} END, tries = ?, next_try = ?, last_reply = ?, last_relay = ?,
         last_result = ?, notice = notice | ? | (CASE WHEN (notice & ${DELAY_SENT}) = 0 THEN ? ELSE 0 END) ${ifActive}`,
      ),
      failOpen: p(
        `UPDATE recipients SET state = ${FAILED}, last_reply = ?, last_result = ?, notice = notice | ?
         WHERE message_id = ? AND idx = ? AND state IN ${OPEN}`,
      ),
      history: p(`INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)`),
      lastAttempt: p(`SELECT MAX(at) AS at FROM history WHERE message_id = ? AND idx = ?`),
      undone: p(
        `SELECT COUNT(*) AS n FROM recipients
         WHERE message_id = ? AND (state IN ${OPEN} OR (notice & ${PENDING}) != 0)`,
      ),
      open: p(`SELECT COUNT(*) AS n FROM recipients WHERE message_id = ? AND state IN ${OPEN}`),
      pending: p(
        `SELECT * FROM recipients WHERE message_id = ? AND (notice & ${PENDING}) != 0 ORDER BY idx`,
      ),
      clearNotice: p(`UPDATE recipients SET notice = notice & ~? WHERE message_id = ? AND idx = ?`),
      withNotices: p(`SELECT DISTINCT message_id FROM recipients WHERE (notice & ${PENDING}) != 0`),
      deleteRecipients: p(`DELETE FROM recipients WHERE message_id = ?`),
      deleteHistory: p(`DELETE FROM history WHERE message_id = ?`),
      deleteMessage: p(`DELETE FROM messages WHERE id = ?`),
      due: p(
        `SELECT r.message_id, r.idx, r.address, r.notify, r.orcpt, r.tries, r.errors_to, m.*
         FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.state = ${WAITING} AND r.next_try <= ? ORDER BY r.next_try LIMIT ?`,
      ),
      earliest: p(`SELECT MIN(next_try) AS t FROM recipients WHERE state = ${WAITING}`),
      resetActive: p(
        `UPDATE recipients SET state = CASE WHEN (SELECT held FROM messages WHERE id = message_id) = 1
         THEN ${HELD} ELSE ${WAITING} END WHERE state = ${ACTIVE}`,
      ),
      hasMessage: p(`SELECT 1 AS x FROM messages WHERE id = ?`),
      allMessages: p(`SELECT id, cdb_path FROM messages`),
      getMessage: p(`SELECT * FROM messages WHERE id = ?`),
      recipientsOf: p(`SELECT * FROM recipients WHERE message_id = ? ORDER BY idx`),
    };
  }

  /** Opens (creating when missing) the database in `dir`: WAL, synchronous=FULL, schema. `walSize` is the
   * write-ahead log size (bytes) at which SQLite checkpoints it into the database (IBDB.size). */
  static open(dir: string, walSize?: number): QueueStore {
    // The busy timeout covers a restart inside one process: a crashed worker's connection (and its lock)
    // goes away shortly after the isolate is torn down, not at once.
    const path = join(dir, DB_FILE);
    prepareDatabaseFileSync(path); // mode 0600, and so its -wal and -shm
    const db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT });
    try {
      // synchronous=NORMAL: commits do not sync the WAL; group_commit.ts syncs it for the changes that
      // need it (the queue files carry the envelopes: see there).
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;");
      if (walSize !== undefined) {
        const pageSize = Number(db.prepare("PRAGMA page_size").get()?.page_size ?? 4096);
        db.exec(`PRAGMA wal_autocheckpoint = ${Math.max(1, Math.ceil(walSize / pageSize))}`);
      }
      applySchema(db);
      return new QueueStore(db, path);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Appends an envelope; its first `active` recipients start in the active queue, the rest wait. */
  insertEnvelope(env: Envelope, active: number, now: number): void {
    this.#s.insertMessage.run(
      env.id,
      env.cdbPath,
      env.size,
      env.arrival,
      env.sender,
      env.client.ip,
      env.client.helo,
      nul(env.bodyType),
      env.smtputf8 ? 1 : 0,
      nul(env.envid),
      nul(env.ret),
      (env.requireTls ? TLS_REQUIRE : 0) | (env.tlsRequiredNo ? TLS_NOT_REQUIRED : 0),
    );
    // A quarantined message (a milter or policy service said so) starts on hold.
    const held = env.quarantine !== undefined;
    if (held) this.#s.quarantine.run(env.quarantine!, env.id);
    env.recipients.forEach((r, i) => {
      this.#s.insertRecipient.run(
        env.id,
        i,
        r.address,
        r.notify ? r.notify.join(",") : null,
        nul(r.orcpt),
        held ? HELD : i < active ? ACTIVE : WAITING,
        now,
        nul(r.errorsTo),
      );
    });
  }

  markActive(messageId: string, index: number): void {
    this.#s.setState.run(ACTIVE, messageId, index);
  }

  /** Ends an active recipient as sent or failed; false when it is no longer active (deleted, bounced). */
  markDone(messageId: string, index: number, state: DoneState, end: AttemptEnd): boolean {
    const r = this.#s.finish.run(
      state,
      end.tries,
      end.reply,
      nul(end.relay),
      nul(end.result),
      end.notice,
      messageId,
      index,
    );
    return Number(r.changes) > 0;
  }

  /** Sends an active recipient back to wait for `nextTry` (or on hold); false when it is no longer active. */
  markDeferred(messageId: string, index: number, nextTry: number, end: AttemptEnd): boolean {
    const r = this.#s.defer.run(
      end.tries,
      nextTry,
      end.reply,
      nul(end.relay),
      nul(end.result),
      end.notice,
      end.delayNotice ?? 0,
      messageId,
      index,
    );
    return Number(r.changes) > 0;
  }

  /** Fails a recipient that is not final yet (qmgrctl bounce), adding notice bits; false when it is final. */
  failOpen(messageId: string, index: number, reply: string, notice: number, result?: string): boolean {
    return Number(this.#s.failOpen.run(reply, nul(result), notice, messageId, index).changes) > 0;
  }

  /** Appends one attempt to a recipient's history. */
  addHistory(messageId: string, index: number, at: number, status: string, relay: string, reply: string) {
    this.#s.history.run(messageId, index, at, status, relay, reply);
  }

  /** When the last attempt for a recipient ended (its newest history row), or undefined before any. */
  lastAttempt(messageId: string, index: number): number | undefined {
    const at = (this.#s.lastAttempt.get(messageId, index) as Row | undefined)?.at;
    return at === null || at === undefined ? undefined : Number(at);
  }

  /** How many recipients of a message still need work or owe a DSN. */
  undoneCount(messageId: string): number {
    return Number((this.#s.undone.get(messageId) as Row).n);
  }

  /** How many recipients of a message are neither sent nor failed (waiting, active or held). */
  openCount(messageId: string): number {
    return Number((this.#s.open.get(messageId) as Row).n);
  }

  /** The recipients of a message that owe a DSN (a PENDING notice bit). */
  pendingNotices(messageId: string): RecipientRow[] {
    return (this.#s.pending.all(messageId) as Row[]).map(toRow);
  }

  /** Clears notice bits of one recipient (the DSN was committed). */
  clearNotice(messageId: string, index: number, bits: number): void {
    this.#s.clearNotice.run(bits, messageId, index);
  }

  /** The ids of messages with recipients that owe a DSN (recovery; uses the partial index). */
  messagesWithNotices(): string[] {
    return (this.#s.withNotices.all() as Row[]).map((r) => r.message_id as string);
  }

  deleteMessage(id: string): void {
    this.#s.deleteRecipients.run(id);
    this.#s.deleteHistory.run(id);
    this.#s.deleteMessage.run(id);
  }

  /** Up to `limit` waiting recipients whose next_try is at or before `now`, earliest first. */
  due(now: number, limit: number): DueRecipient[] {
    if (limit <= 0) return [];
    return (this.#s.due.all(now, limit) as Row[]).map((r) => ({
      message: toMessage(r),
      recipient: toRecipient(r),
    }));
  }

  /** The earliest next_try of any waiting recipient, or undefined when none waits. */
  earliestWaiting(): number | undefined {
    const t = (this.#s.earliest.get() as Row).t;
    return t === null || t === undefined ? undefined : Number(t);
  }

  /** Makes recipients that were in the active queue (a previous run) waiting again; returns how many. */
  resetActive(): number {
    return Number(this.#s.resetActive.run().changes);
  }

  hasMessage(id: string): boolean {
    return this.#s.hasMessage.get(id) !== undefined;
  }

  getMessage(id: string): StoredMessage | undefined {
    const r = this.#s.getMessage.get(id) as Row | undefined;
    return r ? toMessage(r) : undefined;
  }

  /** Every recipient row of a message with its state (notices, tests and the control socket). */
  recipientsOf(id: string): RecipientRow[] {
    return (this.#s.recipientsOf.all(id) as Row[]).map(toRow);
  }

  /** Streams (id, cdb path) of every stored message (recovery). */
  *messages(): Generator<{ id: string; cdbPath: string }> {
    for (const r of this.#s.allMessages.iterate() as Iterable<Row>) {
      yield { id: r.id as string, cdbPath: r.cdb_path as string };
    }
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
