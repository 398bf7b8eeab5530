// Maildir, the way qmail defined it and Maildir++ extended it: a mailbox is a directory with tmp/, new/
// and cur/; a message is written under a unique name in tmp/, synced, then renamed into new/ (and the
// directory synced), so a reader never sees half a message and a crash leaves at most a stray file in
// tmp/. Folders are Maildir++ subdirectories `.name`. File names are `secs.R<random>Q<n>.<host>,S=<size>`
// (the size lets the quota be counted without a stat per file). Touches only the Maildirs it is given.

import { dirname, join } from "node:path";
import { ensurePrivateDir } from "../util/private_files.ts";
import { syncDir } from "../util/sync_dir.ts";

export const SUBDIRS = ["tmp", "new", "cur"] as const;

/** Stray files in tmp/ older than this are removed when a Maildir is opened (the Maildir convention). */
export const TMP_MAX_AGE_MS = 36 * 3600 * 1000;

/** `<mail_root>/<user>/Maildir`. */
export function maildirOf(mailRoot: string, user: string): string {
  return join(mailRoot, user, "Maildir");
}

/** Creates the Maildir's tmp/, new/ and cur/ (and its parents) where missing, mode 0700 (existing too). */
export async function ensureMaildir(dir: string): Promise<void> {
  await ensurePrivateDir(dirname(dir));
  await ensurePrivateDir(dir);
  for (const sub of SUBDIRS) await ensurePrivateDir(join(dir, sub));
}

/** Removes files in tmp/ last modified before `now - maxAge`: left behind by a crash in mid-write. */
export async function cleanTmp(dir: string, now = Date.now(), maxAge = TMP_MAX_AGE_MS): Promise<number> {
  let removed = 0;
  for await (const entry of Deno.readDir(join(dir, "tmp"))) {
    if (!entry.isFile) continue;
    const path = join(dir, "tmp", entry.name);
    const st = await Deno.stat(path);
    if ((st.mtime?.getTime() ?? now) < now - maxAge) {
      await Deno.remove(path);
      removed++;
    }
  }
  return removed;
}

/** The folder `+detail` delivers into: `.detail` when that is a Maildir, else the inbox (the Maildir). */
export async function folderFor(maildir: string, detail?: string): Promise<{ dir: string; folder: string }> {
  if (detail !== undefined) {
    const dir = join(maildir, `.${detail}`);
    try {
      if ((await Deno.stat(join(dir, "new"))).isDirectory) return { dir, folder: `.${detail}` };
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return { dir: maildir, folder: "INBOX" };
}

/**
 * Unique file names for one process: the time, a random part drawn once per process (instead of the
 * classic pid, which workers do not have), a counter, and the host name with `/` and `:` escaped.
 */
export class UniqueNames {
  readonly #random: string;
  readonly #host: string;
  #counter = 0;

  constructor(hostname: string, readonly now: () => number = Date.now, random?: string) {
    this.#random = random ?? [...crypto.getRandomValues(new Uint8Array(8))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    this.#host = hostname.replaceAll("/", "\\057").replaceAll(":", "\\072") || "localhost";
  }

  next(): string {
    return `${Math.floor(this.now() / 1000)}.R${this.#random}Q${++this.#counter}.${this.#host}`;
  }
}

/** The size a Maildir++ file name records (`,S=123`), or undefined. */
export function sizeFromName(name: string): number | undefined {
  const m = /,S=(\d+)/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Delivers the synced file `spool` (its content complete) into the folder `dir` as a new message:
 * hard-links it under a unique name in `dir/tmp` (copies and syncs it where linking fails), renames that
 * into `dir/new` and syncs `dir/new`. Returns the path in new/. On failure nothing is left in new/.
 */
export async function deliverInto(
  dir: string,
  spool: string,
  size: number,
  names: UniqueNames,
): Promise<string> {
  const name = names.next();
  const tmp = join(dir, "tmp", name);
  const target = join(dir, "new", `${name},S=${size}`);
  try {
    await Deno.link(spool, tmp);
  } catch {
    await copySynced(spool, tmp);
  }
  try {
    await Deno.rename(tmp, target);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  try {
    await syncDir(join(dir, "new"));
  } catch (err) {
    // Not durable: take it back, the client is told to try again (a duplicate is better than a loss).
    await Deno.remove(target).catch(() => {});
    throw err;
  }
  return target;
}

async function copySynced(from: string, to: string): Promise<void> {
  await Deno.copyFile(from, to);
  const f = await Deno.open(to, { read: true, write: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}
