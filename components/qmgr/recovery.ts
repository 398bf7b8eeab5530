// Restart recovery: rebuilds the queue state from the store and reconciles it with the CDB, where each
// queue file carries its own envelope and a completion mark (mail/cdb.ts). The files are the truth:
// nothing here deletes a file the database does not account for unless the file itself says it is
// unfinished.
// - Recipients that were in the active queue when the previous run ended become waiting again; their
//   next_try is already past, so they are due at once (a delivery cut short may happen twice, never zero
//   times).
// - A message whose CDB file is missing cannot be delivered: it is reported as lost (qmgr fails its
//   recipients, which sends the sender a DSN, and tells the postmaster in the log).
// - A CDB file that no message in the database names is an orphan. A complete one (the database lost
//   its row: a rebuilt or damaged database, a crash between the file and the commit) is queued again
//   from its own envelope, all its recipients due now. An incomplete one (a session cut before its 250)
//   is removed once it is older than `orphanGrace` (smtps may still be writing a young one); younger ones
//   are returned for a later look (removeLateOrphans). A file of an older smx, without an envelope, is
//   removed the same way when the database is healthy, and kept (with a log line) when it was rebuilt.
// May touch: the store; read and delete in the CDB directory.

import { join, resolve } from "node:path";
import { CDB_SUBDIRS, type CdbFile, readCdbFile } from "../mail/cdb.ts";
import { isQueueId } from "../mail/queue_id.ts";
import type { Envelope } from "../protocol/messages.ts";
import { validateMessage } from "../protocol/validate.ts";
import { log } from "../util/log.ts";
import type { GroupCommit } from "./group_commit.ts";
import { checkEnvelope } from "./incoming.ts";
import type { QueueStore } from "./store.ts";

/** Default age a CDB orphan must reach before it is removed (longer than any SMTP DATA phase stalls). */
export const ORPHAN_GRACE = 15 * 60_000;

export interface RecoveryOptions {
  cdbBase: string;
  now: number;
  orphanGrace?: number;
  /** The database was just made new (missing or damaged): files of older smx versions are kept. */
  rebuilt?: boolean;
}

export interface RecoveryReport {
  /** Recipients that were active in the previous run and are now due again. */
  reset: number;
  /** Messages kept in the queue. */
  messages: number;
  /** Messages whose CDB file is missing (still in the store: the caller fails them with a DSN). */
  missing: string[];
  /** Orphans queued again from their own envelope. */
  requeued: string[];
  /** CDB files removed as unfinished orphans. */
  removed: string[];
  /** Orphans that are neither deliverable nor removable (no or an unreadable envelope): kept. */
  kept: string[];
  /** Orphan candidates too recent to remove yet: [queue id, path]. */
  young: [string, string][];
}

/** The queue id a CDB file name stands for (`<id>` or `<id>.<suffix>`), else undefined (not ours). */
export function idOfCdbName(name: string): string | undefined {
  const id = name.slice(0, 20);
  if (!isQueueId(id) || (name.length > 20 && name[20] !== ".")) return undefined;
  return id;
}

/** Every file in the CDB that looks like ours, by queue id. */
export async function listCdb(base: string): Promise<Map<string, string[]>> {
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

/** The envelope a complete queue file at `path` (of queue id `id`) carries, or why it cannot be used. */
export function envelopeOf(file: CdbFile, id: string, path: string, cdbBase: string): Envelope | string {
  if (file.state !== "complete") return `the file is ${file.state}`;
  if (!file.envelope) return file.problem ?? "no envelope";
  const env = file.envelope;
  const shape = validateMessage({ type: "smtps.commit", envelope: env });
  if (shape) return `envelope record: ${shape}`;
  if (env.id !== id) return `envelope record names another queue id ${String(env.id).slice(0, 40)}`;
  const problem = checkEnvelope({ ...env, cdbPath: path }, cdbBase);
  return problem ? `envelope record: ${problem}` : { ...env, cdbPath: path };
}

/** Queues `env` again from its file: every recipient waits, due at `now`. */
export function requeue(store: QueueStore, env: Envelope, now: number): void {
  store.insertEnvelope(env, 0, now);
}

type OrphanFate = "requeued" | "removed" | "kept" | "young";

/** Decides and does what happens to one orphan file; `grace` 0 removes unfinished files of any age. */
async function handleOrphan(
  store: QueueStore,
  commit: GroupCommit,
  id: string,
  path: string,
  o: { cdbBase: string; now: number; grace: number; rebuilt: boolean },
): Promise<OrphanFate | undefined> {
  let file: CdbFile;
  let mtime: number;
  try {
    mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    file = await readCdbFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    log.error("qmgr", `${id}: read orphan CDB file ${path}: ${(err as Error).message}: kept`);
    return "kept";
  }
  const old = o.now - mtime >= o.grace;
  if (file.state === "complete" && path === resolve(join(o.cdbBase, id.slice(-1), id))) {
    const env = envelopeOf(file, id, path, o.cdbBase);
    if (typeof env === "string") {
      log.error("qmgr", `${id}: orphan CDB file ${path} cannot be queued again: ${env}: kept`);
      return "kept";
    }
    await commit.runNow(() => {
      if (!store.hasMessage(id)) requeue(store, env, o.now);
    });
    log.warn(
      "qmgr",
      `${id}: queued again from its own envelope in ${path} (the database did not know it): ` +
        `from=<${env.sender}>, nrcpt=${env.recipients.length}`,
    );
    return "requeued";
  }
  if (file.state === "legacy" && o.rebuilt) {
    log.error("qmgr", `${id}: CDB file ${path} has no envelope (an older smx wrote it): kept, not queued`);
    return "kept";
  }
  if (!old) return "young";
  try {
    await Deno.remove(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    log.error("qmgr", `${id}: remove orphan CDB file ${path}: ${(err as Error).message}`);
    return "kept";
  }
  log.info("qmgr", `${id}: removed unfinished orphan CDB file ${path} (no message was committed from it)`);
  return "removed";
}

/** Runs recovery; see the file header. */
export async function recover(
  store: QueueStore,
  commit: GroupCommit,
  opts: RecoveryOptions,
): Promise<RecoveryReport> {
  const grace = opts.orphanGrace ?? ORPHAN_GRACE;
  const report: RecoveryReport = {
    reset: 0,
    messages: 0,
    missing: [],
    requeued: [],
    removed: [],
    kept: [],
    young: [],
  };
  report.reset = await commit.runNow(() => store.resetActive());

  const files = await listCdb(opts.cdbBase);
  for (const m of store.messages()) {
    const own = files.get(m.id);
    files.delete(m.id);
    if (own?.includes(resolve(m.cdbPath)) || await exists(m.cdbPath)) report.messages++;
    else report.missing.push(m.id);
  }
  const o = { cdbBase: opts.cdbBase, now: opts.now, grace, rebuilt: opts.rebuilt === true };
  for (const [id, paths] of files) {
    for (const path of paths) {
      const fate = await handleOrphan(store, commit, id, path, o);
      if (fate === "young") report.young.push([id, path]);
      else if (fate === "requeued") report.requeued.push(id);
      else if (fate === "removed") report.removed.push(path);
      else if (fate === "kept") report.kept.push(path);
    }
  }
  return report;
}

/**
 * Second look at young orphans, once they are older than the grace period: queues again the complete
 * ones whose message still was not committed, removes the unfinished ones. Returns how many it removed.
 */
export async function removeLateOrphans(
  store: QueueStore,
  commit: GroupCommit,
  cdbBase: string,
  young: [string, string][],
): Promise<number> {
  let n = 0;
  for (const [id, path] of young) {
    if (store.hasMessage(id)) continue;
    const o = { cdbBase, now: Date.now(), grace: 0, rebuilt: false };
    if (await handleOrphan(store, commit, id, path, o) === "removed") n++;
  }
  return n;
}
