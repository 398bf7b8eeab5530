// Several smtps workers (`processes`, config/processes.ts) sharing one listen socket through SO_REUSEPORT:
// the whole MTA with three smtps workers on one port. Many real connections are spread by the kernel over
// more than one worker (each connect line in smtps.log names its worker, under the one syslog tag
// smx/smtpd[pid]); every message is queued once with its own id and delivered; a killed worker is
// restarted alone while the others keep serving; and qmgr forgets the sessions a dead worker held, so its
// per-client limit does not lock clients out after a restart.

import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestMta, type TestMta } from "./helpers/mta.ts";
import { SmtpConnection, smtpSend } from "./helpers/smtp_client.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";

const q = (s: string) => JSON.stringify(s);

/** Resolves once `ok()` holds; throws with `what` when it has not after `ms`. */
async function until(ok: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The worker each logged connect line names, in order (`smtps@2` -> 2). */
async function connectWorkers(mta: TestMta): Promise<number[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(join(mta.dir, "log/smtps.log"));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return [...text.matchAll(/ smx\/smtpd\[\d+\]: connect from \S+ to MTA \(smtps@(\d+)\)$/gm)].map((m) =>
    Number(m[1])
  );
}

Deno.test("three smtps workers share one listen socket: the kernel spreads connections, each message is queued once", async () => {
  const sink = await startSink();
  const dir = await Deno.makeTempDir({ prefix: "smx-procs-" });
  let mta: TestMta | undefined;
  try {
    mta = await startTestMta({
      dir,
      processes: 3,
      mailertable: `relay.test\t${sink.port}^esmtp:[127.0.0.1]\n`,
      configText: `log { directory = ${q(join(dir, "log"))}; }\n`,
    });
    const sup = mta.mta.supervisor;
    assert.equal(sup.instances("smtps"), 3);
    assert.deepEqual(sup.names.filter((n) => n.startsWith("smtps")), ["smtps@1", "smtps@2", "smtps@3"]);

    const sends = 30;
    const ids: string[] = [];
    for (let batch = 0; batch < sends; batch += 6) {
      const replies = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          smtpSend(mta!.port, {
            from: "sender@localhost",
            to: [`rcpt${batch + i}@relay.test`],
            body: `Subject: message ${batch + i}\r\n\r\nHello.\r\n`,
          })),
      );
      for (const r of replies) {
        const m = /^250 2\.0\.0 .*queued as ([0-9A-F]{20})/.exec(r);
        assert.ok(m, r);
        ids.push(m[1]);
      }
    }
    assert.equal(new Set(ids).size, sends, "every message has its own queue id");
    await sink.waitFor(sends, 30_000);
    assert.deepEqual(
      sink.messages.flatMap((m) => m.recipients).sort(),
      Array.from({ length: sends }, (_, i) => `rcpt${i}@relay.test`).sort(),
      "each message delivered once",
    );
    await until(async () => (await connectWorkers(mta!)).length >= sends, `${sends} connect lines`);
    const workers = await connectWorkers(mta);
    const served = new Set(workers);
    assert.ok(served.size > 1, `connections went to more than one worker: ${workers.join(" ")}`);
    for (const w of served) assert.ok(w >= 1 && w <= 3, `worker ${w}`);

    // One worker dies: the MCP restarts that one alone; the others are untouched.
    sup.kill("smtps@2");
    try {
      await until(() => sup.restarts("smtps@2") === 1 && sup.isReady("smtps@2"), "smtps@2 restarted", 60_000);
    } catch (err) {
      const mcp = await Deno.readTextFile(join(dir, "log/mcp.log")).catch(() => "");
      throw new Error(`${(err as Error).message}; mcp.log:\n${mcp}`);
    }
    assert.equal(sup.generation("smtps@2"), 2);
    assert.equal(sup.restarts("smtps@1"), 0);
    assert.equal(sup.restarts("smtps@3"), 0);
    assert.equal(sup.generation("qmgr"), 1, "qmgr kept running");
    // qmgrctl status names each worker, with its own generation and restarts.
    const out: string[] = [];
    const code = await qmgrctl(["--socket", controlSocketPath(mta.config), "status"], {
      out: (t) => out.push(t),
      err: (t) => out.push(t),
    });
    assert.equal(code, 0, out.join("\n"));
    const rows = out.join("\n").split("\n").filter((l) => /^smtps@\d /.test(l)).map((l) => l.split(/\s+/));
    assert.deepEqual(
      rows.map((r) => [r[0], r[1], r.at(-2), r.at(-1)]),
      [["smtps@1", "running", "0", "1"], ["smtps@2", "running", "1", "2"], ["smtps@3", "running", "0", "1"]],
      out.join("\n"),
    );
    const after = await smtpSend(mta.port, {
      from: "sender@localhost",
      to: ["after@relay.test"],
      body: "Subject: after the restart\r\n\r\nHello.\r\n",
    });
    assert.match(after, /^250 2\.0\.0 /);
    await sink.waitFor(sends + 1, 30_000);
  } finally {
    await mta?.stop();
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("qmgr forgets the client sessions of smtps workers that died, so its per-client limit lets clients in again", async () => {
  const mta = await startTestMta({
    processes: 2,
    adjust: (c) => (c.qmgr.smtps.max_connections = 2),
  });
  const open: SmtpConnection[] = [];
  try {
    const sup = mta.mta.supervisor;
    for (let i = 0; i < 2; i++) {
      const c = await SmtpConnection.open(mta.port);
      open.push(c);
      assert.match(await c.reply(), /^220 /);
    }
    const third = await SmtpConnection.open(mta.port);
    assert.match(await third.reply(), /^421 4\.7\.0 /, "the limit holds across both workers");
    await third.close();

    // Both workers die with the two sessions; their closes never reach qmgr.
    sup.kill("smtps@1");
    sup.kill("smtps@2");
    await until(
      () => ["smtps@1", "smtps@2"].every((w) => sup.restarts(w) === 1 && sup.isReady(w)),
      "both smtps workers restarted",
    );
    for (const c of open.splice(0)) await c.close();
    for (let i = 0; i < 2; i++) {
      const c = await SmtpConnection.open(mta.port);
      open.push(c);
      assert.match(await c.reply(), /^220 /, `session ${i + 1} after the restarts`);
    }
  } finally {
    for (const c of open) await c.close();
    await mta.stop();
  }
});
