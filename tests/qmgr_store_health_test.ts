// The queue database's check at start (store_health.ts) and `qmgrctl check` (queue_check.ts), on real
// SQLite files and real queue files in a temp directory: a damaged, truncated, emptied or half-deleted
// database is moved aside (never deleted) and replaced; the check compares database and files and its
// repair queues orphans again from their own envelopes, fails lost messages, removes unfinished files.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { Envelope } from "../components/protocol/messages.ts";
import { GroupCommit } from "../components/qmgr/group_commit.ts";
import { checkQueue } from "../components/qmgr/queue_check.ts";
import {
  isCorruption,
  openCheckedStore,
  REBUILD_MARK,
  requestRebuild,
} from "../components/qmgr/store_health.ts";
import { DB_FILE, QueueStore } from "../components/qmgr/store.ts";
import { log } from "../components/util/log.ts";
import { writeQueueFile } from "./helpers/cdb.ts";

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

function envelope(cdb: string, n = 1): Envelope {
  const id = newQueueId(T0);
  return {
    id,
    cdbPath: cdbPath(cdb, id),
    size: 0,
    arrival: T0,
    sender: "s@sender.test",
    recipients: Array.from({ length: n }, (_, i) => ({ address: `r${i}@dest.test` })),
    client: { ip: "192.0.2.1", helo: "h" },
  };
}

/** A closed database in `dir` holding `n` messages, checkpointed (no WAL left). */
async function filledDatabase(dir: string, n: number): Promise<void> {
  const store = QueueStore.open(dir);
  const gc = new GroupCommit(store.db, { maxDelay: 1, maxOpen: 1000 });
  await gc.run(() => {
    for (let i = 0; i < n; i++) store.insertEnvelope(envelope(join(dir, "cdb"), 3), 0, T0);
  });
  gc.close();
  store.close();
}

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_health_" });
  log.setSink(() => {});
  try {
    await fn(dir);
  } finally {
    log.setSink(undefined);
    await Deno.remove(dir, { recursive: true });
  }
}

const names = async (dir: string) => {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
};

Deno.test("the queue database is checked at start", async (t) => {
  await t.step("a healthy one is kept as it is", async () => {
    await inTemp(async (dir) => {
      await filledDatabase(dir, 20);
      const { store, replaced, movedTo } = openCheckedStore(dir);
      try {
        assert.equal(replaced, undefined);
        assert.deepEqual(movedTo, []);
        assert.equal([...store.messages()].length, 20);
      } finally {
        store.close();
      }
    });
  });

  const damages: [string, (path: string) => Promise<void>][] = [
    ["a page overwritten", async (path) => {
      const f = await Deno.open(path, { write: true });
      await f.seek(3 * 4096, Deno.SeekMode.Start);
      await f.write(new Uint8Array(4096).fill(0x41));
      f.close();
    }],
    ["truncated", async (path) => await Deno.truncate(path, Math.floor((await Deno.stat(path)).size / 3))],
    ["emptied", async (path) => await Deno.truncate(path, 0)],
    ["garbage from the start", async (path) => await Deno.writeFile(path, new Uint8Array(20_000).fill(7))],
  ];
  for (const [what, damage] of damages) {
    await t.step(`one ${what} is moved aside and replaced by a new, empty one`, async () => {
      await inTemp(async (dir) => {
        await filledDatabase(dir, 200);
        const path = join(dir, DB_FILE);
        const before = await Deno.readFile(path);
        await damage(path);
        const damaged = await Deno.readFile(path);
        const { store, replaced, movedTo } = openCheckedStore(dir);
        try {
          assert.ok(replaced, "found damaged");
          assert.equal(movedTo.length, 1);
          assert.match(movedTo[0], /queue\.sqlite\.damaged-[0-9TZ-]+$/);
          assert.deepEqual(await Deno.readFile(movedTo[0]), damaged, "kept byte for byte");
          assert.notDeepEqual(damaged, before);
          assert.deepEqual([...store.messages()], [], "the new database is empty (recovery fills it)");
          store.db.exec("SELECT 1");
        } finally {
          store.close();
        }
      });
    });
  }

  await t.step("a missing database whose WAL remains: the WAL is moved aside too", async () => {
    await inTemp(async (dir) => {
      await Deno.writeFile(join(dir, DB_FILE + "-wal"), new Uint8Array(8192).fill(1));
      const { store, replaced, movedTo } = openCheckedStore(dir);
      store.close();
      assert.match(replaced!, /missing \(its write-ahead log is not\)/);
      assert.equal(movedTo.length, 1);
      assert.ok(movedTo[0].endsWith("-wal"));
    });
  });

  await t.step("a database found corrupt while running is rebuilt at the next start", async () => {
    await inTemp(async (dir) => {
      await filledDatabase(dir, 5);
      requestRebuild(dir, "database disk image is malformed");
      assert.ok((await names(dir)).includes(REBUILD_MARK));
      const { store, replaced } = openCheckedStore(dir);
      store.close();
      assert.match(replaced!, /previous run found it damaged \(.*malformed\)/);
      assert.ok(!(await names(dir)).includes(REBUILD_MARK), "the mark is gone once acted on");
    });
  });

  await t.step("isCorruption() knows SQLite's corruption errors from the rest", async () => {
    await inTemp(async (dir) => {
      const path = join(dir, "x.sqlite");
      await Deno.writeFile(path, new Uint8Array(8192).fill(9));
      let err: unknown;
      try {
        new DatabaseSync(path).prepare("SELECT * FROM sqlite_master").all();
      } catch (e) {
        err = e;
      }
      assert.ok(isCorruption(err), String(err));
      assert.equal(
        isCorruption(Object.assign(new Error("UNIQUE constraint failed"), { errcode: 19 })),
        false,
      );
      assert.equal(isCorruption(new Error("no code")), false);
    });
  });
});

Deno.test("qmgrctl check compares the database with the queue files, and repairs", async () => {
  await inTemp(async (dir) => {
    const cdb = join(dir, "cdb");
    await ensureCdbDirs(cdb);
    const store = QueueStore.open(dir);
    const gc = new GroupCommit(store.db, { maxDelay: 1, maxOpen: 1000 });
    const now = Date.now();
    const old = async (path: string) => await Deno.utime(path, new Date(now - HOUR), new Date(now - HOUR));
    try {
      const fine = envelope(cdb, 2);
      const lost = envelope(cdb, 1);
      const orphan = envelope(cdb, 2);
      const unfinished = envelope(cdb, 1);
      const differs = envelope(cdb, 1);
      await writeQueueFile(fine, "Subject: fine\r\n\r\n");
      await writeQueueFile(orphan, "Subject: orphan\r\n\r\n");
      await writeQueueFile(unfinished, "Subject: cut", false);
      await writeQueueFile(
        { ...differs, recipients: [{ address: "other@dest.test" }] },
        "Subject: d\r\n\r\n",
      );
      for (const e of [fine, orphan, unfinished, differs]) await old(e.cdbPath);
      await gc.run(() => {
        for (const e of [fine, lost, differs]) store.insertEnvelope(e, 0, T0);
      });
      const failed: string[] = [];
      let woken = 0;
      const deps = {
        store,
        commit: gc,
        cdbBase: cdb,
        now: () => now,
        failLost: (m: { id: string }) => {
          failed.push(m.id);
          return Promise.resolve(true);
        },
        rebuild: () => assert.fail("the database is healthy"),
        wake: () => woken++,
      };

      const report = await checkQueue(deps, false);
      assert.equal(report.database, "ok");
      assert.equal(report.messages, 3);
      assert.equal(report.files, 4);
      assert.deepEqual(report.lost, [lost.id]);
      assert.deepEqual(report.orphans, [orphan.id]);
      assert.deepEqual(report.unfinished.map((p) => p.slice(-20)), [unfinished.id]);
      assert.deepEqual(report.differs, [differs.id]);
      assert.equal(report.repaired, undefined);
      assert.equal(store.hasMessage(orphan.id), false, "a check alone changes nothing");
      await Deno.stat(unfinished.cdbPath);

      const repaired = await checkQueue(deps, true);
      assert.deepEqual(repaired.repaired, { requeued: 1, failed: 1, removed: 1, rebuild: false });
      assert.ok(store.hasMessage(orphan.id));
      assert.deepEqual(store.recipientsOf(orphan.id).map((r) => r.address), ["r0@dest.test", "r1@dest.test"]);
      assert.deepEqual(failed, [lost.id]);
      assert.equal(woken, 1);
      await assert.rejects(Deno.stat(unfinished.cdbPath), Deno.errors.NotFound);
      await Deno.stat(fine.cdbPath);

      const again = await checkQueue({ ...deps, failLost: () => Promise.resolve(false) }, false);
      assert.deepEqual([again.counts.orphans, again.counts.unfinished], [0, 0]);
    } finally {
      gc.close();
      store.close();
    }
  });
});
