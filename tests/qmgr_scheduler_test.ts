// qmgr's scheduling pieces in-process, with an injected clock: retry policy, the scheduler over a real
// store (bounded active queue, retries, queue_return_timeout), route cache, connection slots and
// per-client connection limits.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type {
  DeliveryTransaction,
  Envelope,
  RouteResult,
  SmtpcResult,
} from "../components/protocol/messages.ts";
import { ActiveQueue } from "../components/qmgr/active_queue.ts";
import { ConnControl } from "../components/qmgr/conn_control.ts";
import { Destinations, type TaskOutcome } from "../components/qmgr/destinations.ts";
import { GroupCommit } from "../components/qmgr/group_commit.ts";
import { commitEnvelope } from "../components/qmgr/incoming.ts";
import { retryDelay } from "../components/qmgr/results.ts";
import { enhancedOf, reasonReply, replyLine } from "../components/mail/result.ts";
import { remoteReply } from "../components/smtpc/outcome.ts";
import type { Reply } from "../components/smtpc/reply_reader.ts";
import { RouteCache } from "../components/qmgr/route_cache.ts";
import { Notices } from "../components/qmgr/notices.ts";
import { Scheduler } from "../components/qmgr/scheduler.ts";
import { QueueStore, WAITING } from "../components/qmgr/store.ts";

const T0 = 1_700_000_000_000;
const MIN = 60_000;
const tick = () => new Promise((r) => setTimeout(r, 0));

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

Deno.test("retryDelay() starts at retry_min_delay and doubles up to retry_max_delay", () => {
  const cases: [number, number][] = [[1, 5], [2, 10], [3, 20], [4, 40], [5, 60], [50, 60]];
  for (const [tries, minutes] of cases) {
    assert.equal(retryDelay(tries, 5 * MIN, 60 * MIN), minutes * MIN, `tries=${tries}`);
  }
});

Deno.test("a server's reply carries its enhanced status, else the result gets the class default", () => {
  const cases: [string, Reply, "sent" | "temp" | "perm", string, string][] = [
    ["queued", { code: 250, lines: ["2.0.0 Ok: queued as X"] }, "sent", "2.0.0", "250 2.0.0 Ok: queued as X"],
    [
      "no such user",
      { code: 550, lines: ["5.1.1 <a@b>: rejected"] },
      "perm",
      "5.1.1",
      "550 5.1.1 <a@b>: rejected",
    ],
    [
      "multi-line",
      { code: 451, lines: ["4.7.1 Greylisted", "4.7.1 come back"] },
      "temp",
      "4.7.1",
      "451 4.7.1 Greylisted come back",
    ],
    ["no enhanced status", { code: 250, lines: ["Ok"] }, "sent", "2.0.0", "250 Ok"],
    ["a class that does not match", { code: 550, lines: ["2.0.0 odd"] }, "perm", "5.0.0", "550 2.0.0 odd"],
    [
      "a version number is no status",
      { code: 451, lines: ["version 1.2.3 of something"] },
      "temp",
      "4.0.0",
      "451 version 1.2.3 of something",
    ],
  ];
  for (const [label, reply, status, enhanced, line] of cases) {
    const r = remoteReply(reply);
    assert.equal(enhancedOf(r, status), enhanced, label);
    assert.equal(replyLine(r), line, label);
  }
  const reason = reasonReply("connect to 192.0.2.1:25: Connection refused");
  assert.equal(enhancedOf(reason, "temp"), "4.0.0", "an agent's reason without a code");
  assert.equal(replyLine(reason), "connect to 192.0.2.1:25: Connection refused");
});

Deno.test("the scheduler over a real store, with a clock it does not own", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "qmgr_sched_" });
  const config = structuredClone(defaultConfig());
  config.CDB_base_directory = join(root, "cdb");
  config.qmgr.AQ_max_entries = 2;
  config.qmgr.retry_min_delay = 10 * MIN;
  config.qmgr.retry_max_delay = 30 * MIN;
  config.qmgr.queue_return_timeout = 60 * MIN;
  await ensureCdbDirs(config.CDB_base_directory);
  let now = T0;
  const clock = () => now;
  const store = QueueStore.open(root);
  const commit = new GroupCommit(store.db, { maxDelay: 1, maxOpen: 100 });
  const aq = new ActiveQueue(config.qmgr.AQ_max_entries);
  const route: RouteResult = {
    status: "ok",
    protocol: "esmtp",
    port: 25,
    hosts: [{ name: "mx", address: "192.0.2.9" }],
  };
  const routes = new RouteCache(() => Promise.resolve(route), { now: clock });
  const destinations = new Destinations({ windows: 10, maxTotal: 10 });
  const seen: DeliveryTransaction[] = [];
  let answer: "sent" | "temp" = "sent";
  let maxInFlight = 0;
  const deliver = async (ta: DeliveryTransaction): Promise<SmtpcResult> => {
    seen.push(ta);
    maxInFlight = Math.max(maxInFlight, aq.size);
    await tick();
    return {
      type: "smtpc.result",
      taId: ta.taId,
      relay: { name: "mx", address: "192.0.2.9", port: 25 },
      results: ta.recipients.map((r) => ({
        index: r.index,
        status: answer,
        origin: "remote",
        reply: { code: answer === "sent" ? 250 : 451, lines: [`${answer} reply`] },
      })),
    };
  };
  const scheduler = new Scheduler({ store, commit, aq, routes, destinations, deliver, config, now: clock });
  config.qmgr.DSN_handling.merge_delay_max = 0;
  const notices = new Notices({
    store,
    commit,
    aq,
    config,
    now: clock,
    admit: (env, active) => scheduler.admit(env, active),
    settled: (id) => scheduler.settle(id),
  });
  scheduler.notices = notices;
  const incoming = {
    store,
    commit,
    aq,
    scheduler,
    cdbBase: config.CDB_base_directory,
    now: clock,
    stopping: () => false,
  };
  const submit = async (n: number): Promise<Envelope> => {
    const id = newQueueId(now);
    const env: Envelope = {
      id,
      cdbPath: cdbPath(config.CDB_base_directory, id),
      size: 10,
      arrival: now,
      sender: "s@sender.test",
      recipients: Array.from({ length: n }, (_, i) => ({ address: `r${i}@dest.test` })),
      client: { ip: "192.0.2.1", helo: "h" },
    };
    await Deno.writeTextFile(env.cdbPath, "x");
    assert.equal((await commitEnvelope(incoming, env)).type, "qmgr.committed");
    return env;
  };
  scheduler.start();
  try {
    await t.step(
      "the active queue never holds more than AQ_max_entries; the rest follow as room frees",
      async () => {
        const env = await submit(5);
        await until(() => store.undoneCount(env.id) === 0, "all five recipients");
        assert.equal(maxInFlight <= 2, true, `at most 2 in flight, saw ${maxInFlight}`);
        const indexes = seen.filter((ta) => ta.messageId === env.id).flatMap((ta) =>
          ta.recipients.map((r) => r.index)
        );
        assert.deepEqual(indexes.sort(), [0, 1, 2, 3, 4]);
      },
    );

    await t.step("a deferred recipient waits for its retry time, then is tried again", async () => {
      answer = "temp";
      const env = await submit(1);
      await until(() => store.recipientsOf(env.id)[0]?.tries === 1, "the first attempt");
      const row = store.recipientsOf(env.id)[0];
      assert.equal(row.state, WAITING);
      assert.equal(row.nextTry, T0 + 10 * MIN);
      scheduler.refill();
      assert.equal(seen.filter((ta) => ta.messageId === env.id).length, 1, "not due yet");

      now = T0 + 10 * MIN;
      scheduler.refill();
      await until(() => store.recipientsOf(env.id)[0]?.tries === 2, "the second attempt");
      assert.equal(store.recipientsOf(env.id)[0].nextTry, now + 20 * MIN, "the delay doubled");

      answer = "sent";
      now += 20 * MIN;
      scheduler.refill();
      await until(() => !store.hasMessage(env.id), "delivery and removal");
    });

    await t.step("a temporary failure after queue_return_timeout fails the recipient for good", async () => {
      answer = "temp";
      now = T0 + 100 * MIN;
      const env = await submit(1);
      await until(() => store.recipientsOf(env.id)[0]?.tries === 1, "the first attempt");
      now += 61 * MIN;
      scheduler.refill();
      // The last try fails for good, the bounce is made, then the message is removed with its CDB file.
      await until(() => Deno.stat(env.cdbPath).then(() => false, () => true), "the CDB file to be removed");
      assert.equal(store.hasMessage(env.id), false);
      assert.equal(seen.filter((ta) => ta.messageId === env.id).length, 2);
      const bounce = seen.find((ta) => ta.sender === "" && ta.recipients[0].address === "s@sender.test");
      assert.ok(bounce, "a DSN to the sender was handed to smtpc");
    });
  } finally {
    notices.stop();
    scheduler.stop();
    await tick();
    commit.close();
    store.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("RouteCache", async (t) => {
  await t.step("keeps ok routes for 60 s, never failures, and shares concurrent lookups", async () => {
    let now = T0;
    const asked: string[] = [];
    const answers: Record<string, RouteResult> = {
      "ok.test": { status: "ok", protocol: "esmtp", port: 25, hosts: [{ name: "a", address: "192.0.2.1" }] },
      "temp.test": { status: "temp", text: "DNS timeout" },
    };
    const cache = new RouteCache((d) => {
      asked.push(d);
      return Promise.resolve(answers[d]);
    }, { now: () => now });
    await Promise.all([cache.get("ok.test"), cache.get("ok.test")]);
    await cache.get("ok.test");
    now += 59_000;
    await cache.get("ok.test");
    assert.deepEqual(asked, ["ok.test"]);
    now += 2_000;
    await cache.get("ok.test");
    await cache.get("temp.test");
    await cache.get("temp.test");
    assert.deepEqual(asked, ["ok.test", "ok.test", "temp.test", "temp.test"]);
  });

  await t.step("stays within its size bound", async () => {
    const route: RouteResult = { status: "ok", protocol: "esmtp", port: 25, hosts: [] };
    const cache = new RouteCache(() => Promise.resolve(route), { maxEntries: 3 });
    for (let i = 0; i < 10; i++) await cache.get(`d${i}.test`);
    assert.equal(cache.size, 3);
  });
});

Deno.test("Destinations limits transactions per destination and in total", async () => {
  const slots = new Destinations({ windows: 2, maxTotal: 3 });
  const release: (() => void)[] = [];
  const running = new Map<string, number>();
  let peak = 0;
  const task = (dest: string) => () =>
    new Promise<TaskOutcome>((resolve) => {
      running.set(dest, (running.get(dest) ?? 0) + 1);
      peak = Math.max(peak, running.get(dest)!);
      release.push(() => {
        running.set(dest, running.get(dest)! - 1);
        resolve("connected");
      });
    });
  for (let i = 0; i < 4; i++) slots.enqueue("192.0.2.1", task("192.0.2.1"));
  for (let i = 0; i < 2; i++) slots.enqueue("192.0.2.2", task("192.0.2.2"));
  assert.deepEqual([slots.active, slots.waiting], [3, 3], "2 to the first destination, 1 to the second");
  while (release.length > 0) {
    release.shift()!();
    await tick();
    await tick();
    assert.ok(slots.active <= 3);
  }
  assert.deepEqual([slots.active, slots.waiting, peak], [0, 0, 2]);
});

Deno.test("ConnControl", async (t) => {
  const cases: {
    label: string;
    limits: { max_connections: number; max_connection_rate: number };
    steps: [at: number, op: "open" | "close", accept?: boolean][];
  }[] = [
    {
      label: "concurrent sessions are capped; a closed one frees a slot",
      limits: { max_connections: 2, max_connection_rate: 0 },
      steps: [[0, "open", true], [0, "open", true], [0, "open", false], [0, "close"], [0, "open", true]],
    },
    {
      label: "the rate counts connections in the last 60 s, refused ones too",
      limits: { max_connections: 0, max_connection_rate: 2 },
      steps: [
        [0, "open", true],
        [1_000, "open", true],
        [2_000, "open", false],
        [60_500, "open", false],
        [62_001, "open", true],
      ],
    },
    {
      label: "0 means unlimited",
      limits: { max_connections: 0, max_connection_rate: 0 },
      steps: Array.from({ length: 50 }, (_, i) => [i, "open", true] as [number, "open", boolean]),
    },
  ];
  for (const c of cases) {
    await t.step(c.label, () => {
      let now = T0;
      const conn = new ConnControl(c.limits, () => now);
      for (const [at, op, accept] of c.steps) {
        now = T0 + at;
        if (op === "close") conn.close("192.0.2.5");
        else assert.equal(conn.open("192.0.2.5").accept, accept, `${op} at ${at}`);
      }
    });
  }

  await t.step("refuses with 421 4.7.0", () => {
    const conn = new ConnControl({ max_connections: 1, max_connection_rate: 0 });
    conn.open("192.0.2.5");
    assert.deepEqual(conn.open("192.0.2.5").reply, {
      code: 421,
      status: "4.7.0",
      text: "Too many connections from your host",
    });
  });

  await t.step("forgets clients with no session and no recent connection", () => {
    let now = T0;
    const conn = new ConnControl({ max_connections: 10, max_connection_rate: 100 }, () => now);
    for (let i = 0; i < 1000; i++) {
      conn.open(`10.0.${i >> 8}.${i & 255}`);
      conn.close(`10.0.${i >> 8}.${i & 255}`);
    }
    assert.equal(conn.tracked, 1000, "recent connections are remembered for the rate");
    now += 61_000;
    conn.open("192.0.2.200");
    assert.equal(conn.tracked, 1);
  });
});
