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
    const shape = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+(?: \[\w+\])?): (.*)$/;
    assert.deepEqual(lines.map((l) => shape.exec(l)?.slice(1)), [
      ["mcp [warn]", "a warning"],
      ["mcp [error]", "forged\\x0d\\x0aline"],
      ["qmgr [debug]", "details"],
      ["smtps", "after reopening"],
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
  const body = line.replace(/^\S+ \S+: [0-9A-F]+: /, "");
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
      body: "Subject: logged\r\n\r\nhello\r\n",
    });
    id = /queued as ([0-9A-F]+)$/.exec(reply)?.[1] ?? "";
    assert.ok(id, reply);
    await sink.waitFor(1, 15_000);
  } finally {
    await mta.mta.stop();
    await sink.close();
  }
  try {
    const read = async (name: string) => (await Deno.readTextFile(join(logDir, `${name}.log`))).split("\n");
    const [mcp, smtps, qmgr, smtpc] = await Promise.all(["mcp", "smtps", "qmgr", "smtpc"].map(read));
    assert.ok(mcp.some((l) => l.endsWith("mcp: all components ready")), mcp.join("\n"));
    assert.ok(mcp.some((l) => l.endsWith("mcp: stopped (exit code 0)")), mcp.join("\n"));
    assert.ok(smtps.every((l) => l === "" || / smtps( \[\w+\])?: /.test(l)), "only smtps lines in smtps.log");

    const connect = smtps.filter((l) => / smtps: connect from \[127\.0\.0\.1\]( |$)/.test(l));
    assert.equal(connect.length, 1, smtps.join("\n"));
    const disconnect = smtps.find((l) => / smtps: disconnect from \[127\.0\.0\.1\]/.test(l));
    assert.match(disconnect ?? "", /commands=5\b/, "EHLO MAIL RCPT DATA QUIT");

    const received = fields(smtps.find((l) => l.includes(`smtps: ${id}: `) && l.includes("from=<")) ?? "");
    assert.equal(received.from, "<alice@sender.test>");
    assert.equal(received.nrcpt, "1");
    assert.match(received.size ?? "", /^\d+$/);

    const sent = qmgr.find((l) => l.includes(`qmgr: ${id}: to=<bob@example.com>`)) ?? "";
    const f = fields(sent);
    assert.equal(f.to, "<bob@example.com>", sent);
    assert.equal(f.relay, `127.0.0.1[127.0.0.1]:${sink.port}`, sent);
    assert.match(f.delay ?? "", /^\d+\.\d\d$/, sent);
    assert.equal(f.dsn, "2.0.0", sent);
    assert.match(f.status ?? "", /^sent \(250 .*\)$/, sent);
    const queued = fields(qmgr.find((l) => l.includes(`qmgr: ${id}: from=<`)) ?? "");
    assert.equal(queued.from, "<alice@sender.test>");
    assert.ok(smtpc.some((l) => l.includes(`smtpc: ${id}: `)), smtpc.join("\n"));
  } finally {
    await mta.stop();
  }
});
