// qmgrctl's bulk operations (postsuper's): hold, release, requeue, delete and bounce of several ids, of
// ids read from standard input (`-`, as mailq output or one id a line gives them), of what a filter
// selects (--sender, --recipient, --domain, @domain, --state, --age) and of ALL; unknown ids are named
// and make the exit code 1; show --body prints the whole message as the queue holds it. Against the
// real control socket of a qmgr running in this process.

import assert from "node:assert/strict";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import { EX_USAGE, idsIn, qmgrctl } from "../scripts/qmgrctl.ts";
import { startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";

async function ctl(
  socket: string,
  args: string[],
  stdin = "",
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await qmgrctl(["--socket", socket, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    stdin: () => Promise.resolve(stdin),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

interface Rows {
  rows: { id: string; state: string; sender: string }[];
}

Deno.test("idsIn() finds queue ids in mailq-style lines, one-id lines and JSON", () => {
  const a = newQueueId();
  const b = newQueueId();
  assert.deepEqual(idsIn(`${a}\n${b}\n`), [a, b]);
  assert.deepEqual(idsIn(`${a}*    1234 Fri Dec  4 18:00:00  alice@sender.test\n  bob@x.test\n`), [a]);
  assert.deepEqual(idsIn(JSON.stringify([{ queue_id: a }, { queue_id: b }])), [a, b]);
  assert.deepEqual(idsIn("no ids here, nor in DEADBEEF"), []);
});

Deno.test("qmgrctl hold, release, requeue, delete and bounce work in bulk", async (t) => {
  const q = await startInProcessQmgr();
  const socket = controlSocketPath(q.config);
  const list = async (...args: string[]) => {
    const r = await ctl(socket, ["--json", "list", ...args]);
    assert.equal(r.code, 0, r.err);
    return (JSON.parse(r.out) as Rows).rows;
  };
  try {
    q.script.answer = (ta) => ta.sender === "" ? "sent" : "temp";
    q.routes["else.test"] = q.routes["dest.test"];
    const a = await q.submit(["a@dest.test"]);
    const b = await q.submit(["b@dest.test", "c@dest.test"], { sender: "bob@other.test" });
    q.clock.offset += 3 * 3_600_000;
    const c = await q.submit(["d@else.test"]);
    // A release makes the messages due at once, and hold counts only recipients that wait: after each
    // release the test waits until the delivery attempt it started has deferred them again.
    const settled = () => until(async () => (await list("--state", "deferred")).length === 3, "3 deferred");
    await settled();

    await t.step("hold of several ids, and of ids from stdin", async () => {
      assert.deepEqual(await ctl(socket, ["hold", a.id, b.id]), {
        code: 0,
        out: "on hold: 2 messages, 3 recipients",
        err: "",
      });
      const held = (await list("--state", "hold")).map((r) => r.id).sort();
      assert.deepEqual(held, [a.id, b.id].sort());
      const r = await ctl(socket, ["release", "-"], `${a.id}\n${b.id}\n`);
      assert.equal(r.out, "released: 2 messages, 3 recipients");
      assert.deepEqual(await list("--state", "hold"), []);
      await settled();
    });

    await t.step("a filter selects: --sender, @domain, --age, --state", async () => {
      assert.equal(
        (await ctl(socket, ["hold", "--sender", "bob@"])).out,
        "on hold: 1 messages, 2 recipients",
      );
      assert.deepEqual((await list("--state", "hold")).map((r) => r.id), [b.id]);
      assert.equal((await ctl(socket, ["hold", "@else.test"])).out, "on hold: 1 messages, 1 recipients");
      assert.equal(
        (await ctl(socket, ["release", "--state", "hold"])).out,
        "released: 2 messages, 3 recipients",
      );
      await settled();
      // Older than 2 hours: a and b (c came 3 hours later).
      assert.equal((await ctl(socket, ["hold", "--age", "2h"])).out, "on hold: 2 messages, 3 recipients");
      assert.equal((await ctl(socket, ["release", "ALL"])).out, "released: 2 messages, 3 recipients");
      await settled();
    });

    await t.step("requeue ALL makes every recipient due now, holds lifted", async () => {
      await ctl(socket, ["hold", c.id]);
      const before = q.delivered.length;
      const r = await ctl(socket, ["requeue", "ALL"]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^requeued: 3 messages, 4 recipients$/);
      await until(() => q.delivered.length >= before + 3, "every message tried again");
      assert.ok(q.delivered.slice(before).some((d) => d.ta.messageId === c.id), "the held one too");
      await settled();
    });

    await t.step("unknown ids are named and make the exit code 1; the others are done", async () => {
      const ghost = newQueueId();
      const r = await ctl(socket, ["hold", a.id, ghost]);
      assert.equal(r.code, 1);
      assert.equal(r.out, `${ghost}: no such message in the queue\non hold: 1 messages, 1 recipients`);
      await ctl(socket, ["release", a.id]);
      await settled();
    });

    await t.step("show --body prints the whole message", async () => {
      const r = await ctl(socket, ["show", c.id, "--body"]);
      assert.equal(r.code, 0, r.err);
      const content = await Deno.readTextFile(c.cdbPath);
      assert.ok(r.out.includes(`content (${content.length} bytes):\n`), r.out);
      assert.ok(r.out.endsWith(content.replace(/\r\n/g, "\n").replace(/\n$/, "")), r.out);
      assert.ok(!(await ctl(socket, ["show", c.id])).out.includes("content ("), "no body without --body");
    });

    await t.step("bounce of a filter's messages, delete of the rest from stdin", async () => {
      const r = await ctl(socket, ["bounce", "--recipient", "d@else"]);
      assert.equal(r.out, "returned to the sender: 1 messages, 1 recipients");
      await until(async () => !(await list()).some((m) => m.id === c.id), "c returned and gone");
      const d = await ctl(socket, ["delete", "-"], `${a.id}  ...\n${b.id}  ...\n`);
      assert.equal(d.out, "deleted: 2 messages, 3 recipients");
      await until(async () => (await list()).length === 0, "an empty queue");
    });

    await t.step("usage: ids and a filter together, ALL with more, nothing at all", async () => {
      for (const args of [["hold", a.id, "--sender", "x"], ["delete", "ALL", a.id], ["requeue"]]) {
        assert.equal((await ctl(socket, args)).code, EX_USAGE, args.join(" "));
      }
    });
  } finally {
    await q.stop();
  }
});
