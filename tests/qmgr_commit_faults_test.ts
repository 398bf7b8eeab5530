// The group commit when the disk says no: a failure injected at each step (BEGIN, a change, a rollback
// SQLite does by itself, COMMIT, and a real SQLITE_FULL from a database capped with max_page_count) never
// yields a false success, fails every waiter of the lost transaction, reports the changes applied without
// waiting so memory and disk agree again; and the scheduler records a result whose commit failed again
// until the store takes it (nothing left ACTIVE without an owner, nothing lost). Also: leader/follower
// commits (a single change is committed without waiting for max_commit_delay) and shared WAL syncs.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { DeliveryTransaction, Envelope, SmtpcResult } from "../components/protocol/messages.ts";
import { ActiveQueue } from "../components/qmgr/active_queue.ts";
import { Destinations } from "../components/qmgr/destinations.ts";
import { GroupCommit } from "../components/qmgr/group_commit.ts";
import { commitEnvelope } from "../components/qmgr/incoming.ts";
import { RouteCache } from "../components/qmgr/route_cache.ts";
import { Scheduler } from "../components/qmgr/scheduler.ts";
import { ACTIVE, QueueStore, SENT } from "../components/qmgr/store.ts";
import { isCorruption } from "../components/qmgr/store_health.ts";
import { log } from "../components/util/log.ts";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

/** How an exec() of the database goes wrong: throw, or roll back first as SQLite does on some errors. */
type Fault = "throw" | "rollback";

/**
 * The store's database with a fault hook around exec(): `fault(sql)` decides, per statement, whether
 * it fails (with SQLITE_FULL, as a full disk makes it) and whether SQLite rolled back the transaction.
 */
function faulty(db: DatabaseSync, fault: (sql: string) => Fault | undefined): DatabaseSync {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "exec") {
        return (sql: string) => {
          const f = fault(sql);
          if (f === "rollback" && target.isTransaction) target.exec("ROLLBACK");
          if (f) throw Object.assign(new Error("database or disk is full"), { errcode: 13 });
          return target.exec(sql);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

function envelope(dir: string, n = 1): Envelope {
  const id = newQueueId(T0);
  return {
    id,
    cdbPath: cdbPath(dir, id),
    size: 10,
    arrival: T0,
    sender: "s@sender.test",
    recipients: Array.from({ length: n }, (_, i) => ({ address: `r${i}@dest.test` })),
    client: { ip: "192.0.2.1", helo: "h" },
  };
}

async function withStore(
  fn: (s: { dir: string; store: QueueStore; gc: GroupCommit; faults: Map<string, Fault> }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_faults_" });
  const store = QueueStore.open(dir);
  // One fault per statement kind, used once.
  const faults = new Map<string, Fault>();
  const db = faulty(store.db, (sql) => {
    const key = sql.split(" ")[0];
    const f = faults.get(key);
    if (f) faults.delete(key);
    return f;
  });
  const gc = new GroupCommit(db, { maxDelay: HOUR, maxOpen: 1000, wal: store.wal });
  log.setSink(() => {});
  try {
    await fn({ dir, store, gc, faults });
  } finally {
    log.setSink(undefined);
    gc.close();
    await gc.synced();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("group commit: leader/follower", async (t) => {
  await t.step(
    "a single change is committed at once, not after max_commit_delay (an hour here)",
    async () => {
      await withStore(async ({ dir, store, gc }) => {
        const a = envelope(dir);
        await gc.run(() => store.insertEnvelope(a, 0, T0), { envelope: true });
        assert.equal(gc.commits, 1);
        const b = envelope(dir);
        await gc.run(() => store.insertEnvelope(b, 0, T0), { envelope: true });
        assert.equal(gc.commits, 2, "the second change had its own commit, after the first");
        assert.ok(store.hasMessage(a.id) && store.hasMessage(b.id));
      });
    },
  );

  await t.step("what arrives before the commit starts joins it", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const order: string[] = [];
      const all = Array.from(
        { length: 20 },
        (_, i) =>
          gc.run(() => store.insertEnvelope(envelope(dir), 0, T0), { envelope: true }).then(() => {
            order.push(`${i}@${gc.commits}`);
          }),
      );
      await Promise.all(all);
      assert.equal(gc.commits, 1);
      assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => `${i}@1`));
    });
  });

  await t.step("durable changes resolve after one WAL sync shared by the group", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const envs = Array.from({ length: 5 }, () => envelope(dir));
      await Promise.all(envs.map((e) => gc.run(() => store.insertEnvelope(e, 0, T0), { durable: true })));
      assert.equal(gc.commits, 1);
      assert.equal(gc.syncs, 1);
      await gc.run(() => store.insertEnvelope(envelope(dir), 0, T0));
      assert.equal(gc.syncs, 1, "an envelope needs no WAL sync: its queue file carries it");
    });
  });
});

Deno.test("group commit: a failure at each step fails the whole transaction, never reports success", async (t) => {
  for (
    const [step, key, fault] of [
      ["BEGIN", "BEGIN", "throw"],
      ["a savepoint", "SAVEPOINT", "throw"],
      ["COMMIT", "COMMIT", "throw"],
      ["COMMIT, rolled back by SQLite", "COMMIT", "rollback"],
    ] as const
  ) {
    await t.step(`${step} fails: its waiters reject, the next group commits`, async () => {
      await withStore(async ({ dir, store, gc, faults }) => {
        const first = envelope(dir);
        let lost = 0;
        if (key !== "BEGIN" && key !== "SAVEPOINT") {
          gc.apply(() => store.insertEnvelope(first, 0, T0), () => lost++);
        }
        faults.set(key, fault);
        const a = envelope(dir);
        const b = envelope(dir);
        const results = await Promise.allSettled([
          gc.run(() => store.insertEnvelope(a, 0, T0), { envelope: true }),
          gc.run(() => store.insertEnvelope(b, 0, T0), { envelope: true }),
        ]);
        if (key === "BEGIN" || key === "SAVEPOINT") {
          assert.equal(results[0].status, "rejected", "the change that met the failure");
        } else {
          assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
          assert.equal(lost, 1, "the change applied without waiting is reported lost");
          assert.equal(store.hasMessage(first.id), false);
        }
        for (const [i, e] of [a, b].entries()) {
          assert.equal(store.hasMessage(e.id), results[i].status === "fulfilled", `${e.id}: disk agrees`);
        }
        const c = envelope(dir);
        await gc.run(() => store.insertEnvelope(c, 0, T0), { envelope: true });
        assert.ok(store.hasMessage(c.id));
      });
    });
  }

  await t.step("a change after which SQLite rolled back by itself fails the changes before it", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const a = envelope(dir);
      const waiting = gc.run(() => store.insertEnvelope(a, 0, T0), { envelope: true });
      const b = envelope(dir);
      const failing = gc.run(() => {
        store.insertEnvelope(b, 0, T0);
        store.db.exec("ROLLBACK"); // what SQLite does on SQLITE_FULL in some statements
        throw Object.assign(new Error("database or disk is full"), { errcode: 13 });
      }, { envelope: true });
      const c = envelope(dir);
      const after = gc.run(() => store.insertEnvelope(c, 0, T0), { envelope: true });
      const results = await Promise.allSettled([waiting, failing, after]);
      assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected", "fulfilled"]);
      assert.deepEqual([a, b, c].map((e) => store.hasMessage(e.id)), [false, false, true]);
    });
  });

  await t.step("a rollback found only at commit time fails every waiter (no false success)", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const a = envelope(dir);
      const waiting = gc.run(() => store.insertEnvelope(a, 0, T0), { envelope: true });
      store.db.exec("ROLLBACK"); // behind the group commit's back
      await assert.rejects(waiting, /rolled back/);
      assert.equal(store.hasMessage(a.id), false);
    });
  });

  await t.step("a real SQLITE_FULL (max_page_count) fails the commit path: no committed answer", async () => {
    await withStore(async ({ dir, store, gc }) => {
      await ensureCdbDirs(dir);
      const pages = Number(store.db.prepare("PRAGMA page_count").get()!.page_count);
      store.db.exec(`PRAGMA max_page_count = ${pages}`);
      const aq = new ActiveQueue(10);
      const admitted: string[] = [];
      const deps = {
        store,
        commit: gc,
        aq,
        scheduler: { admit: (env: Envelope) => admitted.push(env.id) } as unknown as Scheduler,
        cdbBase: dir,
        now: () => T0,
        stopping: () => false,
      };
      const answers = await Promise.all(
        Array.from({ length: 30 }, () => commitEnvelope(deps, { ...envelope(dir, 3), size: 10 })),
      );
      const failed = answers.filter((a) => a.type === "qmgr.commit_failed");
      assert.ok(failed.length > 0, "the capped database refused some envelopes");
      for (const a of answers) {
        assert.equal(store.hasMessage(a.id), a.type === "qmgr.committed", `${a.id}: answer and disk agree`);
      }
      assert.deepEqual(
        admitted.sort(),
        answers.filter((a) => a.type === "qmgr.committed").map((a) => a.id).sort(),
      );
      assert.equal(aq.room, 10, "every reservation of a failed commit was given back");
      store.db.exec("PRAGMA max_page_count = 1000000");
      const later = await commitEnvelope(deps, envelope(dir, 1));
      assert.equal(later.type, "qmgr.committed", "space freed: commits work again");
    });
  });
});

Deno.test("a delivery result whose commit failed is recorded again: nothing stays ACTIVE", async () => {
  const root = await Deno.makeTempDir({ prefix: "qmgr_faults_" });
  const config = structuredClone(defaultConfig());
  config.CDB_base_directory = join(root, "cdb");
  await ensureCdbDirs(config.CDB_base_directory);
  const store = QueueStore.open(root);
  let failCommits = 0;
  const db = faulty(
    store.db,
    (sql) => sql === "COMMIT" && failCommits > 0 && failCommits-- > 0 ? "rollback" : undefined,
  );
  const commit = new GroupCommit(db, { maxDelay: HOUR, maxOpen: 100, wal: store.wal });
  const aq = new ActiveQueue(10);
  const routes = new RouteCache(() =>
    Promise.resolve(
      { status: "ok", protocol: "esmtp", port: 25, hosts: [{ name: "mx", address: "192.0.2.9" }] } as const,
    )
  );
  let delivered = 0;
  const deliver = (ta: DeliveryTransaction): Promise<SmtpcResult> => {
    delivered++;
    // The result's state change rides in the next commit: make that one (and the one after) fail.
    failCommits = 2;
    return Promise.resolve({
      type: "smtpc.result",
      taId: ta.taId,
      relay: { name: "mx", address: "192.0.2.9", port: 25 },
      results: ta.recipients.map((r) => ({
        index: r.index,
        status: "sent",
        origin: "remote",
        reply: { code: 250, enhanced: "2.0.0", lines: ["ok"] },
      })),
    });
  };
  const scheduler = new Scheduler({
    store,
    commit,
    aq,
    routes,
    destinations: new Destinations({ windows: 10, maxTotal: 10 }),
    deliver,
    config,
    now: Date.now,
  });
  log.setSink(() => {});
  scheduler.start();
  try {
    const env = envelope(config.CDB_base_directory, 2);
    env.arrival = Date.now();
    await Deno.writeTextFile(env.cdbPath, "x");
    const deps = {
      store,
      commit,
      aq,
      scheduler,
      cdbBase: config.CDB_base_directory,
      now: Date.now,
      stopping: () => false,
    };
    assert.equal((await commitEnvelope(deps, env)).type, "qmgr.committed");
    const deadline = Date.now() + 10_000;
    const gone = () => Deno.stat(env.cdbPath).then(() => false, () => true);
    while (!(await gone()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(store.hasMessage(env.id), false, "both recipients recorded as sent, the message removed");
    assert.equal(delivered, 1, "delivered once: the lost state change was recorded again, not redelivered");
    await assert.rejects(Deno.stat(env.cdbPath), Deno.errors.NotFound);
    assert.equal(
      store.db.prepare(`SELECT COUNT(*) AS n FROM recipients WHERE state IN (${ACTIVE}, ${SENT})`).get()!.n,
      0,
    );
  } finally {
    scheduler.stop();
    log.setSink(undefined);
    commit.close();
    await commit.synced();
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a corruption error met while running reaches onError, where qmgr asks for a rebuild", async () => {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_faults_" });
  const store = QueueStore.open(dir);
  const seen: boolean[] = [];
  const gc = new GroupCommit(store.db, {
    maxDelay: HOUR,
    maxOpen: 10,
    onError: (e) => seen.push(isCorruption(e)),
  });
  // A real SQLITE_CORRUPT: a damaged page of another database, read inside a change.
  const broken = join(dir, "broken.sqlite");
  const other = new DatabaseSync(broken);
  other.exec("CREATE TABLE t (a TEXT); BEGIN;");
  const ins = other.prepare("INSERT INTO t VALUES (?)");
  for (let i = 0; i < 500; i++) ins.run("x".repeat(100));
  other.exec("COMMIT");
  other.close();
  const f = await Deno.open(broken, { write: true });
  await f.seek(4096, Deno.SeekMode.Start);
  await f.write(new Uint8Array(4096).fill(0x33));
  f.close();
  const damaged = new DatabaseSync(broken);
  log.setSink(() => {});
  try {
    await assert.rejects(gc.run(() => damaged.prepare("SELECT COUNT(*) FROM t WHERE a > ''").get()));
    assert.deepEqual(seen, [true]);
    const ok = envelope(dir);
    await gc.run(() => store.insertEnvelope(ok, 0, T0));
    assert.ok(store.hasMessage(ok.id), "the queue's own transaction goes on");
  } finally {
    log.setSink(undefined);
    damaged.close();
    gc.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
