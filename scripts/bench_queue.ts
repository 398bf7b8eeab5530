// The queue-at-scale part of the benchmark (`deno task bench`, --queue N; 100,000 by default): fills a
// queue store with N deferred messages (one recipient each, a tiny CDB file each), then measures
// - a scheduling round (Scheduler.refill: the due query, marking rows active, the next wake-up) with
//   nothing due, and with 100 due, against the same rounds on a queue of 1,000: the index on
//   (state, next_try) makes the cost follow the due rows, not the queue;
// - a restart: a real qmgr worker on the full queue with every message due, from spawn to ready (recovery
//   reads every message and lists the CDB), and how many entries its active queue then holds while smtpc
//   holds every delivery (bounded by AQ_max_entries, not by the queue).
// Runs after the relay figures, in its own temporary directory. Touches only that directory.

import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import type { Config } from "../config/types.ts";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { DeliveryTransaction, Envelope, Message, SmtpcResult } from "../components/protocol/messages.ts";
import { ActiveQueue } from "../components/qmgr/active_queue.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { Destinations } from "../components/qmgr/destinations.ts";
import { GroupCommit } from "../components/qmgr/group_commit.ts";
import { RouteCache } from "../components/qmgr/route_cache.ts";
import { Scheduler } from "../components/qmgr/scheduler.ts";
import { QueueStore } from "../components/qmgr/store.ts";
import { startComponent } from "../tests/helpers/harness.ts";
import { request } from "./qmgrctl.ts";

const HOUR = 3_600_000;
/** Rows made due for the "100 due" round. */
const DUE = 100;
const ROUNDS = 9;

export interface QueueFigures {
  entries: number;
  fillSeconds: number;
  /** Median cost of a round (ms) with nothing due and with DUE rows due, for the small and the full queue. */
  idleRound: { small: number; full: number };
  dueRound: { small: number; full: number };
  restartSeconds: number;
  activeAfterRestart: number;
  aqMax: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function configIn(root: string): Config {
  const config = structuredClone(defaultConfig());
  config.CDB_base_directory = join(root, "cdb");
  config.qmgr.IBDB.base_directory = join(root, "ibdb");
  config.qmgr.DEFEDB.base_directory = join(root, "defedb");
  config.qmgr.min_disk_space = 0;
  config.mcp.heartbeat_interval = 60_000;
  return config;
}

/** Puts `n` deferred messages (due in an hour) into the store at `root`, in batches of one transaction. */
async function fill(config: Config, store: QueueStore, commit: GroupCommit, n: number): Promise<void> {
  const now = Date.now();
  const batch = 5_000;
  for (let done = 0; done < n;) {
    const envs: Envelope[] = [];
    for (let i = 0; i < batch && done < n; i++, done++) {
      const id = newQueueId(now + Math.floor(done / 1_000)); // distinct ids: the counter has 16 bits
      envs.push({
        id,
        cdbPath: cdbPath(config.CDB_base_directory, id),
        size: 60,
        arrival: now,
        sender: `sender${done % 97}@source.bench.test`,
        recipients: [{ address: `rcpt${done}@dest${done % 50}.bench.test` }],
        client: { ip: "127.0.0.1", helo: "bench" },
      });
    }
    await Promise.all(envs.map((e) => Deno.writeTextFile(e.cdbPath, "Subject: queued\r\n\r\nx\r\n")));
    await commit.runNow(() => {
      for (const e of envs) store.insertEnvelope(e, 0, now + HOUR);
    });
  }
  // insertEnvelope makes waiting rows due at `now`; these are deferred: due in an hour, tried once.
  await commit.runNow(() => store.db.exec(`UPDATE recipients SET next_try = ${now + HOUR}, tries = 1`));
}

const SINK = { name: "sink", address: "127.0.0.1", port: 25 };

/** The median cost (ms) of Scheduler.refill() with nothing due and with DUE rows due. */
async function roundCosts(config: Config, store: QueueStore, commit: GroupCommit) {
  const aq = new ActiveQueue(config.qmgr.AQ_max_entries);
  const routes = new RouteCache(() =>
    Promise.resolve({
      status: "ok",
      protocol: "esmtp",
      port: 25,
      hosts: [{ name: "sink", address: "127.0.0.1" }],
    })
  );
  const deliver = (ta: DeliveryTransaction) =>
    Promise.resolve<SmtpcResult>({
      type: "smtpc.result",
      taId: ta.taId,
      relay: SINK,
      results: ta.recipients.map((r) => ({
        index: r.index,
        status: "temp",
        origin: "remote",
        reply: { code: 451, enhanced: "4.3.0", lines: ["later"] },
        relay: SINK,
      })),
    });
  const config2 = structuredClone(config);
  config2.qmgr.retry_min_delay = HOUR;
  config2.qmgr.retry_max_delay = HOUR;
  const scheduler = new Scheduler({
    store,
    commit,
    aq,
    routes,
    destinations: new Destinations({ windows: 100, maxTotal: 100 }),
    deliver,
    config: config2,
    now: Date.now,
  });
  const idle: number[] = [];
  const due: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      let t = performance.now();
      scheduler.refill();
      idle.push(performance.now() - t);
      // Make DUE rows due now (as their retry time coming would), then one round takes them.
      await commit.runNow(() =>
        store.db.exec(
          `UPDATE recipients SET next_try = 0 WHERE (message_id, idx) IN
            (SELECT message_id, idx FROM recipients WHERE state = 0 LIMIT ${DUE})`,
        )
      );
      t = performance.now();
      scheduler.refill();
      due.push(performance.now() - t);
      // Let the deliveries answer (deferred again by an hour) before the next round.
      while (aq.size > 0) await new Promise((r) => setTimeout(r, 5));
      commit.flush();
    }
  } finally {
    scheduler.stop();
  }
  return { idle: median(idle), due: median(due) };
}

/** Measures a queue of `n` deferred messages; prints nothing (the caller does). */
export async function queueAtScale(n: number): Promise<QueueFigures> {
  const root = await Deno.makeTempDir({ prefix: "smx-bench-queue-" });
  try {
    const small = configIn(join(root, "small"));
    const full = configIn(join(root, "full"));
    const costs = [];
    let fillSeconds = 0;
    for (const [config, entries] of [[small, Math.min(1_000, n)], [full, n]] as const) {
      await ensureCdbDirs(config.CDB_base_directory);
      await Deno.mkdir(config.qmgr.IBDB.base_directory, { recursive: true });
      const store = QueueStore.open(config.qmgr.IBDB.base_directory, config.qmgr.IBDB.size);
      const commit = new GroupCommit(store.db, { maxDelay: 5, maxOpen: 100 });
      try {
        const t = performance.now();
        await fill(config, store, commit, entries);
        if (config === full) fillSeconds = (performance.now() - t) / 1000;
        costs.push(await roundCosts(config, store, commit));
      } finally {
        commit.close();
        store.close();
      }
    }

    // A restart: the real qmgr worker on the full queue with every message due, from spawn to ready. smtpc
    // holds every delivery, so the active queue shows how much of the queue qmgr keeps in memory.
    await Deno.mkdir(full.qmgr.DEFEDB.base_directory, { recursive: true });
    const db = QueueStore.open(full.qmgr.IBDB.base_directory);
    db.db.exec("UPDATE recipients SET next_try = 0");
    db.close();
    const socket = `unix:${controlSocketPath(full)}`;
    const route: Message = {
      type: "smar.route",
      domain: "",
      result: { status: "ok", protocol: "esmtp", port: 25, hosts: [{ name: "sink", address: "127.0.0.1" }] },
    };
    const t = performance.now();
    const h = await startComponent("qmgr", full, { read: [root], write: [root], net: [socket] }, {
      smtps: () => ({ type: "rpc.failure", reason: "not during the benchmark" }),
      smar: (_from, body) => body.type === "qmgr.route" ? { ...route, domain: body.domain } : undefined,
      smtpc: () => new Promise<Message>(() => {}),
    });
    const restartSeconds = (performance.now() - t) / 1000;
    let activeAfterRestart = 0;
    try {
      await new Promise((r) => setTimeout(r, 500));
      const status = await request(controlSocketPath(full), { command: "status" });
      if (status.ok) {
        activeAfterRestart = (status.result as { activeQueue: { entries: number } }).activeQueue.entries;
      }
    } finally {
      await h.stop();
    }
    return {
      entries: n,
      fillSeconds,
      idleRound: { small: costs[0].idle, full: costs[1].idle },
      dueRound: { small: costs[0].due, full: costs[1].due },
      restartSeconds,
      activeAfterRestart,
      aqMax: full.qmgr.AQ_max_entries,
    };
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** The benchmark's lines for `f`. */
export function queueLines(f: QueueFigures): string[] {
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  return [
    `queue: ${f.entries} deferred messages (filled in ${f.fillSeconds.toFixed(1)} s)`,
    `scheduling round, nothing due: ${ms(f.idleRound.full)} (1,000 queued: ${ms(f.idleRound.small)})`,
    `scheduling round, ${DUE} due: ${ms(f.dueRound.full)} (1,000 queued: ${ms(f.dueRound.small)})`,
    `restart (qmgr worker, spawn to ready): ${f.restartSeconds.toFixed(2)} s; all due, the active queue ` +
    `then holds ${f.activeAfterRestart} (AQ_max_entries ${f.aqMax})`,
  ];
}
