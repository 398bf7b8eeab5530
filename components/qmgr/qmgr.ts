// qmgr's start function: loads the qmgr_conf map, opens the queue store, runs restart recovery, and
// wires the parts: the commit path (incoming.ts), the scheduler with per-destination slow start and the
// outgoing connection cache (scheduler.ts, occ.ts), DSNs (notices.ts), incoming connection limits
// (conn_control.ts), the disk guard (disk_guard.ts) and the control socket (control.ts). Returns how to
// stop gracefully (close the control socket, stop scheduling, commit what waits, close the database)
// and how to reload (the qmgr_conf map).
// Receives: the worker context (config, endpoint). May touch: the IBDB and DEFEDB directories (read/write),
// the CDB directory (read, create DSN files, delete), the control socket, the conf map, statfs.

import type { Config } from "../../config/types.ts";
import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import {
  expandAddress,
  explainEnvelope,
  httpsPostBySmar,
  lookupTxtForQmgr,
  resolveRoute,
} from "../smar/client.ts";
import { submitOwnMail } from "./own_mail.ts";
import { TlsReporting } from "./tlsrpt.ts";
import { deliver } from "../smtpc/client.ts";
import { log } from "../util/log.ts";
import { ensurePrivateDir } from "../util/private_files.ts";
import { ActiveQueue } from "./active_queue.ts";
import { type ConfTag, QmgrConf } from "./conf_map.ts";
import { ConnControl } from "./conn_control.ts";
import { ControlServer } from "./control.ts";
import { ControlCommands } from "./control_commands.ts";
import { controlSocketPath } from "./control_protocol.ts";
import { Destinations } from "./destinations.ts";
import { DiskGuard, type FreeSpaceProbe } from "./disk_guard.ts";
import { type DispatchDeps, makeHandler } from "./dispatch.ts";
import { failure } from "../protocol/endpoint.ts";
import { QueueAdmin } from "./queue_admin.ts";
import { qmgrSnapshot } from "./snapshot.ts";
import { GroupCommit } from "./group_commit.ts";
import { commitEnvelope, type IncomingDeps } from "./incoming.ts";
import { Notices } from "./notices.ts";
import { Occ } from "./occ.ts";
import { ORPHAN_GRACE, recover, removeLateOrphans } from "./recovery.ts";
import { isCorruption, openCheckedStore, requestRebuild } from "./store_health.ts";
import { RouteCache } from "./route_cache.ts";
import { Scheduler } from "./scheduler.ts";
import { Stats } from "./stats.ts";
import type { QueueStore } from "./store.ts";

/** Concurrent delivery transactions over all destinations. */
export const MAX_TOTAL_TRANSACTIONS = 100;

export interface QmgrOptions {
  now?: () => number;
  orphanGrace?: number;
  /** The disk guard's free-space probe (tests); statfs of the CDB directory otherwise. */
  diskProbe?: FreeSpaceProbe;
  diskInterval?: number;
  /** The first down interval of a destination (tests; occ.ts DOWN_MIN otherwise). */
  downMin?: number;
  /**
   * What happens when the database turns out damaged while running (SQLITE_CORRUPT): by default the
   * worker ends with an error, the MCP restarts it, and the start rebuilds the database (tests replace it).
   */
  onCorrupt?: (err: Error) => void;
}

/** Resolves once `ctx.endpoint` has a port to `peer`, or after `ms` (a peer may be starting). */
async function peerWired(ctx: WorkerContext, peer: "smtpc" | "smar", ms: number, stopped: () => boolean) {
  const deadline = Date.now() + ms;
  while (!ctx.endpoint.hasPeer(peer) && Date.now() < deadline && !stopped()) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A start failure a restart cannot cure (a broken conf map): the worker runtime reports it as fatal. */
function configError(message: string): Error {
  const err = new Error(message);
  err.name = "ConfigError";
  return err;
}

/** Starts qmgr on `ctx` (the worker runtime calls this once). */
export async function startQmgr(ctx: WorkerContext, opts: QmgrOptions = {}): Promise<Component> {
  const config: Config = ctx.config;
  const q = config.qmgr;
  const now = opts.now ?? Date.now;
  let stopping = false;
  let orphanTimer: ReturnType<typeof setTimeout> | undefined;

  let conf: QmgrConf;
  try {
    conf = await QmgrConf.load(q.conf, q);
  } catch (err) {
    throw configError((err as Error).message);
  }
  // The limits follow the conf map in use (a reload swaps it).
  const limits = { get: (tag: ConfTag, ip: string) => conf.get(tag, ip) };
  const stats = new Stats(now);

  // Answer peers from the start: connection verdicts need no queue; commits wait until recovery is done.
  const conn = new ConnControl(limits, now);
  // A new port to an smtps worker means it (re)started: the sessions its predecessor held are over.
  ctx.endpoint.onPeer((peer, name) => {
    if (name !== "smtps") return;
    const dropped = conn.forgetOwner(peer);
    if (dropped > 0) log.info("qmgr", `${peer} restarted: forgot its ${dropped} client sessions`);
  });
  let ready!: (deps: IncomingDeps | undefined) => void;
  const incoming = new Promise<IncomingDeps | undefined>((resolve) => ready = resolve);
  // The metrics worker's questions wait for the queue like commits do (set once it is open).
  const observe: Pick<DispatchDeps, "snapshot" | "queueList"> = {};
  let observable!: () => void;
  const opened = new Promise<void>((resolve) => observable = resolve);
  const unavailable = failure("qmgr has no queue open");
  ctx.endpoint.handle(makeHandler({
    conn,
    commit: async (env) => {
      const deps = await incoming;
      if (deps) return commitEnvelope(deps, env);
      return { type: "qmgr.commit_failed", id: env.id, reason: "queue manager failed to start" };
    },
    snapshot: async () => {
      await opened;
      return observe.snapshot ? await observe.snapshot() : unavailable;
    },
    queueList: async (args) => {
      await opened;
      return observe.queueList ? await observe.queueList(args) : unavailable;
    },
  }));

  let store: QueueStore | undefined;
  let commit: GroupCommit | undefined;
  let lost: string[] = [];
  // A database found damaged while running: leave the rebuild mark and end (the MCP restarts qmgr, the
  // start moves the database aside and rebuilds it). Commits fail meanwhile: no 250 without the index.
  let rebuilding = false;
  const rebuild = (reason: string) => {
    if (rebuilding || stopping) return;
    rebuilding = true;
    log.error("qmgr", `queue database is damaged (${reason}): qmgr restarts to rebuild it`);
    requestRebuild(q.IBDB.base_directory, reason);
    (opts.onCorrupt ?? ((e) =>
      setTimeout(() => {
        throw new Error(`queue database is damaged: ${e.message}`);
      })))(new Error(reason));
  };
  try {
    await ensurePrivateDir(q.IBDB.base_directory);
    await ensurePrivateDir(q.DEFEDB.base_directory);
    const opened = openCheckedStore(q.IBDB.base_directory, q.IBDB.size);
    store = opened.store;
    commit = new GroupCommit(store.db, {
      maxDelay: q.IBDB.max_commit_delay,
      maxOpen: q.IBDB.max_open_TAs,
      wal: store.wal,
      onError: (err) => {
        if (isCorruption(err)) rebuild(err.message);
      },
    });
    const started = performance.now();
    const report = await recover(store, commit, {
      cdbBase: config.CDB_base_directory,
      now: now(),
      orphanGrace: opts.orphanGrace,
      rebuilt: opened.replaced !== undefined,
    });
    lost = report.missing;
    log.info(
      "qmgr",
      `recovered the queue in ${((performance.now() - started) / 1000).toFixed(2)} s: ${report.messages} ` +
        `messages, ${report.reset} recipients were in flight, ${report.requeued.length} messages queued ` +
        `again from their own files, ${report.removed.length} unfinished CDB files removed, ` +
        `${report.kept.length} unusable CDB files kept, ${report.missing.length} messages lost their CDB file`,
    );
    if (report.young.length > 0) {
      const [s, c] = [store, commit];
      orphanTimer = setTimeout(() => {
        if (!stopping) void removeLateOrphans(s, c, config.CDB_base_directory, report.young);
      }, opts.orphanGrace ?? ORPHAN_GRACE);
    }
  } catch (err) {
    ready(undefined);
    observable();
    commit?.close();
    store?.close();
    conf.close();
    throw err;
  }

  const aq = new ActiveQueue(q.AQ_max_entries);
  const stopped = () => stopping;
  const routes = new RouteCache(async (domain) => {
    await peerWired(ctx, "smar", q.wait_for_server, stopped);
    return resolveRoute(ctx.endpoint, domain);
  }, { now });
  const occ = new Occ(limits, { maxEntries: q.OCC_max_entries, now, downMin: opts.downMin });
  const destinations = new Destinations({ windows: occ, maxTotal: MAX_TOTAL_TRANSACTIONS });
  const scheduler = new Scheduler({
    store,
    commit,
    aq,
    routes,
    destinations,
    deliver: async (ta) => {
      await peerWired(ctx, "smtpc", q.wait_for_client, stopped);
      return deliver(ctx.endpoint, ta);
    },
    config,
    now,
    occ,
    stats,
  });
  const notices = new Notices({
    store,
    commit,
    aq,
    config,
    now,
    admit: (env, active) => scheduler.admit(env, active),
    settled: (id) => scheduler.settle(id),
    expand: async (address) => {
      await peerWired(ctx, "smar", q.wait_for_server, stopped);
      const x = await expandAddress(ctx.endpoint, address);
      if (!x) log.info("qmgr", `smar did not expand <${address}>: the notice goes to it as it is`);
      return x?.recipients;
    },
    stats,
  });
  scheduler.notices = notices;
  let tlsRpt: TlsReporting | undefined;
  if (q.TLS_RPT) {
    try {
      tlsRpt = new TlsReporting({
        config,
        now,
        txt: async (name) => {
          await peerWired(ctx, "smar", q.wait_for_server, stopped);
          return lookupTxtForQmgr(ctx.endpoint, name);
        },
        post: async (url, type, body) => {
          await peerWired(ctx, "smar", q.wait_for_server, stopped);
          return httpsPostBySmar(ctx.endpoint, url, type, body, 60_000);
        },
        submit: (sender, to, content) =>
          submitOwnMail(
            {
              store: store!,
              commit: commit!,
              aq,
              cdbBase: config.CDB_base_directory,
              hostname: config.hostname,
              now,
              admit: (env, active) => scheduler.admit(env, active),
            },
            sender,
            to,
            content,
          ),
      });
      scheduler.tlsRpt = tlsRpt;
    } catch (err) {
      log.error("qmgr", `TLS-RPT off: ${(err as Error).message}`);
    }
  }
  const disk = new DiskGuard({
    path: config.CDB_base_directory,
    min: q.min_disk_space,
    ok: q.ok_disk_space,
    probe: opts.diskProbe,
    interval: opts.diskInterval,
    report: (low, free) => ctx.endpoint.broadcast("smtps", { type: "qmgr.disk_state", low, free }),
  });
  ready({
    store,
    commit,
    aq,
    scheduler,
    cdbBase: config.CDB_base_directory,
    now,
    stopping: () => stopping || rebuilding,
    iqdb: { size: 0, max: q.IQDB.max_entries },
    stats,
  });
  scheduler.start();
  tlsRpt?.start();
  notices.recover();
  for (const id of lost) {
    const m = store.getMessage(id);
    if (m) void scheduler.checkContent(m);
  }
  await disk.start();

  const commands = new ControlCommands({
    store,
    commit,
    aq,
    scheduler,
    notices,
    occ,
    destinations,
    routes,
    stats,
    disk,
    config,
    now,
    rebuild,
    mcpStatus: ctx.mcpStatus ? () => ctx.mcpStatus!(1_000) : undefined,
    mcpReload: ctx.mcpReload ? () => ctx.mcpReload!() : undefined,
    conn,
    explain: async (question) => {
      await peerWired(ctx, "smar", q.wait_for_server, stopped);
      return explainEnvelope(ctx.endpoint, question);
    },
  });
  const admin = new QueueAdmin(store.db);
  observe.snapshot = () => Promise.resolve(qmgrSnapshot({ stats, admin, occ, disk, now }));
  observe.queueList = async (args) => {
    const answer = await commands.run("list", args);
    return answer.ok
      ? { type: "qmgr.queue_list", ok: true, result: answer.result }
      : { type: "qmgr.queue_list", ok: false, error: answer.error };
  };
  observable();
  let control: ControlServer | undefined;
  try {
    control = await ControlServer.start(controlSocketPath(config), (c, args) => commands.run(c, args));
  } catch (err) {
    // The queue works without it; qmgrctl will say the MTA cannot be reached.
    log.error("qmgr", `Open the control socket ${controlSocketPath(config)}: ${(err as Error).message}`);
  }

  const [s, c] = [store, commit];
  return {
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      clearTimeout(orphanTimer);
      await control?.close();
      disk.stop();
      await tlsRpt?.stop();
      notices.stop();
      scheduler.stop();
      aq.clear();
      c.close();
      // Let the answers to the commits just made durable go out before the endpoint closes.
      await new Promise((resolve) => setTimeout(resolve, 0));
      s.close();
      conf.close();
      log.info("qmgr", "stopped: queue committed and closed");
    },
    async reload(next: Config): Promise<void> {
      const fresh = await QmgrConf.load(next.qmgr.conf, next.qmgr);
      const old = conf;
      conf = fresh;
      old.close();
      log.info("qmgr", `reloaded the qmgr_conf map${next.qmgr.conf ? ` ${next.qmgr.conf.file}` : " (none)"}`);
    },
  };
}
