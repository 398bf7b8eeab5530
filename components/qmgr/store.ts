// The queue store: one SQLite database (node:sqlite, WAL, synchronous=FULL) holding every envelope qmgr
// owns and the state of each recipient. It plays both sendmail X roles in one file:
// - the IBDB: envelopes are appended here by the group commit (group_commit.ts) before smtps may say 250;
// - the DEFEDB: each recipient row carries its delivery state, tries, next retry time and last reply.
// Why one database and not two: an envelope and its recipient state then change in one atomic transaction
// (SQLite's WAL is not atomic across ATTACHed files), recovery needs no cross-file reconciliation, and the
// scheduler's "what is due" query is one indexed range scan. The file lives in IBDB.base_directory; the
// DEFEDB directory is created but stays empty (kept so a configuration that names it remains valid).
// Scale: rows are keyed by (message_id, idx); the index on (state, next_try) makes a scheduling round and
// "earliest next retry" cost O(log n + due rows), independent of how many messages wait. All statements are
// prepared once. This file runs SQL only; transactions are opened and committed by group_commit.ts.
// May touch: the database file in the IBDB directory.

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import type { Envelope, RecipientSpec } from "../protocol/messages.ts";

/** Recipient states as stored. WAITING rows are due at next_try; ACTIVE rows are in the active queue. */
export const WAITING = 0;
export const ACTIVE = 1;
export const SENT = 2;
export const FAILED = 3;
export type DoneState = typeof SENT | typeof FAILED;

export const DB_FILE = "queue.sqlite";
/** How long a statement waits for a lock held by another connection (ms). */
export const BUSY_TIMEOUT = 5_000;

/** The message-level part of an envelope, as stored. */
export interface StoredMessage {
  id: string;
  cdbPath: string;
  size: number;
  arrival: number;
  sender: string;
  clientIp: string;
  clientHelo: string;
  bodyType?: Envelope["bodyType"];
  smtputf8: boolean;
  envid?: string;
  ret?: Envelope["ret"];
}

/** One recipient row. */
export interface StoredRecipient extends RecipientSpec {
  messageId: string;
  index: number;
  tries: number;
}

/** A due recipient with its message (what a scheduling round loads). */
export interface DueRecipient {
  message: StoredMessage;
  recipient: StoredRecipient;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  cdb_path TEXT NOT NULL,
  size INTEGER NOT NULL,
  arrival INTEGER NOT NULL,
  sender TEXT NOT NULL,
  client_ip TEXT NOT NULL,
  client_helo TEXT NOT NULL,
  body_type TEXT,
  smtputf8 INTEGER NOT NULL,
  envid TEXT,
  ret TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recipients (
  message_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  address TEXT NOT NULL,
  notify TEXT,
  orcpt TEXT,
  state INTEGER NOT NULL,
  tries INTEGER NOT NULL DEFAULT 0,
  next_try INTEGER NOT NULL,
  last_reply TEXT,
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_due ON recipients (state, next_try);
`;

type Row = Record<string, SQLInputValue>;

const nul = <T>(v: T | undefined): T | null => v === undefined ? null : v;
const opt = <T>(v: unknown): T | undefined => v === null || v === undefined ? undefined : v as T;

function toMessage(r: Row): StoredMessage {
  return {
    id: r.id as string,
    cdbPath: r.cdb_path as string,
    size: Number(r.size),
    arrival: Number(r.arrival),
    sender: r.sender as string,
    clientIp: r.client_ip as string,
    clientHelo: r.client_helo as string,
    bodyType: opt(r.body_type),
    smtputf8: Number(r.smtputf8) === 1,
    envid: opt(r.envid),
    ret: opt(r.ret),
  };
}

function toRecipient(r: Row): StoredRecipient {
  const notify = opt<string>(r.notify);
  return {
    messageId: r.message_id as string,
    index: Number(r.idx),
    address: r.address as string,
    notify: notify === undefined ? undefined : notify.split(","),
    orcpt: opt(r.orcpt),
    tries: Number(r.tries),
  };
}

export class QueueStore {
  readonly db: DatabaseSync;
  readonly #s: Record<string, StatementSync>;

  private constructor(db: DatabaseSync) {
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    this.#s = {
      insertMessage: p(`INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      insertRecipient: p(`INSERT INTO recipients VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL)`),
      setState: p(`UPDATE recipients SET state = ? WHERE message_id = ? AND idx = ?`),
      setDone: p(
        `UPDATE recipients SET state = ?, tries = ?, last_reply = ? WHERE message_id = ? AND idx = ?`,
      ),
      setDeferred: p(
        `UPDATE recipients SET state = ${WAITING}, tries = ?, next_try = ?, last_reply = ?
         WHERE message_id = ? AND idx = ?`,
      ),
      undone: p(`SELECT COUNT(*) AS n FROM recipients WHERE message_id = ? AND state < ${SENT}`),
      deleteRecipients: p(`DELETE FROM recipients WHERE message_id = ?`),
      deleteMessage: p(`DELETE FROM messages WHERE id = ?`),
      due: p(
        `SELECT r.message_id, r.idx, r.address, r.notify, r.orcpt, r.tries, m.*
         FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE r.state = ${WAITING} AND r.next_try <= ? ORDER BY r.next_try LIMIT ?`,
      ),
      earliest: p(`SELECT MIN(next_try) AS t FROM recipients WHERE state = ${WAITING}`),
      resetActive: p(`UPDATE recipients SET state = ${WAITING} WHERE state = ${ACTIVE}`),
      hasMessage: p(`SELECT 1 AS x FROM messages WHERE id = ?`),
      allMessages: p(`SELECT id, cdb_path FROM messages`),
      getMessage: p(`SELECT * FROM messages WHERE id = ?`),
      recipientsOf: p(`SELECT * FROM recipients WHERE message_id = ? ORDER BY idx`),
    };
  }

  /** Opens (creating when missing) the database in `dir`: WAL, synchronous=FULL, schema. */
  static open(dir: string): QueueStore {
    // The busy timeout covers a restart inside one process: a crashed worker's connection (and its lock)
    // goes away shortly after the isolate is torn down, not at once.
    const db = new DatabaseSync(join(dir, DB_FILE), { timeout: BUSY_TIMEOUT });
    try {
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;");
      db.exec(SCHEMA);
      return new QueueStore(db);
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
    );
    env.recipients.forEach((r, i) => {
      this.#s.insertRecipient.run(
        env.id,
        i,
        r.address,
        r.notify ? r.notify.join(",") : null,
        nul(r.orcpt),
        i < active ? ACTIVE : WAITING,
        now,
      );
    });
  }

  markActive(messageId: string, index: number): void {
    this.#s.setState.run(ACTIVE, messageId, index);
  }

  markDone(messageId: string, index: number, state: DoneState, tries: number, reply: string): void {
    this.#s.setDone.run(state, tries, reply, messageId, index);
  }

  markDeferred(messageId: string, index: number, tries: number, nextTry: number, reply: string): void {
    this.#s.setDeferred.run(tries, nextTry, reply, messageId, index);
  }

  /** How many recipients of a message are neither sent nor failed. */
  undoneCount(messageId: string): number {
    return Number((this.#s.undone.get(messageId) as Row).n);
  }

  deleteMessage(id: string): void {
    this.#s.deleteRecipients.run(id);
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

  /** Every recipient row of a message with its state (for tests and the control socket). */
  recipientsOf(id: string): (StoredRecipient & { state: number; nextTry: number; lastReply?: string })[] {
    return (this.#s.recipientsOf.all(id) as Row[]).map((r) => ({
      ...toRecipient(r),
      state: Number(r.state),
      nextTry: Number(r.next_try),
      lastReply: opt(r.last_reply),
    }));
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
