// The queue store, its group commit and restart recovery, used directly in-process on a temp directory.

import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { cdbText, writeQueueFile } from "./helpers/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { Envelope } from "../components/protocol/messages.ts";
import { GroupCommit } from "../components/qmgr/group_commit.ts";
import { recover, removeLateOrphans } from "../components/qmgr/recovery.ts";
import { ACTIVE, FAILED, QueueStore, SENT, WAITING } from "../components/qmgr/store.ts";

const T0 = 1_700_000_000_000;

function envelope(cdbBase: string, n = 2, arrival = T0): Envelope {
  const id = newQueueId(arrival);
  return {
    id,
    cdbPath: cdbPath(cdbBase, id),
    size: 123,
    arrival,
    sender: "alice@sender.test",
    recipients: Array.from({ length: n }, (_, i) => ({
      address: `rcpt${i}@example.test`,
      notify: i === 0 ? ["SUCCESS", "FAILURE"] : undefined,
      orcpt: i === 0 ? "rfc822;orig@example.test" : undefined,
    })),
    client: { ip: "192.0.2.1", helo: "client.test" },
    bodyType: "8BITMIME",
    smtputf8: true,
    envid: "ENV-1",
    ret: "HDRS",
  };
}

async function withStore(
  fn: (s: { dir: string; store: QueueStore; gc: GroupCommit }) => Promise<void> | void,
  opts = { maxDelay: 20, maxOpen: 1000 },
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_store_" });
  const store = QueueStore.open(dir);
  const gc = new GroupCommit(store.db, opts);
  try {
    await fn({ dir, store, gc });
  } finally {
    gc.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("group commit", async (t) => {
  await t.step("many concurrent commits share one transaction", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const envs = Array.from({ length: 50 }, () => envelope(dir));
      await Promise.all(envs.map((e) => gc.run(() => store.insertEnvelope(e, 0, T0), { envelope: true })));
      assert.equal(gc.commits, 1);
      for (const e of envs) assert.ok(store.hasMessage(e.id));
    });
  });

  await t.step("a group commits at once when max_open_TAs envelopes wait", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const first = Array.from(
        { length: 10 },
        () => gc.run(() => store.insertEnvelope(envelope(dir), 0, T0), { envelope: true }),
      );
      // The tenth envelope committed synchronously, before any timer could fire.
      assert.equal(gc.commits, 1);
      const rest = Array.from(
        { length: 5 },
        () => gc.run(() => store.insertEnvelope(envelope(dir), 0, T0), { envelope: true }),
      );
      await Promise.all([...first, ...rest]);
      assert.equal(gc.commits, 2);
    }, { maxDelay: 20, maxOpen: 10 });
  });

  await t.step("a failing change is undone alone, the others commit", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const a = envelope(dir);
      const b = envelope(dir);
      const results = await Promise.allSettled([
        gc.run(() => store.insertEnvelope(a, 0, T0), { envelope: true }),
        gc.run(() => store.insertEnvelope({ ...a, recipients: [{ address: "x@y.test" }] }, 0, T0), {
          envelope: true,
        }),
        gc.run(() => store.insertEnvelope(b, 0, T0), { envelope: true }),
      ]);
      assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
      assert.deepEqual(store.recipientsOf(a.id).map((r) => r.address), [
        "rcpt0@example.test",
        "rcpt1@example.test",
      ]);
      assert.ok(store.hasMessage(b.id));
    });
  });
});

Deno.test("the store", async (t) => {
  await t.step("keeps every envelope field across a reopen", async () => {
    const dir = await Deno.makeTempDir({ prefix: "qmgr_store_" });
    try {
      const env = envelope(dir, 3);
      let store = QueueStore.open(dir);
      let gc = new GroupCommit(store.db, { maxDelay: 5, maxOpen: 100 });
      await gc.run(() => store.insertEnvelope(env, 1, T0 + 5), { envelope: true });
      gc.close();
      store.close();

      store = QueueStore.open(dir);
      gc = new GroupCommit(store.db, { maxDelay: 5, maxOpen: 100 });
      try {
        assert.deepEqual(store.getMessage(env.id), {
          id: env.id,
          cdbPath: env.cdbPath,
          size: 123,
          arrival: T0,
          sender: "alice@sender.test",
          clientIp: "192.0.2.1",
          clientHelo: "client.test",
          bodyType: "8BITMIME",
          smtputf8: true,
          envid: "ENV-1",
          ret: "HDRS",
        });
        const rows = store.recipientsOf(env.id);
        assert.deepEqual(rows.map((r) => [r.index, r.address, r.state, r.tries, r.nextTry]), [
          [0, "rcpt0@example.test", ACTIVE, 0, T0 + 5],
          [1, "rcpt1@example.test", WAITING, 0, T0 + 5],
          [2, "rcpt2@example.test", WAITING, 0, T0 + 5],
        ]);
        assert.deepEqual(rows[0].notify, ["SUCCESS", "FAILURE"]);
        assert.equal(rows[0].orcpt, "rfc822;orig@example.test");
        assert.equal(rows[1].notify, undefined);
      } finally {
        gc.close();
        store.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step(
    "the due query returns only waiting recipients whose time has come, earliest first",
    async () => {
      await withStore(async ({ dir, store, gc }) => {
        const env = envelope(dir, 5);
        await gc.run(() => store.insertEnvelope(env, 5, T0), { envelope: true });
        const later = { tries: 1, reply: "451 4.3.0 later", notice: 0 };
        await gc.run(() => {
          store.markDeferred(env.id, 0, T0 + 300, later);
          store.markDeferred(env.id, 1, T0 + 100, later);
          store.markDeferred(env.id, 2, T0 + 900, later);
          store.markDone(env.id, 4, SENT, { tries: 1, reply: "250 ok", notice: 0 });
        });
        const cases: [string, number, number, number[]][] = [
          ["before anything is due", T0 + 50, 10, []],
          ["one is due", T0 + 100, 10, [1]],
          ["two are due, earliest first", T0 + 500, 10, [1, 0]],
          ["the limit is honoured", T0 + 1000, 2, [1, 0]],
          ["active and done rows never come back", T0 + 1000, 10, [1, 0, 2]],
          ["no room, no rows", T0 + 1000, 0, []],
        ];
        for (const [label, now, limit, want] of cases) {
          assert.deepEqual(store.due(now, limit).map((d) => d.recipient.index), want, label);
        }
        assert.equal(store.due(T0 + 100, 1)[0].message.sender, "alice@sender.test");
        assert.equal(store.earliestWaiting(), T0 + 100);
        assert.equal(store.undoneCount(env.id), 4);
      });
    },
  );

  await t.step("the due query and the earliest retry use the next_try index", async () => {
    await withStore(({ store }) => {
      const plan = (sql: string) =>
        (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail)
          .join("; ");
      assert.match(
        plan(`SELECT * FROM recipients WHERE state = 0 AND next_try <= 5 ORDER BY next_try LIMIT 10`),
        /recipients_due/,
      );
      assert.match(plan(`SELECT MIN(next_try) FROM recipients WHERE state = 0`), /recipients_due/);
    });
  });

  await t.step("a finished message leaves no rows", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const env = envelope(dir, 2);
      await gc.run(() => store.insertEnvelope(env, 2, T0), { envelope: true });
      await gc.run(() => {
        store.markDone(env.id, 0, SENT, { tries: 1, reply: "250 ok", notice: 0 });
        store.markDone(env.id, 1, FAILED, { tries: 1, reply: "550 no", notice: 0 });
      });
      assert.equal(store.undoneCount(env.id), 0);
      await gc.run(() => store.deleteMessage(env.id));
      assert.equal(store.hasMessage(env.id), false);
      assert.deepEqual(store.recipientsOf(env.id), []);
    });
  });
});

Deno.test("recovery", async (t) => {
  await t.step(
    "keeps named files, removes old unfinished orphans, reports messages without content",
    async () => {
      await withStore(async ({ dir, store, gc }) => {
        const cdb = join(dir, "cdb");
        await ensureCdbDirs(cdb);
        const kept = envelope(cdb, 2);
        const lost = envelope(cdb, 1);
        await gc.run(() => {
          store.insertEnvelope(kept, 2, T0);
          store.insertEnvelope(lost, 1, T0);
        });
        await Deno.writeTextFile(kept.cdbPath, "kept\r\n");
        const oldOrphan = cdbPath(cdb, newQueueId(T0));
        const youngOrphan = cdbPath(cdb, newQueueId(T0));
        const notOurs = join(cdb, "0", "README");
        for (const p of [oldOrphan, youngOrphan, notOurs]) await Deno.writeTextFile(p, "x");
        const unfinished = envelope(cdb, 1);
        await writeQueueFile(unfinished, "Subject: cut\r\n\r\nhalf", false);
        const now = Date.now();
        for (const p of [oldOrphan, unfinished.cdbPath]) {
          await Deno.utime(p, new Date(now - 3_600_000), new Date(now - 3_600_000));
        }

        const report = await recover(store, gc, { cdbBase: cdb, now, orphanGrace: 600_000 });

        assert.deepEqual(
          report.removed.map((p) => p.slice(-20)).sort(),
          [oldOrphan, unfinished.cdbPath].map((p) => p.slice(-20)).sort(),
        );
        assert.deepEqual(report.young.map(([, p]) => p.endsWith(youngOrphan.slice(-22))), [true]);
        assert.deepEqual(report.missing, [lost.id]);
        assert.equal(report.messages, 1);
        assert.equal(report.reset, 3);
        await assert.rejects(Deno.stat(oldOrphan), Deno.errors.NotFound);
        await assert.rejects(Deno.stat(unfinished.cdbPath), Deno.errors.NotFound);
        await Deno.stat(youngOrphan);
        await Deno.stat(notOurs);
        await Deno.stat(kept.cdbPath);
        assert.equal(
          store.hasMessage(lost.id),
          true,
          "a message without content stays until its DSN is made",
        );
        assert.deepEqual(
          store.due(T0, 10).filter((d) => d.message.id === kept.id).map((d) => d.recipient.index),
          [0, 1],
          "active recipients are due again",
        );

        assert.equal(await removeLateOrphans(store, gc, cdb, report.young), 1);
        await assert.rejects(Deno.stat(youngOrphan), Deno.errors.NotFound);
      });
    },
  );

  await t.step("queues a complete orphan again from its own envelope, at any age", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const cdb = join(dir, "cdb");
      await ensureCdbDirs(cdb);
      const env = envelope(cdb, 3);
      env.recipients[2].errorsTo = "owner-list@example.test";
      await writeQueueFile(env, "Subject: orphan\r\n\r\nbody\r\n");
      const young = envelope(cdb, 1);
      await writeQueueFile(young, "Subject: young\r\n\r\n");

      const report = await recover(store, gc, { cdbBase: cdb, now: Date.now(), orphanGrace: 600_000 });

      assert.deepEqual(report.requeued.sort(), [env.id, young.id].sort());
      assert.deepEqual(report.young, []);
      assert.deepEqual(store.getMessage(env.id), {
        id: env.id,
        cdbPath: resolve(env.cdbPath),
        size: env.size,
        arrival: T0,
        sender: "alice@sender.test",
        clientIp: "192.0.2.1",
        clientHelo: "client.test",
        bodyType: "8BITMIME",
        smtputf8: true,
        envid: "ENV-1",
        ret: "HDRS",
      });
      assert.deepEqual(
        store.recipientsOf(env.id).map((r) => [r.address, r.state, r.notify, r.orcpt, r.errorsTo]),
        [
          ["rcpt0@example.test", WAITING, ["SUCCESS", "FAILURE"], "rfc822;orig@example.test", undefined],
          ["rcpt1@example.test", WAITING, undefined, undefined, undefined],
          ["rcpt2@example.test", WAITING, undefined, undefined, "owner-list@example.test"],
        ],
      );
      assert.equal(await cdbText(env.cdbPath), "Subject: orphan\r\n\r\nbody\r\n");
    });
  });

  await t.step("keeps an orphan without an envelope when the database was rebuilt", async () => {
    await withStore(async ({ dir, store, gc }) => {
      const cdb = join(dir, "cdb");
      await ensureCdbDirs(cdb);
      const old = cdbPath(cdb, newQueueId(T0));
      await Deno.writeTextFile(old, "Subject: written by an older smx\r\n\r\n");
      const now = Date.now();
      await Deno.utime(old, new Date(now - 3_600_000), new Date(now - 3_600_000));
      const report = await recover(store, gc, { cdbBase: cdb, now, orphanGrace: 600_000, rebuilt: true });
      assert.deepEqual(report.kept.map((p) => p.slice(-20)), [old.slice(-20)]);
      await Deno.stat(old);
    });
  });
});
