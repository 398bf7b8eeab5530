// `qmgrctl check [--repair]`: an fsck for the queue. Compares the database with the queue files, which
// carry their own envelopes (mail/cdb.ts), and reports what disagrees:
// - the database itself: `PRAGMA quick_check`;
// - lost: a message the database has whose file is missing or unfinished (it cannot be delivered);
// - orphans: complete files the database does not know (they would be lost if nothing queued them);
// - unfinished: files without their completion mark that no message names (sessions cut before 250);
// - unusable: files without an envelope (an older smx) or with an unreadable one, that no message names;
// - differs: a message whose file's envelope names other recipients or another sender than the database.
// With repair: a damaged database is rebuilt (qmgr restarts and rebuilds it from the files); orphans
// are queued again from their envelopes, lost messages are failed with a DSN to their sender, unfinished
// files older than the orphan grace period are removed. Files younger than MIN_AGE are left alone (their
// commit may be under way). Nothing else is deleted.
// May touch: the store; read the CDB, remove unfinished files in it.

import { resolve } from "node:path";
import { type CdbFile, readCdbFile } from "../mail/cdb.ts";
import { log } from "../util/log.ts";
import type { GroupCommit } from "./group_commit.ts";
import { envelopeOf, listCdb, ORPHAN_GRACE, requeue } from "./recovery.ts";
import type { QueueStore } from "./store.ts";

/** Files younger than this are not judged: smtps may be committing them right now (ms). */
export const MIN_AGE = 60_000;
/** Entries listed per kind at most (the counts are always whole). */
const MAX_LISTED = 100;

export interface CheckDeps {
  store: QueueStore;
  commit: GroupCommit;
  cdbBase: string;
  now: () => number;
  orphanGrace?: number;
  /** Fails a lost message with a DSN; resolves true when it did. */
  failLost: (m: { id: string; cdbPath: string }) => Promise<boolean>;
  /** The database is damaged: have it rebuilt (qmgr restarts). */
  rebuild: (reason: string) => void;
  /** Wakes the scheduler for what was queued again. */
  wake: () => void;
}

export interface CheckReport {
  database: string;
  messages: number;
  files: number;
  lost: string[];
  orphans: string[];
  unfinished: string[];
  unusable: string[];
  differs: string[];
  young: number;
  /** How many of each kind (the lists hold the first MAX_LISTED). */
  counts: { lost: number; orphans: number; unfinished: number; unusable: number; differs: number };
  repaired?: { requeued: number; failed: number; removed: number; rebuild: boolean };
}

const list = (a: string[]) => a.slice(0, MAX_LISTED);

/** Runs the check (and the repair); see the file header. */
export async function checkQueue(d: CheckDeps, repair: boolean): Promise<CheckReport> {
  let database: string;
  try {
    const rows = d.store.db.prepare("PRAGMA quick_check(20)").all();
    const said = rows.map((r) => String(Object.values(r)[0])).filter((s) => s !== "ok");
    database = said.length === 0 ? "ok" : said.join("; ");
  } catch (err) {
    database = (err as Error).message;
  }
  const now = d.now();
  const files = await listCdb(d.cdbBase);
  let fileCount = 0;
  for (const paths of files.values()) fileCount += paths.length;
  const r: CheckReport = {
    database,
    messages: 0,
    files: fileCount,
    lost: [],
    orphans: [],
    unfinished: [],
    unusable: [],
    differs: [],
    young: 0,
    counts: { lost: 0, orphans: 0, unfinished: 0, unusable: 0, differs: 0 },
  };
  const lost: { id: string; cdbPath: string }[] = [];
  const orphans: { id: string; path: string; file: CdbFile }[] = [];
  const unfinished: { path: string; old: boolean }[] = [];
  const look = async (path: string): Promise<{ file: CdbFile; age: number } | undefined> => {
    try {
      const age = now - ((await Deno.stat(path)).mtime?.getTime() ?? 0);
      return { file: await readCdbFile(path), age };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  };

  for (const m of d.store.messages()) {
    r.messages++;
    files.delete(m.id);
    const seen = await look(m.cdbPath);
    if (!seen || seen.file.state === "incomplete") {
      if (seen && seen.age < MIN_AGE) {
        r.young++;
        continue;
      }
      r.lost.push(m.id);
      lost.push(m);
      continue;
    }
    const env = seen.file.state === "complete" ? seen.file.envelope : undefined;
    if (env) {
      const stored = d.store.getMessage(m.id);
      const rcpts = d.store.recipientsOf(m.id).map((x) => x.address).join(",");
      if (stored?.sender !== env.sender || rcpts !== env.recipients.map((x) => x.address).join(",")) {
        r.differs.push(m.id);
      }
    }
  }
  for (const [id, paths] of files) {
    for (const path of paths) {
      const seen = await look(path);
      if (!seen) continue;
      if (seen.age < MIN_AGE) {
        r.young++;
        continue;
      }
      const env = envelopeOf(seen.file, id, resolve(path), d.cdbBase);
      if (typeof env !== "string") {
        r.orphans.push(id);
        orphans.push({ id, path: resolve(path), file: seen.file });
      } else if (seen.file.state === "incomplete") {
        r.unfinished.push(path);
        unfinished.push({ path, old: seen.age >= (d.orphanGrace ?? ORPHAN_GRACE) });
      } else {
        r.unusable.push(path);
      }
    }
  }

  if (repair) {
    const done = { requeued: 0, failed: 0, removed: 0, rebuild: false };
    if (database !== "ok") {
      done.rebuild = true;
      d.rebuild(`qmgrctl check: quick_check says: ${database}`);
    } else {
      for (const o of orphans) {
        const env = envelopeOf(o.file, o.id, o.path, d.cdbBase);
        if (typeof env === "string") continue;
        await d.commit.run(() => {
          if (!d.store.hasMessage(o.id)) requeue(d.store, env, now);
        });
        log.warn("qmgr", `${o.id}: qmgrctl check --repair: queued again from its own envelope in ${o.path}`);
        done.requeued++;
      }
      for (const m of lost) if (await d.failLost(m)) done.failed++;
      for (const u of unfinished) {
        if (!u.old) continue;
        try {
          await Deno.remove(u.path);
          log.info("qmgr", `qmgrctl check --repair: removed unfinished CDB file ${u.path}`);
          done.removed++;
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
      if (done.requeued > 0) d.wake();
    }
    r.repaired = done;
  }
  log.info(
    "qmgr",
    `qmgrctl check${
      repair ? " --repair" : ""
    }: database ${database}, ${r.messages} messages, ${r.files} files, ` +
      `${r.lost.length} lost, ${r.orphans.length} orphans, ${r.unfinished.length} unfinished, ` +
      `${r.unusable.length} unusable, ${r.differs.length} differ`,
  );
  r.counts = {
    lost: r.lost.length,
    orphans: r.orphans.length,
    unfinished: r.unfinished.length,
    unusable: r.unusable.length,
    differs: r.differs.length,
  };
  return {
    ...r,
    lost: list(r.lost),
    orphans: list(r.orphans),
    unfinished: list(r.unfinished),
    unusable: list(r.unusable),
    differs: list(r.differs),
  };
}
