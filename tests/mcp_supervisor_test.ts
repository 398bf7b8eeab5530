// The supervisor with fake workers (tests/helpers/fake_worker.ts): starting and wiring, restarts after an
// error or after silence, generations, rewiring of a restarted worker, crash-loop give-up, fatal frames,
// and the shutdown order; restart_dependencies, exit codes in fatal frames, and reloads. The fake smtps
// answers each TCP connection with what the fake smar told it, so "smtps can still reach smar" is checked
// over a real socket.

import assert from "node:assert/strict";
import { defaultConfig } from "../config/defaults.ts";
import { Supervisor, type SupervisorEvent } from "../components/mcp/supervisor.ts";
import type { PermissionSets } from "../components/mcp/permissions.ts";
import type { RestartLimits } from "../components/mcp/restart_policy.ts";
import type { ComponentName } from "../components/protocol/messages.ts";
import { FAKE_WORKER_URL, type FakeConfig, type FakePlan } from "./helpers/fake_worker.ts";
import { freePort, NO_PERMISSIONS } from "./helpers/harness.ts";

interface Fake {
  sup: Supervisor;
  port: number;
  events: SupervisorEvent[];
}

function fakeSupervisor(
  plan: FakePlan,
  limits: Partial<RestartLimits> = {},
  adjust: (c: FakeConfig) => void = () => {},
  onReloadRequest?: () => Promise<{ ok: boolean; reason?: string }>,
): Fake {
  const port = freePort();
  const config: FakeConfig = { ...structuredClone(defaultConfig()), fake: plan };
  adjust(config);
  config.mcp.heartbeat_interval = 200;
  config.smtps[0].listen_socket = [{ type: "inet", address: "127.0.0.1", port }];
  config.smtps[0].processes = 1; // the fake smtps listens without SO_REUSEPORT: one worker
  const permissions: PermissionSets = {
    qmgr: NO_PERMISSIONS,
    smar: NO_PERMISSIONS,
    smtpc: NO_PERMISSIONS,
    smtps: { ...NO_PERMISSIONS, net: [`127.0.0.1:${port}`] },
  };
  const sup = new Supervisor(config, {
    permissions,
    workerUrl: () => FAKE_WORKER_URL,
    limits: { minDelay: 1, maxDelay: 20, ...limits },
    stopTimeout: 2000,
    // Workers are type-checked on load under `deno test`: start-up is slow, slower still on a loaded
    // machine or under --coverage (15 s was not always enough); the supervisor's own default.
    startupGrace: 30_000,
    onReloadRequest,
  });
  const events: SupervisorEvent[] = [];
  sup.onEvent((e) => events.push(e));
  return { sup, port, events };
}

/** Resolves with the first event (past or future) that matches, or rejects after `ms`. */
function eventually(f: Fake, match: (e: SupervisorEvent) => boolean, ms = 5000): Promise<SupervisorEvent> {
  const seen = f.events.find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching event within ${ms} ms; saw ${JSON.stringify(f.events)}`));
    }, ms);
    const off = f.sup.onEvent((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

const readyAs = (name: ComponentName, generation: number) => (e: SupervisorEvent) =>
  e.type === "ready" && e.name === name && e.generation === generation;

/** What the fake smtps answers on a new connection: the text of smar's verdict. */
async function ask(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  const buf = new Uint8Array(256);
  for (let n; (n = await conn.read(buf)) !== null;) text += new TextDecoder().decode(buf.subarray(0, n));
  conn.close();
  return text.trim();
}

Deno.test("Supervisor starts four wired workers and stops them smtps first, qmgr last", async () => {
  const f = fakeSupervisor({});
  try {
    await f.sup.start();
    for (const name of ["qmgr", "smar", "smtpc", "smtps"] as const) {
      assert.equal(f.sup.generation(name), 1);
      assert.equal(f.sup.isReady(name), true);
    }
    assert.equal(await ask(f.port), "smar#1");
  } finally {
    const end = await f.sup.stop();
    assert.deepEqual(end, { code: 0, reason: "stop requested" });
  }
  const stopped = f.events.filter((e) => e.type === "stopped");
  assert.deepEqual(stopped, [
    { type: "stopped", name: "smtps", clean: true },
    { type: "stopped", name: "smtpc", clean: true },
    { type: "stopped", name: "smar", clean: true },
    { type: "stopped", name: "qmgr", clean: true },
  ]);
});

Deno.test("Supervisor restarts a dead worker as a new generation that its peer can reach", async (t) => {
  const cases: { mode: "crash" | "exit" | "silent" | "stranger"; reason: RegExp }[] = [
    { mode: "crash", reason: /^error: .*crashed on purpose/ },
    { mode: "exit", reason: /^no heartbeat for \d+ ms$/ },
    { mode: "silent", reason: /^no heartbeat for \d+ ms$/ },
    { mode: "stranger", reason: /^no heartbeat for \d+ ms$/ },
  ];
  for (const c of cases) {
    await t.step(`after ${c.mode}`, async () => {
      const f = fakeSupervisor({ smar: { generations: { 1: c.mode } } });
      try {
        await f.sup.start();
        const died = await eventually(f, (e) => e.type === "died" && e.name === "smar");
        assert.equal(died.type === "died" && died.generation, 1);
        assert.match(died.type === "died" ? died.reason : "", c.reason);
        await eventually(f, readyAs("smar", 2));
        assert.equal(f.sup.restarts("smar"), 1);
        assert.equal(f.sup.generation("smar"), 2);
        assert.equal(await ask(f.port), "smar#2");
        assert.equal(f.sup.restarts("smtps"), 0);
      } finally {
        await f.sup.stop();
      }
    });
  }
});

Deno.test("Supervisor rewires a restarted smtps to the smar that kept running", async () => {
  const f = fakeSupervisor({ smtps: { generations: { 1: "crash" } } });
  try {
    await f.sup.start().catch(() => {}); // smtps#1 may crash before all are ready
    await eventually(f, readyAs("smtps", 2));
    assert.equal(await ask(f.port), "smar#1");
    assert.equal(f.sup.generation("smar"), 1);
  } finally {
    await f.sup.stop();
  }
});

Deno.test("Supervisor.kill() ends a worker at once and each restart is a new generation", async () => {
  const f = fakeSupervisor({});
  try {
    await f.sup.start();
    f.sup.kill("smar");
    await eventually(f, readyAs("smar", 2));
    f.sup.kill("smar");
    await eventually(f, readyAs("smar", 3));
    assert.equal(f.sup.restarts("smar"), 2);
    assert.equal(await ask(f.port), "smar#3");
    const died = f.events.filter((e) => e.type === "died").map((e) => e.type === "died" && e.reason);
    assert.deepEqual(died, ["killed", "killed"]);
  } finally {
    await f.sup.stop();
  }
});

Deno.test("Supervisor gives up on a worker that keeps failing and stops the MTA", async () => {
  const f = fakeSupervisor({ qmgr: { mode: "throw" } }, { maxRestarts: 3 });
  await assert.rejects(
    f.sup.start(),
    /^StartError: Start the MTA: qmgr keeps failing \(3 restarts within 60 s, last: error: /,
  );
  const end = await f.sup.done;
  assert.equal(end.code, 70);
  assert.equal(f.sup.restarts("qmgr"), 3);
  assert.equal(f.sup.generation("qmgr"), 4);
  assert.deepEqual(f.events.at(-1), { type: "exit", ...end });
});

Deno.test("Supervisor stops the MTA with exit code 78 on a fatal frame", async () => {
  const f = fakeSupervisor({ smar: { mode: "fatal" } });
  await assert.rejects(f.sup.start(), /Start the MTA: smar: the map file is broken on purpose/);
  assert.deepEqual(await f.sup.done, { code: 78, reason: "smar: the map file is broken on purpose" });
  assert.equal(f.sup.restarts("smar"), 0);
});

Deno.test("Supervisor restarts the restart_dependencies of a dead component with it", async () => {
  const f = fakeSupervisor({}, {}, (c) => (c.smar.restart_dependencies = ["smtps", "qmgr"]));
  try {
    await f.sup.start();
    f.sup.kill("smar");
    await Promise.all([
      eventually(f, readyAs("smar", 2)),
      eventually(f, readyAs("smtps", 2)),
      eventually(f, readyAs("qmgr", 2)),
    ]);
    const restarts = f.events.filter((e) => e.type === "restart").map((e) =>
      e.type === "restart" && `${e.name}#${e.generation} ${e.cause}`
    ).sort();
    assert.deepEqual(restarts, ["qmgr#2 dependency", "smar#2 crash", "smtps#2 dependency"]);
    assert.equal(f.sup.generation("smtpc"), 1);
    assert.equal(f.sup.restarts("smtps"), 1);
    assert.equal(await ask(f.port), "smar#2");
    // Only smar died: its dependents were stopped, not killed.
    assert.deepEqual(f.events.filter((e) => e.type === "died").map((e) => e.name), ["smar"]);
  } finally {
    await f.sup.stop();
  }
});

Deno.test("Supervisor restarts a worker whose fatal frame carries an exit code a restart can cure", async () => {
  const f = fakeSupervisor({ smar: { generations: { 1: "tempfail" } } });
  try {
    await f.sup.start();
    const died = await eventually(f, (e) => e.type === "died" && e.name === "smar");
    assert.equal(
      died.type === "died" && died.reason,
      "failed with exit code 75: the disk is full on purpose",
    );
    await eventually(f, readyAs("smar", 2));
    assert.equal(await ask(f.port), "smar#2");
  } finally {
    await f.sup.stop();
  }
});

Deno.test("Supervisor stops the MTA with exit code 77 when a worker starts without a permission it needs", async () => {
  const f = fakeSupervisor({ smar: { mode: "noperm" } });
  await assert.rejects(f.sup.start(), /Start the MTA: smar: .*\/etc\/hostname/);
  const end = await f.sup.done;
  assert.equal(end.code, 77);
  assert.equal(f.sup.restarts("smar"), 0);
});

Deno.test("Supervisor.reload() hands every worker the new configuration, and later generations start with it", async () => {
  const f = fakeSupervisor({});
  try {
    await f.sup.start();
    const next: FakeConfig = structuredClone(f.sup.config);
    next.smar.log_level = 12;
    next.fake = { smar: { mode: "crash" } };
    const answers = await f.sup.reload(next);
    assert.deepEqual([...answers].sort(), [["qmgr", undefined], ["smar", undefined], ["smtpc", undefined], [
      "smtps",
      undefined,
    ]]);
    assert.equal(f.sup.config.smar.log_level, 12);
    assert.equal(f.events.filter((e) => e.type === "reloaded" && !e.error).length, 4);
    f.sup.kill("smar"); // generation 2 reads the new plan: it crashes in turn
    const died = await eventually(f, (e) => e.type === "died" && e.generation === 2);
    assert.match(died.type === "died" ? died.reason : "", /smar#2 crashed on purpose/);
  } finally {
    await f.sup.stop();
  }
});

Deno.test("Supervisor runs a worker's reload request and hands it the outcome", async () => {
  let asked = 0;
  const f = fakeSupervisor({ qmgr: { generations: { 1: "reloader" } } }, {}, undefined, () => {
    asked++;
    return Promise.resolve({ ok: false, reason: "refused on purpose" });
  });
  try {
    await f.sup.start();
    const died = await eventually(f, (e) => e.type === "died" && e.name === "qmgr");
    assert.equal(asked, 1);
    assert.equal(
      died.type === "died" && died.reason,
      'failed with exit code 75: reload answered {"ok":false,"reason":"refused on purpose"}',
    );
  } finally {
    await f.sup.stop();
  }
});
