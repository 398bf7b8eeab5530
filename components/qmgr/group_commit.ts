// Group commit for the queue store: many changes share one SQLite transaction, so the disk sync that
// synchronous=FULL does at COMMIT is paid once per group, not once per message. A change runs at once
// inside the open transaction (inside its own savepoint, so a failing change undoes only itself) and its
// promise resolves when the group is durable. The group commits `maxDelay` ms after its first change, or at
// once when `maxOpen` envelopes wait (IBDB.max_commit_delay / IBDB.max_open_TAs).
// Changes that need not wait for the disk (recipient state after a delivery attempt: losing one means at
// worst a second delivery) use apply(); they ride along in the same transaction.
// Receives: changes from the commit path and the scheduler. May touch: the store's database only.

import type { DatabaseSync } from "node:sqlite";
import { log } from "../util/log.ts";

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface GroupCommitOptions {
  /** Longest a change waits for its commit (ms). */
  maxDelay: number;
  /** Commit at once when this many envelopes wait. */
  maxOpen: number;
}

export class GroupCommit {
  readonly #db: DatabaseSync;
  readonly #opts: GroupCommitOptions;
  #waiters: Waiter[] = [];
  #envelopes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** How many transactions were committed (tests and statistics). */
  commits = 0;

  constructor(db: DatabaseSync, opts: GroupCommitOptions) {
    this.#db = db;
    this.#opts = { maxDelay: Math.max(0, opts.maxDelay), maxOpen: Math.max(1, opts.maxOpen) };
  }

  /**
   * Runs `change` in the open transaction and resolves with its value once the transaction is durable.
   * Rejects (having undone only this change) when the change throws, and rejects every waiting change
   * when the COMMIT fails. `envelope` counts the change towards maxOpen.
   */
  run<T>(change: () => T, envelope = false): Promise<T> {
    let value: T;
    try {
      value = this.apply(change);
    } catch (err) {
      return Promise.reject(err);
    }
    const done = new Promise<T>((resolve, reject) => {
      this.#waiters.push({ resolve: () => resolve(value), reject });
    });
    if (envelope && ++this.#envelopes >= this.#opts.maxOpen) this.flush();
    return done;
  }

  /** Like run(), but commits at once instead of waiting for the group (start-up work, shutdown). */
  runNow<T>(change: () => T): Promise<T> {
    const done = this.run(change);
    this.flush();
    return done;
  }

  /** Runs `change` in the open transaction without waiting for the commit; throws what the change throws. */
  apply<T>(change: () => T): T {
    if (this.#closed) throw new Error("Change the queue: the queue store is closed");
    this.#begin();
    this.#db.exec("SAVEPOINT change");
    try {
      const value = change();
      this.#db.exec("RELEASE change");
      return value;
    } catch (err) {
      this.#db.exec("ROLLBACK TO change");
      this.#db.exec("RELEASE change");
      throw err;
    }
  }

  /** Commits the open transaction now and settles every waiting change. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#envelopes = 0;
    if (!this.#db.isOpen || !this.#db.isTransaction) {
      for (const w of waiters) w.resolve();
      return;
    }
    try {
      this.#db.exec("COMMIT");
      this.commits++;
    } catch (err) {
      log.error("qmgr", `Commit the queue transaction: ${(err as Error).message}`);
      try {
        if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      } catch (e) {
        log.error("qmgr", `Roll back the queue transaction: ${(e as Error).message}`);
      }
      for (const w of waiters) w.reject(err as Error);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  /** Commits what is open and refuses further changes. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
  }

  #begin(): void {
    if (this.#db.isTransaction) return;
    this.#db.exec("BEGIN IMMEDIATE");
    this.#timer = setTimeout(() => this.flush(), this.#opts.maxDelay);
  }
}
