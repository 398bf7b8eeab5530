// The commit path (DESIGN step 3): checks an envelope from smtps, reserves active-queue slots for its
// recipients, appends it to the store through the group commit, and answers qmgr.committed only once the
// transaction is durable (qmgr.commit_failed on a storage error or a bad envelope). Then hands the message
// to the scheduler. The envelopes whose commit is under way are the incoming queue (IQDB): beyond
// IQDB.max_entries, commits fail at once (smtps answers 451) instead of piling up in memory.
// Receives: smtps.commit (through dispatch.ts). Sends: the answer. May touch: the store.

import { resolve } from "node:path";
import { cdbPath } from "../mail/cdb.ts";
import { isQueueId } from "../mail/queue_id.ts";
import type { Envelope, QmgrCommitFailed, QmgrCommitted } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { ActiveQueue } from "./active_queue.ts";
import type { GroupCommit } from "./group_commit.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Stats } from "./stats.ts";
import type { QueueStore } from "./store.ts";

/** More recipients than any smtps limit allows is a bug in the sender. */
export const MAX_RECIPIENTS = 100_000;
const MAX_ADDRESS = 2048;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

export interface IncomingDeps {
  store: QueueStore;
  commit: GroupCommit;
  aq: ActiveQueue;
  scheduler: Scheduler;
  cdbBase: string;
  now: () => number;
  /** True once qmgr is stopping: commits are refused. */
  stopping: () => boolean;
  /** The incoming queue: commits under way, and how many may be (IQDB.max_entries). */
  iqdb?: { size: number; max: number };
  stats?: Stats;
}

/** Describes what is wrong with an envelope beyond its types (validate.ts checked those), or undefined. */
export function checkEnvelope(env: Envelope, cdbBase: string): string | undefined {
  if (!isQueueId(env.id)) return "queue id is malformed";
  // qmgr deletes this file later, so it must be exactly where the id says, nowhere else.
  if (resolve(env.cdbPath) !== resolve(cdbPath(cdbBase, env.id))) {
    return "CDB path does not match the queue id";
  }
  if (!Number.isSafeInteger(env.size) || env.size < 0) return "size is not a byte count";
  if (!Number.isSafeInteger(env.arrival) || env.arrival <= 0) return "arrival is not a time";
  if (env.sender.length > MAX_ADDRESS || CONTROL.test(env.sender)) return "sender is malformed";
  if (env.recipients.length === 0) return "envelope has no recipients";
  if (env.quarantine !== undefined && (env.quarantine.length > 1000 || CONTROL.test(env.quarantine))) {
    return "quarantine reason is malformed";
  }
  if (env.recipients.length > MAX_RECIPIENTS) return "envelope has too many recipients";
  for (const r of env.recipients) {
    if (r.address === "" || r.address.length > MAX_ADDRESS || CONTROL.test(r.address)) {
      return "recipient address is malformed";
    }
    if (r.notify?.some((n) => n.includes(","))) return "NOTIFY value is malformed";
    const owner = r.errorsTo;
    if (owner !== undefined && (owner === "" || owner.length > MAX_ADDRESS || CONTROL.test(owner))) {
      return "list owner address is malformed";
    }
  }
  return undefined;
}

/** Commits `env` durably and answers; see the file header. */
export async function commitEnvelope(
  d: IncomingDeps,
  env: Envelope,
): Promise<QmgrCommitted | QmgrCommitFailed> {
  const failed = (reason: string): QmgrCommitFailed => ({ type: "qmgr.commit_failed", id: env.id, reason });
  if (d.stopping()) return failed("queue manager is shutting down");
  const problem = checkEnvelope(env, d.cdbBase);
  if (problem) {
    log.error("qmgr", `${env.id.slice(0, 40)}: refused an envelope from smtps: ${problem}`);
    return failed(`invalid envelope: ${problem}`);
  }
  // Already queued (recovery found its complete file before this commit came): committed it is.
  if (d.store.hasMessage(env.id)) return { type: "qmgr.committed", id: env.id };
  if (d.iqdb && d.iqdb.size >= d.iqdb.max) {
    log.warn("qmgr", `${env.id}: incoming queue full (${d.iqdb.max} commits under way): try later`);
    return failed("incoming queue full");
  }
  const held = env.quarantine !== undefined;
  const active = held ? 0 : d.aq.reserve(env.recipients.length);
  if (d.iqdb) d.iqdb.size++;
  try {
    await d.commit.run(() => d.store.insertEnvelope(env, active, d.now()), { envelope: true });
  } catch (err) {
    if (d.iqdb) d.iqdb.size--;
    d.aq.release(active);
    const reason = (err as Error).message;
    log.error("qmgr", `${env.id}: commit the envelope: ${reason}`);
    return failed(/UNIQUE/.test(reason) ? "queue id already committed" : `storage error: ${reason}`);
  }
  if (d.iqdb) d.iqdb.size--;
  d.stats?.add("received");
  log.info(
    "qmgr",
    `${env.id}: from=<${env.sender}>, size=${env.size}, nrcpt=${env.recipients.length} (queue ${
      held ? "hold" : "active"
    })`,
  );
  if (held) {
    log.info("qmgr", `${env.id}: held: quarantine: ${env.quarantine} (qmgrctl release ${env.id} lets it go)`);
    return { type: "qmgr.committed", id: env.id };
  }
  d.scheduler.admit(env, active);
  return { type: "qmgr.committed", id: env.id };
}
