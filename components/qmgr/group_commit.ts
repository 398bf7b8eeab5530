// Group commit for the queue store: many changes share one SQLite transaction. A change runs at once
// inside the open transaction (inside its own savepoint, so a failing change undoes only itself); the
// transaction commits on the next turn of the event loop (leader/follower: the first change of a group
// starts its commit at once, whatever arrives meanwhile joins it, and nothing waits for a timer), at
// once when `maxOpen` envelopes wait, and never later than `maxDelay` ms after its first change
// (IBDB.max_commit_delay is an upper bound, not a wait).
//
// Durability. The store runs with synchronous=NORMAL: a COMMIT writes the WAL but does not sync it. That
// is enough for everything that has another durable copy or may at worst happen twice: an envelope (its
// queue file carries it and was synced before the commit: recovery queues it again from there),
// recipient states after a delivery attempt (lost, the recipient is delivered twice, never zero times).
// A change that must survive a power cut before the MTA acts on it (deleting a message's rows before its
// queue file goes) asks for `durable`: its group resolves only once the WAL is synced. Syncs run one at a
// time, off the qmgr thread; groups committed while one is in flight are covered by the next.
//
// Failure. A failed COMMIT, or a transaction SQLite rolled back by itself (SQLITE_FULL, SQLITE_IOERR ...),
// fails every change of the group: every waiter rejects (no 250 for any of them) and every change applied
// without waiting (apply()) has its `onLost` called, so the caller can make memory agree with the disk
// again (retry the state change). Errors go to `onError` too (qmgr watches for SQLITE_CORRUPT there).
// Receives: changes from the commit path and the scheduler. May touch: the store's database and its WAL.

import type { DatabaseSync } from "node:sqlite";
import { log } from "../util/log.ts";

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface GroupCommitOptions {
  /** Longest a transaction may stay open (ms): an upper bound, met by committing on the next turn. */
  maxDelay: number;
  /** Commit at once when this many envelopes wait. */
  maxOpen: number;
  /** The database's write-ahead log, synced for durable changes (none: durable means committed). */
  wal?: string;
  /** Told of every storage error (a failed change, BEGIN, COMMIT or sync). */
  onError?: (err: Error) => void;
}

export interface RunOptions {
  /** Counts towards maxOpen (an envelope smtps waits for). */
  envelope?: boolean;
  /** Resolves only once the change is synced to disk (see the file header). */
  durable?: boolean;
}

/** One open transaction's bookkeeping. */
interface Group {
  waiters: Waiter[];
  durable: boolean;
  lost: (() => void)[];
  envelopes: number;
}

/** fsync of `path`; a missing WAL (checkpointed and truncated) has nothing to sync. */
async function syncFile(path: string): Promise<void> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  try {
    await f.sync();
  } finally {
    f.close();
  }
}

const newGroup = (): Group => ({ waiters: [], durable: false, lost: [], envelopes: 0 });

export class GroupCommit {
  readonly #db: DatabaseSync;
  readonly #opts: GroupCommitOptions;
  #group = newGroup();
  /** A transaction of ours is open (SQLite may have rolled it back behind our back). */
  #open = false;
  #soon: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Committed durable waiters whose WAL sync has not started; the sync in flight. */
  #unsynced: Waiter[] = [];
  #syncing: Promise<void> | undefined;
  /** How many transactions were committed (tests and statistics). */
  commits = 0;
  /** How many WAL syncs were made (tests and statistics). */
  syncs = 0;

  constructor(db: DatabaseSync, opts: GroupCommitOptions) {
    this.#db = db;
    this.#opts = { ...opts, maxDelay: Math.max(0, opts.maxDelay), maxOpen: Math.max(1, opts.maxOpen) };
  }

  /**
   * Runs `change` in the open transaction and resolves with its value once the transaction is committed
   * (and synced, when `durable`). Rejects (having undone only this change) when the change throws, and
   * rejects every waiting change when the transaction fails.
   */
  run<T>(change: () => T, opts: RunOptions = {}): Promise<T> {
    let value: T;
    try {
      value = this.apply(change);
    } catch (err) {
      return Promise.reject(err);
    }
    const g = this.#group;
    const done = new Promise<T>((resolve, reject) => {
      g.waiters.push({ resolve: () => resolve(value), reject });
    });
    if (opts.durable) g.durable = true;
    if (opts.envelope && ++g.envelopes >= this.#opts.maxOpen) this.flush();
    return done;
  }

  /** Like run(), but commits at once instead of on the next turn (start-up work, shutdown). */
  runNow<T>(change: () => T, opts: RunOptions = {}): Promise<T> {
    const done = this.run(change, opts);
    this.flush();
    return done;
  }

  /**
   * Runs `change` in the open transaction without waiting for the commit; throws what the change throws.
   * `onLost` is called when the transaction that carried the change fails after all (the disk then does
   * not have it: the caller applies it again or forgets what it assumed).
   */
  apply<T>(change: () => T, onLost?: () => void): T {
    if (this.#closed) throw new Error("Change the queue: the queue store is closed");
    this.#begin();
    try {
      this.#db.exec("SAVEPOINT change");
    } catch (err) {
      this.#failed(err as Error);
      throw err;
    }
    let value: T;
    try {
      value = change();
    } catch (err) {
      this.#undo(err as Error);
      throw err;
    }
    try {
      this.#db.exec("RELEASE change");
    } catch (err) {
      this.#failed(err as Error);
      throw err;
    }
    if (onLost) this.#group.lost.push(onLost);
    return value;
  }

  /** Commits the open transaction now and settles every waiting change. */
  flush(): void {
    clearTimeout(this.#soon);
    this.#soon = undefined;
    if (!this.#open) return;
    if (!this.#db.isOpen || !this.#db.isTransaction) {
      // SQLite rolled the transaction back by itself: nothing of the group is on disk.
      this.#fail(new Error("the queue transaction was rolled back by SQLite"));
      return;
    }
    const g = this.#group;
    try {
      this.#db.exec("COMMIT");
    } catch (err) {
      log.error("qmgr", `Commit the queue transaction: ${(err as Error).message}`);
      this.#fail(err as Error);
      return;
    }
    this.#open = false;
    this.#group = newGroup();
    this.commits++;
    if (g.durable && this.#opts.wal) {
      this.#unsynced.push(...g.waiters);
      this.#sync();
      return;
    }
    for (const w of g.waiters) w.resolve();
  }

  /** Passes a storage error found outside a change (a query) to `onError`. */
  report(err: Error): void {
    this.#opts.onError?.(err);
  }

  /** Resolves once every durable change committed so far is synced. */
  async synced(): Promise<void> {
    while (this.#syncing) await this.#syncing;
  }

  /** Commits what is open and refuses further changes. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
  }

  #begin(): void {
    if (this.#open && !this.#db.isTransaction) {
      this.#fail(new Error("the queue transaction was rolled back by SQLite"));
    }
    if (this.#open) return;
    try {
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      this.#opts.onError?.(err as Error);
      throw err;
    }
    this.#open = true;
    // The next turn of the event loop: what arrives in this one joins the group. That is always within
    // maxDelay, so no second timer is needed for it.
    this.#soon = setTimeout(() => this.flush(), 0);
  }

  /** A change threw: undo it alone, unless SQLite rolled the whole transaction back. */
  #undo(err: Error): void {
    if (!this.#db.isTransaction) {
      this.#failed(err);
      return;
    }
    try {
      this.#db.exec("ROLLBACK TO change");
      this.#db.exec("RELEASE change");
    } catch (e) {
      this.#failed(e as Error);
    }
    if ((err as { code?: unknown }).code === "ERR_SQLITE_ERROR") this.#opts.onError?.(err);
  }

  /** The transaction is gone or unusable: roll back what is left and fail the group. */
  #failed(err: Error): void {
    try {
      if (this.#db.isOpen && this.#db.isTransaction) this.#db.exec("ROLLBACK");
    } catch (e) {
      log.error("qmgr", `Roll back the queue transaction: ${(e as Error).message}`);
    }
    this.#fail(err);
  }

  /** Fails the open group: rolls back if SQLite did not, rejects its waiters, reports its lost changes. */
  #fail(err: Error): void {
    clearTimeout(this.#soon);
    this.#soon = undefined;
    try {
      if (this.#db.isOpen && this.#db.isTransaction) this.#db.exec("ROLLBACK");
    } catch (e) {
      log.error("qmgr", `Roll back the queue transaction: ${(e as Error).message}`);
    }
    const g = this.#group;
    this.#group = newGroup();
    this.#open = false;
    this.#opts.onError?.(err);
    for (const w of g.waiters) w.reject(err);
    for (const lost of g.lost) {
      try {
        lost();
      } catch (e) {
        log.error("qmgr", `Recover from a failed queue transaction: ${(e as Error).stack ?? e}`);
      }
    }
  }

  /** Syncs the WAL for the committed durable waiters; one sync at a time, the next covers the rest. */
  #sync(): void {
    if (this.#syncing || this.#unsynced.length === 0) return;
    const waiters = this.#unsynced;
    this.#unsynced = [];
    this.#syncing = (async () => {
      try {
        await syncFile(this.#opts.wal!);
        this.syncs++;
        for (const w of waiters) w.resolve();
      } catch (err) {
        log.error("qmgr", `Sync the queue's write-ahead log ${this.#opts.wal}: ${(err as Error).message}`);
        this.#opts.onError?.(err as Error);
        for (const w of waiters) w.reject(err as Error);
      } finally {
        this.#syncing = undefined;
        this.#sync();
      }
    })();
  }
}
