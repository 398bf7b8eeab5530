// Destinations are address:port (issue 13): each port of an address, each address of each MX host of a
// route, SMTP and LMTP alike, has its own slow-start window and down mark. A dead port never holds up
// another port of the same address, a dead first MX never holds up the second, and a destination that
// was down is probed with one connection before its mail flows again. First against qmgr in this
// process with a scripted smtpc (exact transactions), then a whole MTA against real sinks.

import assert from "node:assert/strict";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import type { DestinationRow } from "../scripts/qmgrctl_format.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

const HOUR = 3_600_000;
const tick = (ms = 50) => new Promise((r) => setTimeout(r, ms));

async function destinations(socket: string): Promise<Map<string, DestinationRow>> {
  let out = "";
  const code = await qmgrctl(["--socket", socket, "--json", "status"], {
    out: (t) => out = t,
    err: () => {},
  });
  assert.equal(code, 0);
  const rows = (JSON.parse(out) as { occ: { destinations: DestinationRow[] } }).occ.destinations;
  return new Map(rows.map((r) => [r.address, r]));
}

async function firstRecipient(socket: string, id: string): Promise<{ lastReply?: string; tries: number }> {
  let out = "";
  assert.equal(
    await qmgrctl(["--socket", socket, "--json", "show", id], { out: (t) => out = t, err: () => {} }),
    0,
  );
  return (JSON.parse(out) as { recipients: { lastReply?: string; tries: number }[] }).recipients[0];
}

Deno.test("qmgr tracks destinations per address and port", async (t) => {
  await t.step(
    "a dead port next to a live one on the same address: the live one is delivered at once",
    async () => {
      const q = await startInProcessQmgr({ adjust: (c) => c.qmgr.retry_min_delay = HOUR });
      const host = { name: "localhost", address: "127.0.0.1" };
      q.routes["dead.test"] = { status: "ok", protocol: "esmtp", port: 2526, hosts: [host] };
      q.routes["live.test"] = { status: "ok", protocol: "esmtp", port: 2527, hosts: [host] };
      q.routes["lda.test"] = { status: "ok", protocol: "lmtp", port: 2424, hosts: [host] };
      q.script.relay = (ta) => ta.route.port === 2526 ? undefined : { ...host, port: ta.route.port };
      q.script.answer = (ta) => ta.route.port === 2526 ? "temp" : "sent";
      try {
        await q.submit(["a@dead.test"]);
        await until(() => q.delivered.length === 1, "the attempt on the dead port");
        const socket = controlSocketPath(q.config);
        await until(
          async () => (await destinations(socket)).get("127.0.0.1:2526")?.state === "down",
          "the mark",
        );
        await q.submit(["b@live.test"]);
        await q.submit(["c@lda.test"]);
        await until(() => q.delivered.length === 3, "the live SMTP port and the LMTP port tried at once");
        // The two live ones in either order: commits are immediate, so b's delivery and c's commit race.
        const ports = q.delivered.map((d) => d.ta.route.port);
        assert.deepEqual([ports[0], ...ports.slice(1).sort()], [2526, 2424, 2527]);
        const dests = await destinations(socket);
        assert.equal(dests.get("127.0.0.1:2526")?.state, "down");
        assert.equal(dests.get("127.0.0.1:2526")?.failures, 1);
        assert.equal(dests.get("127.0.0.1:2527")?.state, "up");
        assert.equal(dests.get("127.0.0.1:2424")?.state, "up");
        let text = "";
        assert.equal(
          await qmgrctl(["--socket", socket, "status"], { out: (s) => text = s, err: () => {} }),
          0,
        );
        assert.match(text, /127\.0\.0\.1:2526 +down +1\/\d+ +0 +1 /, text);
        assert.doesNotMatch(
          text,
          /127\.0\.0\.1:2527/,
          "an idle destination that is up is left out of the text",
        );
      } finally {
        await q.stop();
      }
    },
  );

  await t.step(
    "a dead first MX with a live second: the second takes the mail, the first is skipped",
    async () => {
      const q = await startInProcessQmgr({
        adjust: (c) => {
          c.qmgr.retry_min_delay = HOUR;
          c.qmgr.smtpc.initial_connections = 2; // not the default (10), so the growth shows
        },
        downMin: HOUR,
      });
      const first = { name: "mx1.two.test", address: "192.0.2.31" };
      const second = { name: "mx2.two.test", address: "192.0.2.32" };
      q.routes["two.test"] = { status: "ok", protocol: "esmtp", port: 25, hosts: [first, second] };
      q.script.failed = (ta) => ta.route.hosts.filter((h) => h.address === first.address);
      q.script.relay = () => ({ ...second, port: 25 });
      try {
        await q.submit(["a@two.test"]);
        await until(() => q.delivered.length === 1, "the first message");
        await q.submit(["b@two.test"]);
        await until(() => q.delivered.length === 2, "the second message");
        assert.deepEqual(q.delivered[0].ta.route.hosts, [first, second], "both hosts offered at first");
        assert.deepEqual(q.delivered[1].ta.route.hosts, [second], "the dead first MX is not offered again");
        const dests = await destinations(controlSocketPath(q.config));
        assert.equal(dests.get("192.0.2.31:25")?.state, "down");
        assert.equal(dests.get("192.0.2.31:25")?.reason, "Connection refused");
        assert.equal(dests.get("192.0.2.32:25")?.state, "up");
        assert.equal(dests.get("192.0.2.32:25")?.window, 4, "two successes: oci 2 + 2");
      } finally {
        await q.stop();
      }
    },
  );

  await t.step("after a down mark one probe goes first; its success lets the waiting mail flow", async () => {
    const q = await startInProcessQmgr({
      adjust: (c) => {
        c.qmgr.retry_min_delay = HOUR;
        c.qmgr.smtpc.initial_connections = 1;
      },
      downMin: 300,
    });
    let failNext = true;
    q.script.relay = () => failNext ? undefined : { name: "mx.dest.test", address: "192.0.2.25", port: 25 };
    q.script.answer = () => failNext ? "temp" : "sent";
    const held: (() => void)[] = [];
    q.script.gate = () => new Promise((resolve) => held.push(resolve));
    try {
      await q.submit(["a@dest.test"]);
      await until(() => held.length === 1, "the first attempt, held open");
      const waiting = [await q.submit(["b@dest.test"]), await q.submit(["c@dest.test"])];
      await tick();
      assert.equal(q.delivered.length, 1, "window 1: the others wait behind the first");
      held.shift()!(); // the connection fails: the destination is down
      const socket = controlSocketPath(q.config);
      await until(async () => (await firstRecipient(socket, waiting[1].id)).tries === 1, "the deferrals");
      assert.equal(q.delivered.length, 1, "no connection attempt while the destination is down");
      for (const env of waiting) {
        const r = await firstRecipient(socket, env.id);
        assert.match(r.lastReply ?? "", /host mx\.dest\.test\[192\.0\.2\.25\]:25 is down/);
      }
      // Deferred until the probe (300 ms), not for retry_min_delay (an hour); the first message too.
      failNext = false;
      await until(() => held.length === 1, "the probe", 10_000);
      await tick(150);
      assert.equal(q.delivered.length, 2, "one probe, the other message waits for its result");
      held.shift()!();
      // The first message came back for the probe too: the other two go at once (window 1 + 1).
      await until(() => held.length === 2, "the rest after the probe got through");
      assert.equal(q.delivered.length, 4);
      for (const go of held.splice(0)) go();
    } finally {
      for (const go of held) go();
      await q.stop();
    }
  });
});

Deno.test("a whole MTA: a dead port and a dead first MX hold up no other destination, SMTP or LMTP", async () => {
  const [dead, live, lmtp] = [freePort(), freePort(), freePort()];
  const smtpSink = await startSink({ port: live });
  const lmtpSink = await startSink({ port: lmtp, lmtp: true });
  const mta = await startTestMta({
    mailertable: `dead.test\t${dead}^[127.0.0.1]\n` +
      `live.test\t${live}^[127.0.0.1]\n` +
      `lda.test\t${lmtp}^lmtp:[127.0.0.1]\n` +
      `two.test\t${live}^[127.0.0.2],[127.0.0.1]\n`,
    adjust: (c) => {
      c.qmgr.retry_min_delay = HOUR;
      c.qmgr.retry_max_delay = HOUR;
    },
  });
  try {
    const send = async (to: string) =>
      assert.match(await smtpSend(mta.port, { from: "s@src.test", to: [to], body: "\r\nx\r\n" }), /^250 /);
    const socket = controlSocketPath(mta.config);
    await send("a@dead.test");
    await until(
      async () => (await destinations(socket)).get(`127.0.0.1:${dead}`)?.failures === 1,
      "the mark",
    );
    // Before any idle link to 127.0.0.1:live exists (the connection cache would serve two.test with it).
    await send("d@two.test");
    await smtpSink.waitFor(1, 20_000);
    await send("b@live.test");
    await send("c@lda.test");
    // Deferred mail would wait an hour: arriving at all means it went at once.
    await smtpSink.waitFor(2, 20_000);
    await lmtpSink.waitFor(1, 20_000);
    assert.deepEqual(smtpSink.messages.map((m) => m.recipients[0]).sort(), ["b@live.test", "d@two.test"]);
    assert.deepEqual(lmtpSink.messages[0].recipients, ["c@lda.test"]);
    const dests = await destinations(socket);
    const mx1 = dests.get(`127.0.0.2:${live}`);
    assert.ok(
      mx1 !== undefined && mx1.failures === 1,
      `the dead first MX is marked: ${JSON.stringify([...dests])}`,
    );
    assert.equal(dests.get(`127.0.0.1:${live}`)?.state, "up");
    assert.equal(dests.get(`127.0.0.1:${lmtp}`)?.state, "up");
  } finally {
    await mta.stop();
    await smtpSink.close();
    await lmtpSink.close();
  }
});
