// The parts of several smtps workers that need no running MTA: how many workers the configuration asks
// for (config/processes.ts: processes, min_processes, max_processes, the default per core), which
// sections and sockets each serves, the errors for contradicting options, and the Endpoint's peers per
// worker (protocol/endpoint.ts: each smtps worker its own port, answers on the port a request came from,
// broadcasts to all, a restart of one failing only the requests to that one).

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config/mod.ts";
import {
  defaultProcesses,
  sectionProcesses,
  servesSection,
  servesSocket,
  smtpsInstances,
} from "../config/processes.ts";
import { Endpoint } from "../components/protocol/endpoint.ts";
import type { Message } from "../components/protocol/messages.ts";
import { ConnControl } from "../components/qmgr/conn_control.ts";

const parse = (text: string) => parseConfig(text, "test.conf");
const listen = (port: number) => `listen_socket { type = inet; address = 127.0.0.1; port = ${port}; }`;

Deno.test("smtps workers: processes, else one per two cores up to 4, within min_processes and max_processes", async (t) => {
  const cases: [string, string, number, number][] = [
    ["processes as written", `processes = 3;`, 2, 3],
    ["unset: one per two cores", ``, 6, 3],
    ["unset on two cores", ``, 2, 1],
    ["unset on one core", ``, 1, 1],
    ["unset on many cores: at most 4", ``, 64, 4],
    ["unset, raised to min_processes", `min_processes = 3;`, 2, 3],
    ["unset, lowered to max_processes", `max_processes = 1;`, 8, 1],
    ["processes inside the bounds", `processes = 2; min_processes = 1; max_processes = 4;`, 8, 2],
  ];
  for (const [label, options, cores, expected] of cases) {
    await t.step(label, () => {
      const c = parse(`smtps MTA { ${listen(2525)} ${options} }`);
      assert.equal(sectionProcesses(c.smtps[0], cores), expected);
      assert.equal(smtpsInstances(c, cores), expected);
    });
  }
  assert.equal(defaultProcesses(0), 1, "a runtime that reports no cores gets one worker");
});

Deno.test("smtps workers: the most any section asks for; worker k serves the sections with k or more", () => {
  const c = parse(`smtps MTA { ${listen(2525)} processes = 3; }
smtps MSA { ${listen(2587)} listen_socket { type = unix; path = "/tmp/smx-msa.sock"; } processes = 1; }`);
  assert.equal(smtpsInstances(c, 2), 3);
  const [mta, msa] = c.smtps;
  assert.deepEqual([1, 2, 3].map((k) => servesSection(k, mta, 2)), [true, true, true]);
  assert.deepEqual([1, 2, 3].map((k) => servesSection(k, msa, 2)), [true, false, false]);
  const unix = msa.listen_socket[1];
  assert.deepEqual([1, 2].map((k) => servesSocket(k, unix)), [true, false], "a unix socket: worker 1 only");
  assert.deepEqual([1, 2].map((k) => servesSocket(k, mta.listen_socket[0])), [true, true]);
});

Deno.test("smtps process options that contradict each other are configuration errors naming the place", async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      "processes above max",
      `processes = 5; max_processes = 4;`,
      /processes = 5 of smtps MTA is above its max_processes = 4/,
    ],
    [
      "processes below min",
      `processes = 1; min_processes = 2;`,
      /processes = 1 of smtps MTA is below its min_processes = 2/,
    ],
    [
      "min above max",
      `min_processes = 3; max_processes = 2;`,
      /min_processes = 3 of smtps MTA is above its max_processes = 2/,
    ],
  ];
  for (const [label, options, message] of cases) {
    await t.step(label, () => {
      assert.throws(() => parse(`smtps MTA {\n  ${options}\n}`), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^test\.conf:2:3: /);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

Deno.test("smtps process options are notes, not warnings; other components' stay warnings", () => {
  const c = parse(
    `smtps MTA { ${listen(2525)} processes = 2; max_processes = 4; } smtpc { max_processes = 4; }`,
  );
  const notes = (c.warnings ?? []).filter((w) => /processes/.test(w.message));
  assert.deepEqual(
    notes.map((w) => w.level),
    ["note", "note", "warning"],
    notes.map((w) => w.message).join("\n"),
  );
  assert.match(notes[2].message, /max_processes = 4 in smtpc has no effect yet: smx starts one smtpc worker/);
});

/** Two endpoints wired by a fresh channel, as the MCP wires two workers. */
function wire(a: Endpoint, b: Endpoint, aInstance?: number, bInstance?: number): void {
  const ch = new MessageChannel();
  a.setPeer(b.name as "smtps" | "qmgr", ch.port1, bInstance);
  b.setPeer(a.name as "smtps" | "qmgr", ch.port2, aInstance);
}

Deno.test("Endpoint: each smtps worker is its own peer; answers go back on the port each request came from", async () => {
  const qmgr = new Endpoint("qmgr");
  const workers = [1, 2].map(() => new Endpoint("smtps"));
  const seen: string[] = [];
  const heard: string[][] = [[], []];
  qmgr.handle((from, body, peer) => {
    seen.push(`${from} ${peer} ${body.type}`);
    if (body.type === "smtps.conn_open") {
      return { type: "qmgr.conn_verdict", accept: body.ip === "192.0.2.1" };
    }
    return undefined;
  });
  workers.forEach((w, i) =>
    w.handle((_from, body) => {
      heard[i].push(body.type);
    })
  );
  const peersSeen: string[] = [];
  qmgr.onPeer((peer, name) => peersSeen.push(`${name}:${peer}`));
  try {
    workers.forEach((w, i) => wire(qmgr, w, undefined, i + 1));
    assert.deepEqual(peersSeen, ["smtps:smtps@1", "smtps:smtps@2"]);
    assert.ok(qmgr.hasPeer("smtps") && qmgr.hasPeer("smtps@2"));
    const [a, b] = await Promise.all([
      workers[0].request("qmgr", { type: "smtps.conn_open", ip: "192.0.2.1" }),
      workers[1].request("qmgr", { type: "smtps.conn_open", ip: "192.0.2.2" }),
    ]);
    assert.deepEqual([a, b].map((m) => (m as Extract<Message, { type: "qmgr.conn_verdict" }>).accept), [
      true,
      false,
    ]);
    assert.deepEqual(seen.sort(), ["smtps smtps@1 smtps.conn_open", "smtps smtps@2 smtps.conn_open"]);

    qmgr.broadcast("smtps", { type: "qmgr.disk_state", low: true, free: 1 });
    const deadline = Date.now() + 5_000;
    while (heard.some((h) => h.length === 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.deepEqual(heard, [["qmgr.disk_state"], ["qmgr.disk_state"]], "a broadcast reaches every worker");

    // smtps@2 restarts: a request waiting on its old port fails; one to smtps@1 is untouched.
    workers[1].handle(() => new Promise(() => {})); // never answers
    qmgr.handle(() => new Promise(() => {}));
    const toOne = workers[0].request("qmgr", { type: "smtps.conn_open", ip: "192.0.2.3" }, 200);
    const pending = qmgr.request("smtps@2", { type: "qmgr.disk_state", low: false, free: 2 }, 60_000);
    workers.push(new Endpoint("smtps"));
    wire(qmgr, workers[2], undefined, 2);
    const failed = await pending;
    assert.equal(failed.type, "rpc.failure");
    assert.match((failed as Extract<Message, { type: "rpc.failure" }>).reason, /smtps@2 restarted/);
    assert.match(((await toOne) as Extract<Message, { type: "rpc.failure" }>).reason, /did not answer/);
    assert.deepEqual(peersSeen.at(-1), "smtps:smtps@2");
  } finally {
    qmgr.close();
    for (const w of workers) w.close();
  }
});

Deno.test("ConnControl counts sessions per smtps worker and forgets a restarted worker's", () => {
  const conn = new ConnControl({ max_connections: 2, max_connection_rate: 0 });
  assert.equal(conn.open("192.0.2.1", "smtps@1").accept, true);
  assert.equal(conn.open("192.0.2.1", "smtps@2").accept, true);
  assert.equal(conn.open("192.0.2.1", "smtps@1").accept, false, "the limit spans both workers");
  assert.equal(conn.forgetOwner("smtps@1"), 1);
  conn.close("192.0.2.1", "smtps@1"); // the dead worker's close, late: not counted twice
  assert.equal(conn.open("192.0.2.1", "smtps@1").accept, true, "smtps@1's old session is forgotten");
  assert.equal(conn.open("192.0.2.1", "smtps@1").accept, false, "smtps@2's session still counts");
  conn.close("192.0.2.1", "smtps@2");
  conn.close("192.0.2.1", "smtps@1");
  assert.equal(conn.tracked, 0);
});
