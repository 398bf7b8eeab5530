// qmgr's start function: opens the queue store, runs restart recovery, wires the commit path, the
// scheduler and the connection limits to the endpoint, and returns how to stop gracefully (stop
// scheduling, commit what waits, close the database).
// Receives: the worker context (config, endpoint). May touch: the IBDB and DEFEDB directories (read/write),
// the CDB directory (read/delete).

import type { Config } from "../../config/types.ts";
import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { resolveRoute } from "../smar/client.ts";
import { deliver } from "../smtpc/client.ts";
import { log } from "../util/log.ts";
import { ActiveQueue } from "./active_queue.ts";
import { ConnControl } from "./conn_control.ts";
import { Destinations } from "./destinations.ts";
import { makeHandler } from "./dispatch.ts";
import { GroupCommit } from "./group_commit.ts";
import { commitEnvelope, type IncomingDeps } from "./incoming.ts";
import { ORPHAN_GRACE, recover, removeLateOrphans } from "./recovery.ts";
import { RouteCache } from "./route_cache.ts";
import { Scheduler } from "./scheduler.ts";
import { QueueStore } from "./store.ts";

/** Concurrent delivery transactions over all destinations. */
export const MAX_TOTAL_TRANSACTIONS = 100;

export interface QmgrOptions {
  now?: () => number;
  orphanGrace?: number;
}

/** Starts qmgr on `ctx` (the worker runtime calls this once). */
export async function startQmgr(ctx: WorkerContext, opts: QmgrOptions = {}): Promise<Component> {
  const config: Config = ctx.config;
  const q = config.qmgr;
  const now = opts.now ?? Date.now;
  let stopping = false;
  let orphanTimer: ReturnType<typeof setTimeout> | undefined;

  // Answer peers from the start: connection verdicts need no queue; commits wait until recovery is done.
  const conn = new ConnControl(q.smtps, now);
  let ready!: (deps: IncomingDeps | undefined) => void;
  const incoming = new Promise<IncomingDeps | undefined>((resolve) => ready = resolve);
  ctx.endpoint.handle(makeHandler({
    conn,
    commit: async (env) => {
      const deps = await incoming;
      if (deps) return commitEnvelope(deps, env);
      return { type: "qmgr.commit_failed", id: env.id, reason: "queue manager failed to start" };
    },
  }));

  let store: QueueStore | undefined;
  let commit: GroupCommit | undefined;
  try {
    await Deno.mkdir(q.IBDB.base_directory, { recursive: true });
    await Deno.mkdir(q.DEFEDB.base_directory, { recursive: true });
    store = QueueStore.open(q.IBDB.base_directory);
    commit = new GroupCommit(store.db, { maxDelay: q.IBDB.max_commit_delay, maxOpen: q.IBDB.max_open_TAs });
    const report = await recover(store, commit, {
      cdbBase: config.CDB_base_directory,
      now: now(),
      orphanGrace: opts.orphanGrace,
    });
    log.info(
      "qmgr",
      `recovered the queue: ${report.messages} messages, ${report.reset} recipients were in flight, ` +
        `${report.removed.length} orphan CDB files removed, ${report.missing.length} messages lost their CDB file`,
    );
    if (report.young.length > 0) {
      const s = store;
      orphanTimer = setTimeout(() => {
        if (!stopping) void removeLateOrphans(s, report.young);
      }, opts.orphanGrace ?? ORPHAN_GRACE);
    }
  } catch (err) {
    ready(undefined);
    commit?.close();
    store?.close();
    throw err;
  }

  const aq = new ActiveQueue(q.AQ_max_entries);
  const routes = new RouteCache((domain) => resolveRoute(ctx.endpoint, domain), { now });
  const destinations = new Destinations({
    maxPerDestination: q.smtpc.max_connections,
    maxTotal: MAX_TOTAL_TRANSACTIONS,
  });
  const scheduler = new Scheduler({
    store,
    commit,
    aq,
    routes,
    destinations,
    deliver: (ta) => deliver(ctx.endpoint, ta),
    config,
    now,
  });
  ready({
    store,
    commit,
    aq,
    scheduler,
    cdbBase: config.CDB_base_directory,
    now,
    stopping: () => stopping,
  });
  scheduler.start();

  const [s, c] = [store, commit];
  return {
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      clearTimeout(orphanTimer);
      scheduler.stop();
      aq.clear();
      c.close();
      // Let the answers to the commits just made durable go out before the endpoint closes.
      await new Promise((resolve) => setTimeout(resolve, 0));
      s.close();
      log.info("qmgr", "stopped: queue committed and closed");
    },
  };
}
