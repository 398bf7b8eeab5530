// Restart recovery: rebuilds the queue state from the store and reconciles it with the CDB.
// - Recipients that were in the active queue when the previous run ended become waiting again; their
//   next_try is already past, so they are due at once (a delivery cut short may happen twice, never zero
//   times).
// - A message whose CDB file is missing cannot be delivered: its rows are dropped and an error is logged.
// - A CDB file that no committed message names is an orphan (smtps wrote it, then the commit never
//   happened) and is removed. smtps may be writing a file for a commit still to come, so only files not
//   modified for `orphanGrace` ms are removed now; younger ones are returned for a later look.
// May touch: the store; read and delete in the CDB directory.

import { join, resolve } from "node:path";
import { CDB_SUBDIRS } from "../mail/cdb.ts";
import { isQueueId } from "../mail/queue_id.ts";
import { log } from "../util/log.ts";
import type { GroupCommit } from "./group_commit.ts";
import type { QueueStore } from "./store.ts";

/** Default age a CDB orphan must reach before it is removed (longer than any SMTP DATA phase stalls). */
export const ORPHAN_GRACE = 15 * 60_000;

export interface RecoveryOptions {
  cdbBase: string;
  now: number;
  orphanGrace?: number;
}

export interface RecoveryReport {
  /** Recipients that were active in the previous run and are now due again. */
  reset: number;
  /** Messages kept in the queue. */
  messages: number;
  /** Messages dropped because their CDB file is missing. */
  missing: string[];
  /** CDB files removed as orphans. */
  removed: string[];
  /** Orphan candidates too recent to remove yet: [queue id, path]. */
  young: [string, string][];
}

/** The queue id a CDB file name stands for (`<id>` or `<id>.<suffix>`), else undefined (not ours). */
export function idOfCdbName(name: string): string | undefined {
  const id = name.slice(0, 20);
  if (!isQueueId(id) || (name.length > 20 && name[20] !== ".")) return undefined;
  return id;
}

async function listCdb(base: string): Promise<Map<string, string[]>> {
  const files = new Map<string, string[]>();
  for (const sub of CDB_SUBDIRS) {
    const dir = join(base, sub);
    try {
      for await (const entry of Deno.readDir(dir)) {
        const id = entry.isFile ? idOfCdbName(entry.name) : undefined;
        if (id === undefined) continue;
        const paths = files.get(id);
        if (paths) paths.push(resolve(dir, entry.name));
        else files.set(id, [resolve(dir, entry.name)]);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return files;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Runs recovery; see the file header. */
export async function recover(
  store: QueueStore,
  commit: GroupCommit,
  opts: RecoveryOptions,
): Promise<RecoveryReport> {
  const grace = opts.orphanGrace ?? ORPHAN_GRACE;
  const report: RecoveryReport = { reset: 0, messages: 0, missing: [], removed: [], young: [] };
  report.reset = await commit.runNow(() => store.resetActive());

  const files = await listCdb(opts.cdbBase);
  const missing: { id: string; path: string }[] = [];
  for (const m of store.messages()) {
    const own = files.get(m.id);
    files.delete(m.id);
    if (own?.includes(resolve(m.cdbPath)) || await exists(m.cdbPath)) report.messages++;
    else missing.push({ id: m.id, path: m.cdbPath });
  }
  await commit.runNow(() => {
    for (const { id } of missing) store.deleteMessage(id);
  });
  for (const { id, path } of missing) {
    log.error("qmgr", `${id}: CDB file ${path} is missing: message dropped from the queue`);
    report.missing.push(id);
  }

  for (const [id, paths] of files) {
    for (const path of paths) {
      try {
        const info = await Deno.stat(path);
        const age = opts.now - (info.mtime?.getTime() ?? 0);
        if (age < grace) {
          report.young.push([id, path]);
          continue;
        }
        await Deno.remove(path);
        log.info("qmgr", `${id}: removed orphan CDB file ${path}`);
        report.removed.push(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          log.error("qmgr", `${id}: remove orphan CDB file ${path}: ${(err as Error).message}`);
        }
      }
    }
  }
  return report;
}

/** Second look at young orphans: removes those whose message still was not committed. */
export async function removeLateOrphans(store: QueueStore, young: [string, string][]): Promise<number> {
  let n = 0;
  for (const [id, path] of young) {
    if (store.hasMessage(id)) continue;
    try {
      await Deno.remove(path);
      log.info("qmgr", `${id}: removed orphan CDB file ${path}`);
      n++;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        log.error("qmgr", `${id}: remove orphan CDB file ${path}: ${(err as Error).message}`);
      }
    }
  }
  return n;
}
