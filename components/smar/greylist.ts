// Greylisting (sendmail X README 3.9.4): a client (its address masked by `netmask`; sendmail X keys on
// the client address, not on the sender/recipient triple) that is new gets a temporary error; a retry
// after `grey_wait` and before `grey_expire` turns its entry white, and a white entry lets the client
// through until it has not been seen for `white_expire`. One indexed SQLite table replaces sendmail X's
// main and secondary databases. Writes are bounded: a white client's last use is written back at most
// once per `white_timeout`, and expired entries are removed `expire_limit` at a time, at most once a
// minute. The clock is injected. Touches the database file (and SQLite's -wal/-shm/-journal beside it).

import { DatabaseSync, type StatementSync } from "node:sqlite";
import ipaddr from "ipaddr.js";
import type { GreylistConfig } from "../../config/types.ts";
import { prepareDatabaseFileSync } from "../util/private_files.ts";

export type GreyAnswer =
  /** Let it through. */
  | { pass: true; state: "white" | "confirmed" }
  /** Temporary error; `waitMs` until a retry would pass. */
  | { pass: false; state: "new" | "waiting"; waitMs: number };

const PURGE_EVERY_MS = 60_000;
const GREY = 0;
const WHITE = 1;

/** The key of a client address: IPv4 masked to `prefix` bits, IPv6 to /64. */
export function greyKey(ip: string, prefix: number): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip);
  } catch {
    return ip.toLowerCase();
  }
  const bits = addr.kind() === "ipv4" ? prefix : 64;
  const bytes = addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] &= (0xff << (8 - keep)) & 0xff;
  }
  const masked = ipaddr.fromByteArray(bytes).toString();
  return `${masked}/${bits}`;
}

export class Greylist {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #put: StatementSync;
  readonly #touch: StatementSync;
  readonly #purge: StatementSync;
  readonly #cfg: GreylistConfig;
  readonly #now: () => number;
  #lastPurge = 0;

  /** Opens (creating if needed) the database named by `main_DB_name`; throws naming the file. */
  constructor(cfg: GreylistConfig, now: () => number = Date.now) {
    this.#cfg = cfg;
    this.#now = now;
    try {
      prepareDatabaseFileSync(cfg.main_DB_name); // mode 0600: it names who mails whom
      this.#db = new DatabaseSync(cfg.main_DB_name);
      this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000;");
      this.#db.exec(`CREATE TABLE IF NOT EXISTS grey (
        key TEXT PRIMARY KEY,
        state INTEGER NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        expires INTEGER NOT NULL
      ) WITHOUT ROWID`);
      this.#db.exec("CREATE INDEX IF NOT EXISTS grey_expires ON grey (expires)");
      this.#get = this.#db.prepare("SELECT state, first, last, expires FROM grey WHERE key = ?");
      this.#put = this.#db.prepare(
        "INSERT OR REPLACE INTO grey (key, state, first, last, expires) VALUES (?, ?, ?, ?, ?)",
      );
      this.#touch = this.#db.prepare("UPDATE grey SET last = ?, expires = ? WHERE key = ?");
      this.#purge = this.#db.prepare(
        "DELETE FROM grey WHERE key IN (SELECT key FROM grey WHERE expires <= ? LIMIT ?)",
      );
    } catch (err) {
      throw new Error(`Open the greylisting database ${cfg.main_DB_name}: ${(err as Error).message}`);
    }
  }

  /** Whether the client at `ip` passes now; records what it needs to. */
  check(ip: string): GreyAnswer {
    const now = this.#now();
    this.#expire(now);
    const key = greyKey(ip, this.#cfg.netmask);
    const { answer, write } = this.#decide(key, now);
    write?.();
    return answer;
  }

  /**
   * What check() would answer now, without writing anything (qmgrctl explain): no entry is created,
   * confirmed or touched, nothing expired.
   */
  peek(ip: string): GreyAnswer & { key: string } {
    const key = greyKey(ip, this.#cfg.netmask);
    return { ...this.#decide(key, this.#now()).answer, key };
  }

  /** The answer for `key` at `now`, and the write check() makes with it. */
  #decide(key: string, now: number): { answer: GreyAnswer; write?: () => void } {
    const row = this.#get.get(key) as
      | { state: number; first: number; last: number; expires: number }
      | undefined;
    const c = this.#cfg;
    if (!row || row.expires <= now) {
      return {
        answer: { pass: false, state: "new", waitMs: c.grey_wait },
        write: () => this.#put.run(key, GREY, now, now, now + c.grey_expire),
      };
    }
    if (row.state === WHITE) {
      return {
        answer: { pass: true, state: "white" },
        write: now - row.last >= c.white_timeout
          ? () => this.#touch.run(now, now + c.white_expire, key)
          : undefined,
      };
    }
    const waited = now - row.first;
    if (waited < c.grey_wait) {
      return { answer: { pass: false, state: "waiting", waitMs: c.grey_wait - waited } };
    }
    return {
      answer: { pass: true, state: "confirmed" },
      write: () => this.#put.run(key, WHITE, row.first, now, now + c.white_expire),
    };
  }

  #expire(now: number): void {
    if (now - this.#lastPurge < PURGE_EVERY_MS) return;
    this.#lastPurge = now;
    this.#purge.run(now, this.#cfg.expire_limit);
  }

  close(): void {
    this.#db.close();
  }
}
