// Slow start per destination IP and the outgoing connection cache: the OCC's window and down marks with
// an injected clock, the qmgr_conf map's lookups, the window as qmgr really applies it (deliveries held
// open by a test smtpc), a host that is down getting no new connection attempt, and a whole MTA against a
// sink that counts its concurrent connections.

import assert from "node:assert/strict";
import { join } from "node:path";
import { checkEntry, lookupKeys, QmgrConf } from "../components/qmgr/conf_map.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { type DestState, Occ } from "../components/qmgr/occ.ts";
import { defaultConfig } from "../config/defaults.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

const quiet = { out: () => {}, err: () => {} };
const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

Deno.test("the OCC's window starts at oci, grows by one per success up to ocm, halves on a failure", () => {
  let now = 1_000_000;
  const limits = { oci: 2, ocm: 5, octo: 60_000 };
  const occ = new Occ({ get: (tag) => limits[tag as keyof typeof limits] ?? 0 }, {
    maxEntries: 10,
    now: () => now,
    downMin: 1_000,
  });
  const dest = "192.0.2.1:25";
  const steps: [string, () => void, number, DestState][] = [
    ["a new destination starts at oci", () => {}, 2, "up"],
    ["a success adds one", () => occ.success(dest), 3, "up"],
    ["two more reach ocm", () => (occ.success(dest), occ.success(dest)), 5, "up"],
    ["ocm is the ceiling", () => occ.success(dest), 5, "up"],
    [
      "a failed connection marks it down (one connection at a time afterwards)",
      () => occ.failure(dest),
      1,
      "down",
    ],
    ["the first down interval is short", () => (now += 1_001), 1, "probe"],
    ["a failed probe marks it down for twice as long", () => occ.failure(dest, "refused"), 1, "down"],
    ["still down after the first interval", () => (now += 1_001), 1, "down"],
    ["probed after the second", () => (now += 1_000), 1, "probe"],
    [
      "a probe that gets through clears the failures; the window was halved twice, grows again",
      () => occ.success(dest),
      2,
      "up",
    ],
  ];
  for (const [label, act, window, state] of steps) {
    act();
    assert.equal(occ.window(dest), window, label);
    assert.equal(occ.state(dest), state, label);
  }
  for (let i = 0; i < 12; i++) occ.failure(dest);
  const until = occ.downUntil(dest)!;
  assert.equal(until - now, 60_000, "the interval grows up to octo");
  assert.equal(occ.retryAt(dest), undefined, "a long outage: recipients keep their own back-off");
  occ.clearDown();
  assert.equal(occ.downUntil(dest), undefined, "flush forgets the down marks");
  assert.equal(occ.state(dest), "probe", "a probe goes first after a flush");
  occ.success(dest);
  occ.failure(dest);
  assert.equal(occ.retryAt(dest), now + 1_000, "a short outage: recipients come back for the probe");
  assert.equal(occ.state("192.0.2.1:26"), "up", "another port of the same address is another destination");
});

Deno.test("the OCC forgets the least recently used destination beyond OCC_max_entries", () => {
  const occ = new Occ({ get: (tag) => tag === "oci" ? 1 : 10 }, { maxEntries: 2 });
  occ.success("192.0.2.1:25");
  occ.success("192.0.2.2:25");
  occ.window("192.0.2.1:25"); // used again: .2 is now the oldest
  occ.window("192.0.2.3:25");
  assert.equal(occ.size, 2);
  assert.deepEqual(occ.view().map((e) => [e.address, e.window]), [["192.0.2.1:25", 2], ["192.0.2.3:25", 1]]);
});

Deno.test("the qmgr_conf map: the most specific entry wins, then the tag's default, then the option", async (t) => {
  await t.step("lookup keys go from the address through its nets to the bare tag", () => {
    assert.deepEqual(lookupKeys("icm", "10.1.2.3"), [
      "icm:10.1.2.3",
      "icm:10.1.2",
      "icm:10.1",
      "icm:10",
      "icm:",
    ]);
    assert.deepEqual(lookupKeys("oci", "2001:db8::1"), [
      "oci:2001:db8::1",
      "oci:2001:db8:",
      "oci:2001:db8",
      "oci:2001",
      "oci:",
    ]);
  });
  const dir = await Deno.makeTempDir({ prefix: "qmgr_conf_" });
  try {
    const file = join(dir, "qmgr_conf");
    await Deno.writeTextFile(
      file,
      "# limits\nicm:10.1.2.3 1\nicm:10.1 4\nicm: 8\nocm:192.0.2.25 3\nocto:192.0.2 1h 30m\noci:192.0.2.25 0\n",
    );
    const q = structuredClone(defaultConfig()).qmgr;
    const conf = await QmgrConf.load({ name: "qmgr_conf", type: "hash", file }, q);
    const cases: [string, Parameters<QmgrConf["get"]>, number][] = [
      ["an address entry", ["icm", "10.1.2.3"], 1],
      ["a net entry", ["icm", "10.1.9.9"], 4],
      ["the map's default for the tag", ["icm", "172.16.0.1"], 8],
      ["the option when the map has nothing for the tag", ["icr", "10.1.2.3"], q.smtps.max_connection_rate],
      ["a time in octo", ["octo", "192.0.2.25"], 90 * 60_000],
      ["octo's binary default is retry_min_delay", ["octo", "198.51.100.1"], q.retry_min_delay],
      ["an ocm entry", ["ocm", "192.0.2.25"], 3],
      ["oci 0 stays 0 in the map (the OCC starts at 1 anyway)", ["oci", "192.0.2.25"], 0],
    ];
    for (const [label, args, want] of cases) await t.step(label, () => assert.equal(conf.get(...args), want));
    conf.close();
    await t.step("a bad entry stops the load, naming it", async () => {
      await Deno.writeTextFile(file, "icm:10.1 many\n");
      await assert.rejects(
        QmgrConf.load({ name: "qmgr_conf", type: "hash", file }, q),
        /value "many" of icm:10\.1 is bad, expected a number/,
      );
      assert.match(checkEntry("xyz:1.2.3.4", "1") ?? "", /no known tag/);
      assert.match(checkEntry("icr:mail.example", "1") ?? "", /names no IP address or net/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("qmgr runs at most the window's transactions towards a destination, and the window grows", async () => {
  const q = await startInProcessQmgr({
    adjust: (c) => {
      c.qmgr.smtpc.initial_connections = 2;
      c.qmgr.smtpc.max_connections = 4;
    },
  });
  const held: (() => void)[] = [];
  let inFlight = 0;
  let peak = 0;
  q.script.gate = () => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    return new Promise((resolve) => held.push(() => (inFlight--, resolve())));
  };
  try {
    for (let i = 0; i < 12; i++) await q.submit([`r${i}@dest.test`]);
    const expect = async (n: number, label: string) => {
      await until(() => inFlight === n, label);
      await tick();
      assert.equal(inFlight, n, label);
    };
    await expect(2, "the first two run: initial_connections");
    held.shift()!();
    await expect(3, "one success: the window is 3");
    held.shift()!();
    await expect(4, "another: 4");
    held.shift()!();
    await expect(4, "max_connections holds it at 4");
    while (q.delivered.length < 12 || held.length > 0) {
      held.shift()?.();
      await tick(5);
    }
    assert.equal(peak, 4);
  } finally {
    for (const release of held) release();
    await q.stop();
  }
});

Deno.test("a host that is down gets no new connection attempt until its OCC entry expires or a flush", async () => {
  const q = await startInProcessQmgr({
    adjust: (c) => c.qmgr.retry_min_delay = 3_600_000,
    downMin: 3_600_000,
  });
  const socket = controlSocketPath(q.config);
  const show = async (id: string) => {
    let out = "";
    assert.equal(
      await qmgrctl(["--socket", socket, "--json", "show", id], { out: (t) => out = t, err: () => {} }),
      0,
    );
    return JSON.parse(out) as { recipients: { lastReply?: string; tries: number }[] };
  };
  try {
    q.script.relay = () => undefined; // no connection: every recipient temp
    q.script.answer = () => "temp";
    const first = await q.submit(["a@dest.test"]);
    await until(() => q.delivered.length === 1, "the first attempt");
    await until(async () => (await show(first.id)).recipients[0].tries === 1, "the deferral");
    const second = await q.submit(["b@dest.test"]);
    await until(
      async () => (await show(second.id)).recipients[0].tries === 1,
      "the second message's deferral",
    );
    assert.equal(q.delivered.length, 1, "no connection attempt for the second message");
    assert.match(
      (await show(second.id)).recipients[0].lastReply ?? "",
      /host mx\.dest\.test\[192\.0\.2\.25\]:25 is down/,
    );

    q.script.relay = undefined; // the host is back
    q.script.answer = undefined;
    assert.equal(await qmgrctl(["--socket", socket, "flush"], quiet), 0);
    await until(() => q.delivered.length === 3, "both messages tried after the flush");
  } finally {
    await q.stop();
  }
});

Deno.test("a whole MTA never opens more than max_connections to a sink, and grows past initial_connections", async () => {
  const port = freePort();
  const mta = await startTestMta({
    mailertable: `sink.test\t${port}^esmtp:[127.0.0.1]\n`,
    adjust: (c) => {
      c.qmgr.smtpc.initial_connections = 1;
      c.qmgr.smtpc.max_connections = 3;
      c.qmgr.retry_min_delay = 3_600_000;
      c.qmgr.retry_max_delay = 3_600_000;
    },
  });
  let sink: Awaited<ReturnType<typeof startSink>> | undefined;
  try {
    // Nothing listens yet: the messages wait in the queue (the host is marked down after the first try).
    const n = 30;
    for (let i = 0; i < n; i++) {
      const r = await smtpSend(mta.port, {
        from: "a@src.test",
        to: [`r${i}@sink.test`],
        body: `Subject: ${i}\r\n\r\nx\r\n`,
      });
      assert.match(r, /^250/);
    }
    sink = await startSink({ port, keepMessages: false });
    // All due at once: slow start alone decides how many connections open.
    const socket = controlSocketPath(mta.config);
    assert.equal(await qmgrctl(["--socket", socket, "flush"], quiet), 0);
    await sink.waitFor(n, 30_000);
    assert.ok(sink.maxConcurrent <= 3, `at most 3 connections at once, saw ${sink.maxConcurrent}`);
    assert.ok(sink.maxConcurrent >= 2, `the window grew past 1, saw ${sink.maxConcurrent}`);
  } finally {
    await mta.stop();
    await sink?.close();
  }
});
