// Modes of the files that hold mail: queued and delivered messages, the queue databases, the greylisting
// database and the control socket are for smx alone, whatever the umask (Postfix and Dovecot keep theirs
// 0700/0600 too). Directories smx creates are 0700, files 0600; directories and database files that are
// already there (from an older version, or made by hand) are narrowed to the same modes when opened.
// Touches only the paths it is given.

/** Directories holding mail: owner only. */
export const PRIVATE_DIR = 0o700;
/** Files holding mail: owner read/write only. */
export const PRIVATE_FILE = 0o600;

/** Creates `dir` (and missing parents) with mode 0700, and narrows `dir` itself to 0700 when it exists. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  await narrow(dir, PRIVATE_DIR);
}

/**
 * Prepares an SQLite database file before it is opened: creates it empty with mode 0600 when missing
 * (SQLite gives its -wal and -shm files the mode of the database file) and narrows an existing one, and
 * its -wal and -shm, to 0600.
 */
export function prepareDatabaseFileSync(path: string): void {
  try {
    Deno.openSync(path, { write: true, createNew: true, mode: PRIVATE_FILE }).close();
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  for (const p of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      const mode = (Deno.statSync(p).mode ?? 0) & 0o777;
      if ((mode & ~PRIVATE_FILE) !== 0) Deno.chmodSync(p, mode & PRIVATE_FILE);
    } catch (err) {
      // A worker allowed only the database file itself (smar and its greylisting database) may not stat
      // the -wal and -shm: SQLite creates those with the database file's mode anyway.
      if (!(err instanceof Deno.errors.NotFound) && (p === path || (err as Error).name !== "NotCapable")) {
        throw err;
      }
    }
  }
}

/** Removes from `path`'s mode every bit `allowed` lacks (a missing path is fine). */
async function narrow(path: string, allowed: number): Promise<void> {
  try {
    const mode = ((await Deno.stat(path)).mode ?? 0) & 0o777;
    if ((mode & ~allowed) !== 0) await Deno.chmod(path, mode & allowed);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
