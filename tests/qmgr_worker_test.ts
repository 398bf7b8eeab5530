// qmgr as a real permission-scoped worker (read/write only in a temp directory), its peers played by the
// test: smtps commits, smar answers routes from a table, smtpc answers deliveries from a script.

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { defaultConfig } from "../config/defaults.ts";
import type { Config } from "../config/types.ts";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { Endpoint, Handler } from "../components/protocol/endpoint.ts";
import type {
  DeliveryTransaction,
  Envelope,
  Message,
  RecipientResult,
  RouteResult,
} from "../components/protocol/messages.ts";
import { serverReply } from "./helpers/qmgr_inprocess.ts";
import { commitEnvelope, connectionClosed, connectionOpened } from "../components/qmgr/client.ts";
import { DB_FILE } from "../components/qmgr/store.ts";
import { type Harness, startComponent } from "./helpers/harness.ts";

const MX1 = { name: "mx1.test", address: "192.0.2.10" };
const MX2 = { name: "mx2.test", address: "192.0.2.20" };

/** smar's side: a route table, with per-domain scripts for the first answers. */
class FakeSmar {
  lookups: string[] = [];
  scripted = new Map<string, RouteResult[]>();
  table: Record<string, RouteResult> = {
    "x.test": { status: "ok", protocol: "esmtp", port: 25, hosts: [MX1] },
    "y.test": { status: "ok", protocol: "esmtp", port: 25, hosts: [MX1] },
    "z.test": { status: "ok", protocol: "esmtp", port: 25, hosts: [MX2] },
    "nx.test": { status: "perm", text: "Host or domain name not found" },
  };
  handler: Handler = (_from, body) => {
    if (body.type !== "qmgr.route") return { type: "rpc.failure", reason: "not a route request" };
    this.lookups.push(body.domain);
    const result = this.scripted.get(body.domain)?.shift() ?? this.table[body.domain] ??
      { status: "perm", text: "no route in test table" };
    return { type: "smar.route", domain: body.domain, result };
  };
}

type Status = RecipientResult["status"] | "hold";
type Script = (ta: DeliveryTransaction, attempt: number, rcpt: { index: number; address: string }) => Status;

const REPLY: Record<RecipientResult["status"], string> = {
  sent: "250 2.0.0 Ok",
  temp: "451 4.7.1 Try again later",
  perm: "550 5.1.1 No such user",
};

/** smtpc's side: records every transaction and answers each recipient as the script says ("hold": later). */
class FakeSmtpc {
  tas: { ta: DeliveryTransaction; at: number }[] = [];
  script: Script = () => "sent";
  #held: (() => void)[] = [];
  handler: Handler = (_from, body) => {
    if (body.type !== "qmgr.deliver") return { type: "rpc.failure", reason: "not a delivery" };
    const ta = body.ta;
    const attempt = this.of(ta.messageId).length + 1;
    this.tas.push({ ta, at: Date.now() });
    const statuses = ta.recipients.map((r) => this.script(ta, attempt, r));
    const answer: Message = {
      type: "smtpc.result",
      taId: ta.taId,
      relay: { name: ta.route.hosts[0].name, address: ta.route.hosts[0].address, port: ta.route.port },
      results: ta.recipients.map((r, i) => {
        const status = statuses[i] === "hold" ? "temp" : statuses[i] as RecipientResult["status"];
        return { index: r.index, status, origin: "remote", reply: serverReply(REPLY[status]) };
      }),
    };
    if (!statuses.includes("hold")) return answer;
    return new Promise((resolve) => this.#held.push(() => resolve(answer)));
  };
  of(id: string): { ta: DeliveryTransaction; at: number }[] {
    return this.tas.filter((t) => t.ta.messageId === id);
  }
  release(): void {
    for (const r of this.#held.splice(0)) r();
  }
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads a message's first recipient's tries straight from the worker's database (a second connection). */
function triesOf(config: Config, id: string): number | undefined {
  const db = new DatabaseSync(join(config.qmgr.IBDB.base_directory, DB_FILE), { readOnly: true });
  try {
    const row = db.prepare("SELECT tries FROM recipients WHERE message_id = ? AND idx = 0").get(id);
    return row === undefined ? undefined : Number(row.tries);
  } finally {
    db.close();
  }
}

async function makeConfig(root: string): Promise<Config> {
  const config = structuredClone(defaultConfig());
  config.CDB_base_directory = join(root, "cdb");
  config.qmgr.IBDB.base_directory = join(root, "ibdb");
  config.qmgr.DEFEDB.base_directory = join(root, "defedb");
  config.qmgr.IBDB.max_commit_delay = 5;
  config.qmgr.retry_min_delay = 200;
  config.qmgr.retry_max_delay = 400;
  config.qmgr.smtpc.smtp_max_rcpts_per_transaction = 10;
  config.qmgr.smtps = { max_connections: 2, max_connection_rate: 4 };
  await ensureCdbDirs(config.CDB_base_directory);
  return config;
}

function start(config: Config, root: string, smar: FakeSmar, smtpc: FakeSmtpc): Promise<Harness> {
  const socket = `unix:${join(config.qmgr.IBDB.base_directory, config.qmgr.control_socket)}`;
  return startComponent("qmgr", config, { read: [root], write: [root], net: [socket] }, {
    smtps: () => ({ type: "rpc.failure", reason: "smtps serves nothing here" }),
    smar: smar.handler,
    smtpc: smtpc.handler,
  });
}

/** Writes a CDB file and commits its envelope from the test's smtps; asserts qmgr answered committed. */
async function submit(ep: Endpoint, config: Config, recipients: string[]): Promise<Envelope> {
  const id = newQueueId();
  const env: Envelope = {
    id,
    cdbPath: cdbPath(config.CDB_base_directory, id),
    size: 42,
    arrival: Date.now(),
    sender: "alice@sender.test",
    recipients: recipients.map((address) => ({ address })),
    client: { ip: "192.0.2.1", helo: "client.test" },
  };
  await Deno.writeTextFile(env.cdbPath, "Subject: test\r\n\r\nHello\r\n");
  assert.deepEqual(await commitEnvelope(ep, env), { type: "qmgr.committed", id });
  return env;
}

Deno.test("qmgr worker", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "qmgr_worker_" });
  const config = await makeConfig(root);
  const smar = new FakeSmar();
  const smtpc = new FakeSmtpc();
  const h = await start(config, root, smar, smtpc);
  const smtps = h.peers.get("smtps")!;
  try {
    await t.step("commits, then groups one message's recipients per route into transactions", async () => {
      const env = await submit(smtps, config, ["a@x.test", "b@y.test", "c@X.TEST", "d@z.test"]);
      await until(() => smtpc.of(env.id).length === 2, "two transactions");
      const tas = smtpc.of(env.id).map((t) => t.ta).sort((a, b) =>
        a.recipients[0].index - b.recipients[0].index
      );
      assert.deepEqual(tas.map((ta) => ta.recipients.map((r) => [r.index, r.address])), [
        [[0, "a@x.test"], [1, "b@y.test"], [2, "c@X.TEST"]],
        [[3, "d@z.test"]],
      ]);
      assert.deepEqual(tas.map((ta) => ta.route.hosts), [[MX1], [MX2]]);
      assert.equal(tas[0].sender, "alice@sender.test");
      assert.equal(tas[0].cdbPath, env.cdbPath);
      assert.equal(tas[0].size, 42);
      await until(async () => !(await exists(env.cdbPath)), "the CDB file to be removed");
    });

    await t.step("a temporary failure is retried after retry_min_delay, then delivered", async () => {
      smtpc.script = (_ta, attempt) => attempt === 1 ? "temp" : "sent";
      const env = await submit(smtps, config, ["retry@x.test"]);
      await until(async () => !(await exists(env.cdbPath)), "the retried message to be delivered");
      const tries = smtpc.of(env.id);
      assert.equal(tries.length, 2);
      assert.ok(tries[1].at - tries[0].at >= 150, `retried after ${tries[1].at - tries[0].at} ms`);
    });

    await t.step("a permanent failure is not retried", async () => {
      smtpc.script = () => "perm";
      const env = await submit(smtps, config, ["nobody@x.test"]);
      await until(async () => !(await exists(env.cdbPath)), "the bounced message to be removed");
      assert.equal(smtpc.of(env.id).length, 1);
    });

    await t.step("only the deferred recipients of a transaction are tried again", async () => {
      smtpc.script = (_ta, attempt, r) => attempt === 1 && r.index === 1 ? "temp" : "sent";
      const env = await submit(smtps, config, ["one@x.test", "two@x.test", "three@x.test"]);
      await until(async () => !(await exists(env.cdbPath)), "delivery");
      assert.deepEqual(smtpc.of(env.id).map((t) => t.ta.recipients.map((r) => r.index)), [[0, 1, 2], [1]]);
    });

    await t.step("a permanent route failure bounces its recipients, the others are delivered", async () => {
      smtpc.script = () => "sent";
      const env = await submit(smtps, config, ["first@z.test", "second@nx.test", "third@z.test"]);
      await until(async () => !(await exists(env.cdbPath)), "delivery of the routable recipients");
      assert.deepEqual(smtpc.of(env.id).map((t) => t.ta.recipients.map((r) => r.index)), [[0, 2]]);
    });

    await t.step("no transaction carries more than smtp_max_rcpts_per_transaction recipients", async () => {
      smtpc.script = () => "sent";
      const env = await submit(smtps, config, Array.from({ length: 25 }, (_, i) => `r${i}@x.test`));
      await until(async () => !(await exists(env.cdbPath)), "delivery");
      assert.deepEqual(smtpc.of(env.id).map((t) => t.ta.recipients.length).sort((a, b) => a - b), [
        5,
        10,
        10,
      ]);
    });

    await t.step("a temporary route failure defers, the next lookup succeeds", async () => {
      smtpc.script = () => "sent";
      smar.scripted.set("later.test", [{ status: "temp", text: "DNS timeout" }]);
      smar.table["later.test"] = { status: "ok", protocol: "esmtp", port: 25, hosts: [MX2] };
      const env = await submit(smtps, config, ["u@later.test"]);
      await until(async () => !(await exists(env.cdbPath)), "delivery after the route came back");
      assert.equal(smar.lookups.filter((d) => d === "later.test").length, 2);
      assert.equal(smtpc.of(env.id).length, 1);
    });

    await t.step("bad envelopes and requests qmgr does not serve are refused", async () => {
      const id = newQueueId();
      const bad: Envelope = {
        id,
        cdbPath: join(config.qmgr.IBDB.base_directory, "queue.sqlite"),
        size: 1,
        arrival: Date.now(),
        sender: "",
        recipients: [{ address: "a@x.test" }],
        client: { ip: "192.0.2.1", helo: "h" },
      };
      const answer = await commitEnvelope(smtps, bad);
      assert.equal(answer.type, "qmgr.commit_failed");
      assert.match((answer as { reason: string }).reason, /CDB path/);
      const none = await commitEnvelope(smtps, {
        ...bad,
        cdbPath: cdbPath(config.CDB_base_directory, id),
        recipients: [],
      });
      assert.equal(none.type, "qmgr.commit_failed");
      const route = await smtps.request("qmgr", { type: "qmgr.route", domain: "x.test" });
      assert.equal(route.type, "rpc.failure");
      const fromSmar = await h.peers.get("smar")!.request("qmgr", { type: "smtps.commit", envelope: bad });
      assert.equal(fromSmar.type, "rpc.failure");
    });

    await t.step("connection limits: concurrent sessions and rate per client IP", async () => {
      const verdict = async (ip: string) => {
        const v = await connectionOpened(smtps, ip);
        assert.equal(v.type, "qmgr.conn_verdict");
        return v.type === "qmgr.conn_verdict" ? v : undefined;
      };
      const ip = "198.51.100.7";
      assert.equal((await verdict(ip))?.accept, true);
      assert.equal((await verdict(ip))?.accept, true);
      const third = await verdict(ip);
      assert.deepEqual(third, {
        type: "qmgr.conn_verdict",
        accept: false,
        reply: { code: 421, status: "4.7.0", text: "Too many connections from your host" },
      });
      assert.equal((await verdict("198.51.100.8"))?.accept, true, "another IP is not affected");
      connectionClosed(smtps, ip);
      assert.equal(
        (await verdict(ip))?.accept,
        true,
        "a closed session frees a slot (4th connection in 60 s)",
      );
      connectionClosed(smtps, ip);
      assert.equal((await verdict(ip))?.accept, false, "the 5th connection in 60 s exceeds the rate of 4");
    });
  } finally {
    smtpc.release();
    await h.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("qmgr worker restart delivers what was committed", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "qmgr_restart_" });
  const config = await makeConfig(root);
  // The deferred message's retry is a minute away: retry_max_delay caps the back-off, so it is raised
  // too (makeConfig's 400 ms would make the retry due while the worker restarts, a slow restart under
  // --coverage included, and the test would race).
  config.qmgr.retry_min_delay = 60_000;
  config.qmgr.retry_max_delay = 60_000;
  const smar = new FakeSmar();
  const first = new FakeSmtpc();
  first.script = (_ta, _attempt, r) => r.address.startsWith("held") ? "hold" : "temp";
  const second = new FakeSmtpc();
  try {
    let held: Envelope, deferred: Envelope;
    await t.step("a message in flight and a deferred one when the worker dies", async () => {
      const h = await start(config, root, smar, first);
      try {
        const smtps = h.peers.get("smtps")!;
        held = await submit(smtps, config, ["held@x.test"]);
        deferred = await submit(smtps, config, ["later@z.test"]);
        await until(() => first.tas.length === 2, "both transactions to reach smtpc");
        // The deferral must be on disk before the crash; a lost one would only mean an early retry.
        await until(() => triesOf(config, deferred.id) === 1, "the deferral to be committed");
      } finally {
        // A crash: no graceful stop, the worker is simply gone.
        h.worker.terminate();
        for (const ep of h.peers.values()) ep.close();
      }
    });

    await t.step("a new worker on the same directories delivers the message in flight", async () => {
      const h = await start(config, root, smar, second);
      try {
        await until(async () => !(await exists(held.cdbPath)), "the in-flight message to be delivered");
        assert.deepEqual(second.of(held.id).map((t) => t.ta.recipients.map((r) => r.address)), [[
          "held@x.test",
        ]]);
        // The deferred one waits for its retry time (a minute away), its content still kept.
        assert.equal(second.of(deferred.id).length, 0);
        assert.equal(await exists(deferred.cdbPath), true);
      } finally {
        await h.stop();
      }
    });
  } finally {
    first.release();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("qmgr worker commits at once, and after a graceful stop the next worker delivers what was left", async () => {
  const root = await Deno.makeTempDir({ prefix: "qmgr_stop_" });
  const config = await makeConfig(root);
  // An upper bound only (leader/follower group commit): the answer does not wait for it.
  config.qmgr.IBDB.max_commit_delay = 60_000;
  const smar = new FakeSmar();
  const first = new FakeSmtpc();
  first.script = () => "hold"; // the delivery is under way when the stop comes
  const smtpc = new FakeSmtpc();
  try {
    const h = await start(config, root, smar, first);
    const id = newQueueId();
    const env: Envelope = {
      id,
      cdbPath: cdbPath(config.CDB_base_directory, id),
      size: 5,
      arrival: Date.now(),
      sender: "",
      recipients: [{ address: "bob@x.test" }],
      client: { ip: "192.0.2.1", helo: "client.test" },
    };
    await Deno.writeTextFile(env.cdbPath, "Hi\r\n");
    try {
      // Answered although max_commit_delay is a minute: a test timeout (not a timer) would catch a wait.
      assert.deepEqual(await commitEnvelope(h.peers.get("smtps")!, env), { type: "qmgr.committed", id });
      await until(() => first.tas.length === 1, "the delivery to start");
      await h.stop();
    } finally {
      first.release();
      h.worker.terminate();
    }

    const next = await start(config, root, smar, smtpc);
    try {
      await until(async () => !(await exists(env.cdbPath)), "the message to be delivered by the next worker");
      assert.deepEqual(smtpc.tas.map((t) => t.ta.recipients[0].address), ["bob@x.test"]);
      assert.equal(smtpc.tas[0].ta.sender, "");
    } finally {
      await next.stop();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
