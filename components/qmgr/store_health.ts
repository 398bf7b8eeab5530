// Is the queue database fit to use? Checked each time qmgr starts, before anything trusts it: a missing
// or empty file, a file SQLite finds corrupt or not a database, one that fails `PRAGMA quick_check` (every page and b-tree,
// in time linear in the file's size: well under a second for 100,000 queued messages), or one that the
// previous run found corrupt while working (the rebuild mark, requestRebuild()) is moved aside — kept
// under a new name with its WAL and shared-memory files, never deleted — and a new, empty database takes
// its place. recovery.ts then fills it again from the queue files, which carry their own envelopes
// (mail/cdb.ts): the database is an index, the files are the truth.
// May touch: the IBDB directory.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { log } from "../util/log.ts";
import { DB_FILE, QueueStore } from "./store.ts";

/** The mark a run leaves when it found the database corrupt: the next start rebuilds whatever its check says. */
export const REBUILD_MARK = "queue.sqlite.rebuild";

export interface OpenedStore {
  store: QueueStore;
  /** Why the database was replaced by a new one (undefined: it passed its check). */
  replaced?: string;
  /** Where the old files went. */
  movedTo: string[];
}

/** True for an SQLite error that says the database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB). */
export function isCorruption(err: unknown): boolean {
  const e = err as { errcode?: unknown; code?: unknown; message?: unknown };
  if (typeof e?.errcode === "number") return (e.errcode & 0xff) === 11 || (e.errcode & 0xff) === 26;
  // node:sqlite's exec() errors carry no errcode, only SQLite's text for the code.
  return e?.code === "ERR_SQLITE_ERROR" && typeof e.message === "string" &&
    /^(database disk image is malformed|file is not a database)\b/.test(e.message);
}

/** Leaves the rebuild mark: the next start moves the database aside whatever its check says. */
export function requestRebuild(dir: string, reason: string): void {
  try {
    Deno.writeTextFileSync(join(dir, REBUILD_MARK), `${new Date().toISOString()} ${reason}\n`, {
      mode: 0o600,
    });
  } catch (err) {
    log.error("qmgr", `Write the rebuild mark in ${dir}: ${(err as Error).message}`);
  }
}

/** Why the database in `dir` must not be used, or undefined when it is healthy. */
function problemOf(dir: string): string | undefined {
  const path = join(dir, DB_FILE);
  const mark = join(dir, REBUILD_MARK);
  if (existsSync(mark)) {
    const why = Deno.readTextFileSync(mark).trim();
    return `the previous run found it damaged (${why})`;
  }
  let size: number;
  try {
    size = Deno.statSync(path).size;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) return `cannot be read: ${(err as Error).message}`;
    return existsSync(path + "-wal")
      ? "the database file is missing (its write-ahead log is not)"
      : "missing";
  }
  if (size === 0) return "the database file is empty";
  let store: QueueStore | undefined;
  try {
    store = QueueStore.open(dir);
    const rows = store.db.prepare("PRAGMA quick_check(20)").all();
    const said = rows.map((r) => String(Object.values(r)[0])).filter((s) => s !== "ok");
    if (said.length > 0) return `quick_check says: ${said.join("; ")}`;
    return undefined;
  } catch (err) {
    // Only damage counts: a database that is busy (a dead worker's lock not yet gone), unreadable for want
    // of permission, or on a failing disk is not moved aside; the start fails and is tried again.
    if (isCorruption(err)) return (err as Error).message;
    throw err;
  } finally {
    store?.close();
  }
}

/** Moves the database files in `dir` aside under a dated name; returns the new names. */
function moveAside(dir: string): string[] {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const moved: string[] = [];
  for (const suffix of ["", "-wal", "-shm"]) {
    const from = join(dir, DB_FILE + suffix);
    const to = join(dir, `${DB_FILE}.damaged-${stamp}${suffix}`);
    try {
      Deno.renameSync(from, to);
      moved.push(to);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return moved;
}

/**
 * Opens the queue database in `dir` after checking it (see the file header); a damaged one is moved
 * aside and replaced by a new one, which the caller fills from the queue files.
 */
export function openCheckedStore(dir: string, walSize?: number): OpenedStore {
  const started = performance.now();
  const problem = problemOf(dir);
  const took = ((performance.now() - started) / 1000).toFixed(2);
  if (problem === undefined) {
    log.info("qmgr", `queue database ${join(dir, DB_FILE)} passed its check in ${took} s`);
    return { store: QueueStore.open(dir, walSize), movedTo: [] };
  }
  if (problem === "missing") {
    log.info(
      "qmgr",
      `queue database ${join(dir, DB_FILE)} does not exist: a new one is made from the queue files`,
    );
    return { store: QueueStore.open(dir, walSize), replaced: "missing", movedTo: [] };
  }
  const movedTo = moveAside(dir);
  try {
    Deno.removeSync(join(dir, REBUILD_MARK));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  log.error(
    "qmgr",
    `queue database ${join(dir, DB_FILE)} is damaged: ${problem}. ` +
      (movedTo.length > 0 ? `Moved aside to ${movedTo.join(", ")}; ` : "") +
      "a new one is rebuilt from the queue files and mail keeps flowing (recipients already delivered " +
      "may be delivered again; delivery history and retry times start over). Keep the old files to " +
      "inspect them (sqlite3 FILE 'PRAGMA integrity_check'), and remove them when no longer needed",
  );
  return { store: QueueStore.open(dir, walSize), replaced: problem, movedTo };
}
