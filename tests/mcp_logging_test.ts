// Logging: the level mapping of sendmail X's numeric Log_Level, filtering, control characters, the log
// file of this isolate; then end to end with `log { directory }`: each component writes its own file, and
// one relayed message leaves the lines mail operators parse (connect/disconnect with command counts, the
// queue id with from=, to=, relay=host[ip]:port, delay=, dsn=, status=sent (reply)), checked field by field.

import assert from "node:assert/strict";
import { join } from "node:path";
import { escapeControls, levelOf, log } from "../components/util/log.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

Deno.test("levelOf() maps sendmail X's Log_Level onto four levels", () => {
  const cases: [number, string][] = [
    [0, "error"],
    [2, "error"],
    [3, "warn"],
    [5, "warn"],
    [6, "info"],
    [
      9,
      "info",
    ],
    [10, "debug"],
    [14, "debug"],
  ];
  for (const [n, want] of cases) assert.equal(levelOf(n), want, `Log_Level ${n}`);
});

Deno.test("log writes one line per event at or above its level, escaped, to its file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-log-" });
  const before = log.level;
  try {
    const path = join(dir, "mcp.log");
    log.toFile(path);
    log.setLevel(4); // warnings and errors
    log.info("mcp", "not written");
    log.warn("mcp", "a warning");
    log.error("mcp", "forged\r\nline");
    log.setLevel("debug");
    log.debug("qmgr", "details");
    log.toFile(path); // reopened, as after a rotation: appends
    log.info("smtps", "after reopening");
    log.toFile(undefined);
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    const shape = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+) (\S+)\[(\d+)\]: (.*)$/;
    const pid = String(Deno.pid);
    assert.deepEqual(lines.map((l) => shape.exec(l)?.slice(1)), [
      ["localhost", "smx/mcp", pid, "warning: a warning"],
      ["localhost", "smx/mcp", pid, "error: forged\\x0d\\x0aline"],
      ["localhost", "smx/qmgr", pid, "details"],
      ["localhost", "smx/smtpd", pid, "after reopening"],
    ]);
    assert.equal(escapeControls("tab\tstays"), "tab\tstays");
  } finally {
    log.setLevel(before);
    log.toFile(undefined);
    await Deno.remove(dir, { recursive: true });
  }
});

/** The `key=value` fields of a Postfix-style line `id: k=v, k=v, status=x (text)`. */
function fields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const body = line.replace(/^.*?\]: [0-9A-F]+: /, "");
  for (const m of body.matchAll(/(\w+)=(<[^>]*>|[^,]*?(?: \(.*\))?)(?:, |$)/g)) out[m[1]] = m[2];
  return out;
}

Deno.test("each component logs to its own file and a relayed message leaves parseable lines", async () => {
  const sink = await startSink();
  let logDir = "";
  const mta = await startTestMta({
    mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n`,
    adjust: (c) => {
      logDir = join(c.CDB_base_directory, "..", "log");
      c.log = { directory: logDir };
    },
  });
  let id = "";
  try {
    const reply = await smtpSend(mta.port, {
      from: "alice@sender.test",
      to: ["bob@example.com"],
      body: "Subject: logged\r\nMessage-ID:\r\n <logged@sender.test>\r\n\r\nhello\r\n",
    });
    id = /queued as ([0-9A-F]+)$/.exec(reply)?.[1] ?? "";
    assert.ok(id, reply);
    await sink.waitFor(1, 15_000);
    // The message leaves the queue once its result is recorded.
    for (const until = Date.now() + 10_000; Date.now() < until;) {
      const text = await Deno.readTextFile(join(logDir, "qmgr.log")).catch(() => "");
      if (text.includes(`${id}: removed`)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await mta.mta.stop();
    await sink.close();
  }
  try {
    const read = async (name: string) => (await Deno.readTextFile(join(logDir, `${name}.log`))).split("\n");
    const [mcp, smtps, qmgr, smtpc] = await Promise.all(["mcp", "smtps", "qmgr", "smtpc"].map(read));
    assert.ok(mcp.some((l) => /smx\/mcp\[\d+\]: all components ready$/.test(l)), mcp.join("\n"));
    assert.ok(mcp.some((l) => /smx\/mcp\[\d+\]: stopped \(exit code 0\)$/.test(l)), mcp.join("\n"));
    assert.ok(
      smtps.every((l) => l === "" || / smx\/smtpd\[\d+\]: /.test(l)),
      "only smtps lines in smtps.log",
    );

    const connect = smtps.filter((l) => /: connect from unknown\[127\.0\.0\.1\]( |$)/.test(l));
    assert.equal(connect.length, 1, smtps.join("\n"));
    const disconnect = smtps.find((l) => /: disconnect from unknown\[127\.0\.0\.1\]/.test(l));
    assert.match(disconnect ?? "", /commands=5\b/, "EHLO MAIL RCPT DATA QUIT");

    assert.ok(smtps.some((l) => l.endsWith(`]: ${id}: client=unknown[127.0.0.1]`)), smtps.join("\n"));
    assert.ok(smtps.some((l) => l.endsWith(`]: ${id}: message-id=<logged@sender.test>`)), smtps.join("\n"));

    const sent = qmgr.find((l) => l.includes(`]: ${id}: to=<bob@example.com>`)) ?? "";
    const f = fields(sent);
    assert.equal(f.to, "<bob@example.com>", sent);
    assert.equal(f.relay, `127.0.0.1[127.0.0.1]:${sink.port}`, sent);
    assert.match(f.delay ?? "", /^\d+(\.\d+)?$/, sent);
    assert.match(f.delays ?? "", /^[\d.]+\/[\d.]+\/0\/[\d.]+$/, sent);
    assert.equal(f.dsn, "2.0.0", sent);
    assert.match(f.status ?? "", /^sent \(250 .*\)$/, sent);
    const queued = fields(qmgr.find((l) => l.includes(`]: ${id}: from=<`)) ?? "");
    assert.equal(queued.from, "<alice@sender.test>");
    assert.equal(queued.nrcpt, "1 (queue active)");
    assert.match(queued.size ?? "", /^\d+$/);
    assert.ok(qmgr.some((l) => l.endsWith(`]: ${id}: removed`)), qmgr.join("\n"));
    assert.ok(smtpc.some((l) => l.includes(`]: ${id}: `)), smtpc.join("\n"));
  } finally {
    await mta.stop();
  }
});
