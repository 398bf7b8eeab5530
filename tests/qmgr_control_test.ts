// qmgrctl end to end: every command through qmgrctl() (in-process) against qmgr's real control socket,
// with qmgr running in this process: status (with and without the MCP's answer), list and its filters,
// show, flush (one message, a domain, everything), hold and release, delete (no notice), bounce (a DSN),
// stats; clear errors for a bad or unknown id, usage mistakes, an MTA that is not running, and garbage
// on the socket.

import assert from "node:assert/strict";
import { join } from "node:path";
import type { ComponentStatus } from "../components/protocol/frames.ts";
import { controlSocketPath, MAX_LINE } from "../components/qmgr/control_protocol.ts";
import { cdbPath } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { Envelope } from "../components/protocol/messages.ts";
import { writeQueueFile } from "./helpers/cdb.ts";
import { EX_UNAVAILABLE, EX_USAGE, qmgrctl, request } from "../scripts/qmgrctl.ts";
import { startTestMta, testConfigText } from "./helpers/mta.ts";
import { type InProcessQmgr, startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";

/** Runs qmgrctl against `socket`; returns its exit code and what it printed. */
async function ctl(socket: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await qmgrctl(["--socket", socket, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

async function json<T>(socket: string, ...args: string[]): Promise<T> {
  const r = await ctl(socket, "--json", ...args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as T;
}

interface ListRows {
  rows: { id: string; state: string; sender: string; lastError?: string; nextTry?: number }[];
  more: boolean;
}

const ids = (l: ListRows) => l.rows.map((r) => r.id);

Deno.test("qmgrctl, every command end to end", async (t) => {
  const components: ComponentStatus[] = [
    { name: "qmgr", generation: 1, restarts: 0, ready: true, uptime: 90_000 },
    { name: "smtpc", generation: 3, restarts: 2, ready: true, uptime: 5_000 },
  ];
  const q: InProcessQmgr = await startInProcessQmgr({ mcpStatus: () => Promise.resolve(components) });
  const socket = controlSocketPath(q.config);
  try {
    q.script.answer = (ta) => ta.sender === "" ? "sent" : "temp";
    const old = await q.submit(["x@dest.test"]);
    q.clock.offset += 2 * 3_600_000;
    const fromBob = await q.submit(["y@sender.test"], { sender: "bob@other.test" });
    const toHold = await q.submit(["z@dest.test", "w@dest.test"]);
    await until(() => q.delivered.length === 3, "the first attempts");
    await until(
      async () => (await json<ListRows>(socket, "list", "--state", "deferred")).rows.length === 3,
      "3 deferred",
    );

    await t.step("the control socket is for its owner only (mode 0600)", async () => {
      assert.equal((await Deno.stat(socket)).mode! & 0o777, 0o600);
    });

    await t.step("status shows the components (from the MCP), queue sizes and rates", async () => {
      const r = await ctl(socket, "status");
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^component\s+state\s+uptime\s+restarts\s+generation\n/);
      assert.match(r.out, /\nsmtpc\s+running\s+5s\s+2\s+3\n/);
      assert.match(r.out, /\nmessages:\s+3\n/);
      assert.match(r.out, /\nrecipients:\s+0 incoming, 0 active, 4 deferred, 0 on hold\n/);
      assert.match(r.out, /\nper minute:\s+received \d/);
      const s = await json<{ queue: { messages: number }; components: unknown[] }>(socket, "status");
      assert.equal(s.queue.messages, 3);
      assert.equal(s.components.length, 2);
    });

    await t.step(
      "list shows every message, oldest first, and filters by sender, recipient, domain, state, age; says when none matches",
      async () => {
        const all = await ctl(socket, "list");
        assert.equal(all.code, 0);
        assert.match(all.out, /^id\s+arrival\s+size\s+sender\s+rcpts\s+state\s+next try\s+last error\n/);
        assert.match(
          all.out,
          new RegExp(`\\n${old.id}\\s+\\S+ \\S+\\s+\\d+\\s+alice@sender\\.test\\s+1\\s+deferred\\s+`),
        );
        assert.match(all.out, /451 4\.3\.0 Try again later/);
        const cases: [string, string[], string[]][] = [
          ["no filter", [], [old.id, fromBob.id, toHold.id]],
          ["--sender", ["--sender", "BOB@"], [fromBob.id]],
          ["--recipient", ["--recipient", "z@dest"], [toHold.id]],
          ["--domain", ["--domain", "sender.test"], [fromBob.id]],
          ["--age 1h", ["--age", "1h"], [old.id]],
          ["--limit 2", ["--limit", "2"], [old.id, fromBob.id]],
        ];
        for (const [label, args, want] of cases) {
          assert.deepEqual(ids(await json<ListRows>(socket, "list", ...args)), want, label);
        }
        assert.equal((await json<ListRows>(socket, "list", "--limit", "2")).more, true);
        const none = await ctl(socket, "list", "--sender", "nobody@nowhere.test");
        assert.deepEqual([none.code, none.out], [0, "no message in the queue matches"]);
      },
    );

    await t.step("show gives the envelope, each recipient's state and history, and the header", async () => {
      const m = await json<{
        sender: string;
        recipients: {
          address: string;
          state: string;
          tries: number;
          history: { status: string; relay: string }[];
        }[];
        header: string;
      }>(socket, "show", old.id.toLowerCase());
      assert.equal(m.sender, "alice@sender.test");
      assert.deepEqual(m.recipients.map((r) => [r.address, r.state, r.tries]), [[
        "x@dest.test",
        "waiting",
        1,
      ]]);
      assert.deepEqual(m.recipients[0].history.map((h) => [h.status, h.relay]), [[
        "deferred",
        "mx.dest.test[192.0.2.25]:25",
      ]]);
      assert.match(m.header, new RegExp(`^Received: from client\\.test\\r?\\nSubject: Test ${old.id}`));
      const text = await ctl(socket, "show", old.id);
      assert.match(text.out, /\nrecipients:\n {2}<x@dest\.test> waiting, tries 1, next try /);
      assert.match(text.out, /\n {4}\S+ \S+ deferred via mx\.dest\.test\[192\.0\.2\.25\]:25: 451 4\.3\.0/);
      assert.match(text.out, /\nheader:\nReceived: from client\.test/);
    });

    await t.step("flush retries now: one message, a domain, or everything", async () => {
      const before = q.delivered.length;
      assert.deepEqual((await ctl(socket, "flush", old.id)).out, "1 recipients due now");
      await until(() => q.delivered.length === before + 1, "one retry");
      assert.equal(q.delivered.at(-1)!.ta.messageId, old.id);
      assert.equal((await ctl(socket, "flush", "@sender.test")).out, "1 recipients due now");
      await until(() => q.delivered.length === before + 2, "the domain's retry");
      assert.equal(q.delivered.at(-1)!.ta.messageId, fromBob.id);
      assert.equal((await ctl(socket, "flush")).out, "4 recipients due now");
      await until(() => q.delivered.length === before + 5, "everything retried");
    });

    await t.step("hold keeps a message from delivery, release lets it go", async () => {
      await until(
        async () => (await json<ListRows>(socket, "list", "--state", "deferred")).rows.length === 3,
        "deferred again",
      );
      assert.equal((await ctl(socket, "hold", toHold.id)).out, "on hold: 2 recipients");
      assert.deepEqual(ids(await json<ListRows>(socket, "list", "--state", "hold")), [toHold.id]);
      const before = q.delivered.length;
      await ctl(socket, "flush");
      await until(() => q.delivered.length === before + 2, "the others retried");
      assert.ok(q.delivered.slice(before).every((d) => d.ta.messageId !== toHold.id), "not the held one");
      q.script.answer = () => "sent";
      assert.equal((await ctl(socket, "release", toHold.id)).out, "released: 2 recipients");
      await until(
        async () => !(await json<ListRows>(socket, "list")).rows.some((r) => r.id === toHold.id),
        "delivery",
      );
    });

    await t.step("delete removes a message and its content without a notice", async () => {
      const dsnsBefore = q.delivered.filter((d) => d.ta.sender === "").length;
      assert.equal((await ctl(socket, "delete", fromBob.id)).out, "deleted: 1 recipients");
      assert.equal(await Deno.stat(fromBob.cdbPath).then(() => true, () => false), false);
      assert.equal((await ctl(socket, "show", fromBob.id)).code, 1);
      // No notice now, and none to come: a notice would be a message from <> in the queue.
      assert.equal(q.delivered.filter((d) => d.ta.sender === "").length, dsnsBefore);
      const rows = (await json<ListRows>(socket, "list")).rows;
      assert.deepEqual(rows.filter((r) => r.sender === ""), []);
    });

    await t.step("check compares database and queue files; --repair queues an orphan again", async () => {
      const clean = await ctl(socket, "check");
      assert.equal(clean.code, 0, clean.out);
      assert.match(clean.out, /^database: ok\n.*\nthe queue is consistent$/s);
      const id = newQueueId();
      const orphan: Envelope = {
        id,
        cdbPath: cdbPath(q.config.CDB_base_directory, id),
        size: 0,
        arrival: Date.now(),
        sender: "orphan@sender.test",
        recipients: [{ address: "found@dest.test" }],
        client: { ip: "192.0.2.7", helo: "h" },
      };
      await writeQueueFile(orphan, "Subject: orphan\r\n\r\nbody\r\n");
      const hourAgo = new Date(Date.now() - 3_600_000);
      await Deno.utime(orphan.cdbPath, hourAgo, hourAgo);
      const found = await ctl(socket, "check");
      assert.equal(found.code, 2, "problems found: exit 2");
      assert.match(
        found.out,
        new RegExp(`\n1 orphans \\(complete files the database does not know\\):\n  ${id}\n`),
      );
      assert.match(found.out, /run `qmgrctl check --repair` to repair$/);
      const repaired = await ctl(socket, "check", "--repair");
      assert.equal(repaired.code, 0, repaired.out);
      assert.match(repaired.out, /\nrepair: 1 queued again, 0 failed with a DSN, 0 unfinished removed$/);
      await until(() => q.delivered.some((d) => d.ta.messageId === id), "the orphan's delivery");
      assert.equal(
        q.delivered.find((d) => d.ta.messageId === id)!.ta.recipients[0].address,
        "found@dest.test",
      );
    });

    await t.step(
      "bounce returns a message to its sender with a DSN; list then says the queue is empty",
      async () => {
        assert.equal((await ctl(socket, "bounce", old.id)).out, "returned to the sender: 1 recipients");
        await until(
          () =>
            q.delivered.some((d) => d.ta.sender === "" && d.content.includes(`X-Smx-Queue-ID: ${old.id}`)),
          "the DSN",
        );
        const dsn = q.delivered.find((d) => d.content.includes(`X-Smx-Queue-ID: ${old.id}`))!;
        assert.equal(dsn.ta.recipients[0].address, "alice@sender.test");
        assert.match(dsn.content, /\r\nAction: failed\r\nStatus: 5\.0\.0\r\n/);
        await until(async () => (await json<ListRows>(socket, "list")).rows.length === 0, "an empty queue");
        assert.deepEqual(await ctl(socket, "list"), { code: 0, out: "the queue is empty", err: "" });
      },
    );

    await t.step(
      "stats counts received, delivered, deferred and bounced, with per-minute rates",
      async () => {
        const s = await json<{ counters: Record<string, { total: number; perMinute: { last1: number } }> }>(
          socket,
          "stats",
        );
        assert.equal(s.counters.received.total, 3);
        assert.equal(s.counters.bounced.total, 1);
        assert.equal(s.counters.dsn.total, 1);
        assert.ok(s.counters.deferred.total >= 8, `deferred ${s.counters.deferred.total}`);
        assert.equal(
          s.counters.delivered.total,
          4,
          "two held recipients, the DSN and the orphan queued again",
        );
        assert.ok(s.counters.deferred.perMinute.last1 > 0);
        const text = await ctl(socket, "stats");
        assert.match(text.out, /\ncounter\s+total\s+last 1 min/);
        assert.match(text.out, /\nbounced\s+1\s/);
      },
    );

    await t.step("a bad or unknown queue id is a clear error, exit code 1", async () => {
      const unknown = newQueueId();
      const cases: [string[], string][] = [
        [["show", "12345"], "qmgrctl: show 12345: not a queue id"],
        [["show", unknown], `qmgrctl: show ${unknown}: no such message in the queue`],
        [["hold", unknown], `qmgrctl: hold ${unknown}: no such message in the queue`],
        [["bounce", unknown], `qmgrctl: bounce ${unknown}: no such message in the queue`],
        [["flush", unknown], `qmgrctl: flush ${unknown}: no such message in the queue`],
        [
          ["list", "--state", "lost"],
          "qmgrctl: list: unknown state lost, expected one of incoming, active, deferred, hold",
        ],
        [["reload"], "qmgrctl: reload: the MCP did not answer (is qmgr run by the MTA?)"],
      ];
      for (const [args, want] of cases) {
        const r = await ctl(socket, ...args);
        assert.deepEqual([r.code, r.err], [1, want], args.join(" "));
      }
    });

    await t.step("garbage on the socket gets an error answer, not a crash", async () => {
      const conn = await Deno.connect({ transport: "unix", path: socket });
      try {
        const lines = [
          "not json",
          '{"command":"explode"}',
          '{"command":"list","args":[1]}',
          '{"command":"stats"}',
        ];
        await conn.write(new TextEncoder().encode(lines.join("\n") + "\n"));
        let text = "";
        const buf = new Uint8Array(65536);
        while (text.split("\n").length <= lines.length) {
          const n = await conn.read(buf);
          if (n === null) break;
          text += new TextDecoder().decode(buf.subarray(0, n));
        }
        const answers = text.trim().split("\n").map((l) => JSON.parse(l));
        assert.deepEqual(answers.slice(0, 3), [
          { ok: false, error: "Read the request: not a JSON object" },
          { ok: false, error: 'Read the request: unknown command "explode"' },
          { ok: false, error: "Read the request: args must be an object" },
        ]);
        assert.equal(answers[3].ok, true);
      } finally {
        conn.close();
      }
      const long = await request(socket, { command: "list", args: { sender: "x".repeat(MAX_LINE + 10) } });
      assert.deepEqual(long, { ok: false, error: `Read a control line: longer than ${MAX_LINE} bytes` });
    });
  } finally {
    await q.stop();
  }
});

Deno.test("qmgrctl status says the components are unknown when the MCP does not answer", async () => {
  const q = await startInProcessQmgr();
  try {
    const r = await ctl(controlSocketPath(q.config), "status");
    assert.equal(r.code, 0);
    assert.match(r.out, /^components: unknown \(the MCP did not answer\); qmgr up /);
  } finally {
    await q.stop();
  }
});

Deno.test("qmgrctl says clearly when no MTA runs or the command line is wrong", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "qmgrctl_" });
  try {
    await t.step("no socket: no MTA is running, exit 69", async () => {
      const r = await ctl(join(dir, "qmgr.sock"), "status");
      assert.equal(r.code, EX_UNAVAILABLE);
      assert.equal(
        r.err,
        `qmgrctl: Connect to qmgr at ${join(dir, "qmgr.sock")}: no MTA is running (no control socket there)`,
      );
    });
    await t.step("a stale socket file nobody listens on: no MTA is running, exit 69", async () => {
      const path = join(dir, "stale.sock");
      await Deno.writeTextFile(path, ""); // what a crashed qmgr leaves behind, as far as connect() can tell
      const r = await ctl(path, "status");
      assert.equal(r.code, EX_UNAVAILABLE);
      assert.equal(r.err, `qmgrctl: Connect to qmgr at ${path}: no MTA is running (the socket is stale)`);
    });
    const usage: [string[], RegExp][] = [
      [[], /^qmgrctl: missing command\nusage: deno task qmgrctl/],
      [["frobnicate"], /^qmgrctl: unknown command frobnicate\n/],
      [["show"], /^qmgrctl: show takes one queue id\n/],
      [["status", "now"], /^qmgrctl: status takes no arguments\n/],
      [["list", "--age", "soon"], /^qmgrctl: list --age: bad time soon/],
      [["list", "--color"], /^qmgrctl: Unknown option '--color'/],
    ];
    for (const [args, want] of usage) {
      await t.step(`usage: ${args.join(" ") || "(nothing)"} exits 64`, async () => {
        const r = await ctl(join(dir, "qmgr.sock"), ...args);
        assert.equal(r.code, EX_USAGE);
        assert.match(r.err, want);
      });
    }
    await t.step("-h prints the usage", async () => {
      const out: string[] = [];
      assert.equal(await qmgrctl(["-h"], { out: (t) => out.push(t), err: () => {} }), 0);
      assert.match(out[0], /^usage: deno task qmgrctl/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("qmgrctl in a whole MTA: status from the MCP (restarts included), reload through the MCP", async () => {
  const mta = await startTestMta();
  try {
    const socket = controlSocketPath(mta.config);
    type Status = { components: { name: string; restarts: number; ready: boolean; generation: number }[] };
    const s = await json<Status>(socket, "status");
    assert.deepEqual(
      s.components.map((c) => [c.name, c.ready, c.restarts]).sort(),
      [["qmgr", true, 0], ["smar", true, 0], ["smtpc", true, 0], ["smtps", true, 0]],
    );
    const refused = await ctl(socket, "reload");
    assert.equal(refused.code, 1);
    assert.match(refused.err, /^qmgrctl: reload refused: .*smx\.conf.*cannot read the configuration file/);
    await Deno.writeTextFile(join(mta.dir, "smx.conf"), testConfigText(mta.dir, mta.port));
    assert.deepEqual(await ctl(socket, "reload"), { code: 0, out: "configuration reloaded", err: "" });
    mta.mta.supervisor.kill("smtpc");
    await until(
      async () => {
        const smtpc = (await json<Status>(socket, "status")).components.find((c) => c.name === "smtpc")!;
        return smtpc.ready && smtpc.restarts === 1 && smtpc.generation === 2;
      },
      "smtpc's restart to show",
      10_000,
    );
  } finally {
    await mta.stop();
  }
});
