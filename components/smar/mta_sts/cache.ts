// The durable MTA-STS policy cache (RFC 8461 section 5.1): one row per policy domain in a SQLite file
// (MTA_STS.cache_file), written when a fetched policy parses, so a restart, or a policy host that is
// down, does not lose what was learned. Rows past their max_age are not used and are removed by sweeps.
// Touches the cache file (and SQLite's -wal/-shm beside it).

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { prepareDatabaseFileSync } from "../../util/private_files.ts";

export interface CachedPolicy {
  domain: string;
  /** The `_mta-sts` TXT record id the policy was fetched for. */
  id: string;
  mode: "enforce" | "testing" | "none";
  /** max_age in seconds. */
  maxAge: number;
  mx: string[];
  /** The policy as fetched. */
  text: string;
  /** When it was fetched (ms since the epoch). */
  fetchedAt: number;
}

/** When `p` stops being usable (ms since the epoch). */
export const expiresAt = (p: CachedPolicy): number => p.fetchedAt + p.maxAge * 1000;

export class PolicyCache {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #put: StatementSync;
  readonly #all: StatementSync;
  readonly #drop: StatementSync;

  /** Opens (creating if needed) the cache file; throws naming the file. */
  constructor(readonly path: string) {
    try {
      prepareDatabaseFileSync(path); // mode 0600 like the other databases
      this.#db = new DatabaseSync(path);
      this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000;");
      this.#db.exec(`CREATE TABLE IF NOT EXISTS mta_sts_policy (
        domain TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        mode TEXT NOT NULL,
        max_age INTEGER NOT NULL,
        mx TEXT NOT NULL,
        text TEXT NOT NULL,
        fetched_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID`);
      const cols = "domain, id, mode, max_age, mx, text, fetched_at";
      this.#get = this.#db.prepare(`SELECT ${cols} FROM mta_sts_policy WHERE domain = ?`);
      this.#put = this.#db.prepare(
        `INSERT OR REPLACE INTO mta_sts_policy (${cols}, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      this.#all = this.#db.prepare(`SELECT ${cols} FROM mta_sts_policy ORDER BY expires_at`);
      this.#drop = this.#db.prepare("DELETE FROM mta_sts_policy WHERE expires_at <= ?");
    } catch (err) {
      throw new Error(`Open the MTA-STS policy cache ${path}: ${(err as Error).message}`);
    }
  }

  get(domain: string): CachedPolicy | undefined {
    const row = this.#get.get(domain) as Row | undefined;
    return row ? policyOf(row) : undefined;
  }

  put(p: CachedPolicy): void {
    this.#put.run(p.domain, p.id, p.mode, p.maxAge, JSON.stringify(p.mx), p.text, p.fetchedAt, expiresAt(p));
  }

  /** Every cached policy, the one expiring first first. */
  all(): CachedPolicy[] {
    return (this.#all.all() as unknown as Row[]).map(policyOf);
  }

  /** Removes policies that expired before `now`; returns how many. */
  dropExpired(now: number): number {
    return Number(this.#drop.run(now).changes);
  }

  close(): void {
    try {
      this.#db.close();
    } catch {
      // closed already
    }
  }
}

interface Row {
  domain: string;
  id: string;
  mode: string;
  max_age: number;
  mx: string;
  text: string;
  fetched_at: number;
}

function policyOf(r: Row): CachedPolicy {
  return {
    domain: r.domain,
    id: r.id,
    mode: r.mode as CachedPolicy["mode"],
    maxAge: Number(r.max_age),
    mx: JSON.parse(r.mx) as string[],
    text: r.text,
    fetchedAt: Number(r.fetched_at),
  };
}
