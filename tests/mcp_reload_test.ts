// Reloading the configuration of a running MTA (SIGHUP, through handleSignal() as the listener calls it):
// a good new configuration is applied live (smtpc's log level drops and its info lines stop), a broken one
// is refused with file:line:col and the running one kept, and one that needs other permissions (a new
// listen socket) is refused with what would change; mail keeps flowing throughout.

import assert from "node:assert/strict";
import { join } from "node:path";
import type { ReloadResult } from "../components/mcp/reload.ts";
import { handleSignal } from "../components/mcp/signals.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta, testConfigText, type TestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";

interface Setup {
  mta: TestMta;
  sink: Sink;
  conf: string;
  /** The configuration text the MTA started with, plus `extra`. */
  write(extra: string, port?: number): Promise<void>;
}

/** An MTA whose configuration file is on disk (so a reload reads it again) with logs in `<dir>/log`. */
async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "smx-reload-" });
  const sink = await startSink();
  const port = freePort();
  const conf = join(dir, "smx.conf");
  const write = (extra: string, p = port) =>
    Deno.writeTextFile(conf, testConfigText(dir, p) + `log { directory = "${dir}/log"; }\n` + extra);
  await write("smtpc { log_level = 9; }\n");
  const mta = await startTestMta({
    dir,
    smtpsPort: port,
    mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n`,
    configText: `log { directory = "${dir}/log"; }\nsmtpc { log_level = 9; }\n`,
  });
  return { mta, sink, conf, write };
}

async function teardown(s: Setup): Promise<void> {
  await s.mta.stop();
  await s.sink.close();
  await Deno.remove(s.mta.dir, { recursive: true });
}

/** Sends one message and waits until the sink has it; returns its queue id. */
async function relay(s: Setup, n: number): Promise<string> {
  const reply = await smtpSend(s.mta.port, {
    from: "a@sender.test",
    to: ["b@example.com"],
    body: `Subject: ${n}\r\n\r\nx\r\n`,
  });
  const id = /queued as ([0-9A-F]+)$/.exec(reply)?.[1];
  assert.ok(id, reply);
  await s.sink.waitFor(n, 15_000);
  return id;
}

const logOf = (s: Setup, name: string) => Deno.readTextFile(join(s.mta.dir, "log", `${name}.log`));

/** Waits until `name`'s log holds `text` (lines are written after the sink has the message). */
async function logged(s: Setup, name: string, text: string, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await logOf(s, name)).includes(text)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

Deno.test("SIGHUP applies a good configuration live", async () => {
  const s = await setup();
  try {
    const before = await relay(s, 1);
    await s.write("smtpc { log_level = 2; }\n"); // errors only
    const result = await handleSignal(s.mta.mta, "SIGHUP") as ReloadResult;
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(s.mta.mta.supervisor.config.smtpc.log_level, 2);
    assert.ok(await logged(s, "smtpc", `]: ${before}: `), "smtpc logged the first delivery");
    const after = await relay(s, 2);
    // qmgr logs the result after smtpc has reported it: once qmgr's line is there, smtpc's would be too.
    assert.ok(
      await logged(s, "qmgr", `]: ${after}: to=<b@example.com>`),
      "qmgr logged the second delivery",
    );
    assert.ok(!(await logOf(s, "smtpc")).includes(after), "smtpc no longer logs deliveries at log_level 2");
    assert.match(await logOf(s, "mcp"), /smx\/mcp\[\d+\]: configuration reloaded from .*smx\.conf\n/);
  } finally {
    await teardown(s);
  }
});

Deno.test("SIGHUP refuses a broken configuration and keeps the running one", async () => {
  const s = await setup();
  try {
    const running = s.mta.mta.supervisor.config;
    await s.write("smtpc { log_level = 2; }\nsmtpc { log_level = ; }\n");
    const result = await handleSignal(s.mta.mta, "SIGHUP") as ReloadResult;
    assert.equal(result.ok, false);
    const reason = result.ok ? "" : result.reason;
    assert.match(reason, new RegExp(`^${s.conf.replaceAll(".", "\\.")}:\\d+:\\d+: `));
    assert.equal(s.mta.mta.supervisor.config, running);
    const id = await relay(s, 1);
    assert.ok(await logged(s, "smtpc", `]: ${id}: `), "smtpc still logs at its old level");
    assert.match(
      await logOf(s, "mcp"),
      /smx\/mcp\[\d+\]: error: reload refused, keeping the running configuration: .*smx\.conf:\d+:\d+: /,
    );
  } finally {
    await teardown(s);
  }
});

Deno.test("SIGHUP refuses a configuration that needs other permissions, naming them", async () => {
  const s = await setup();
  try {
    const other = freePort();
    await s.write("smtpc { log_level = 9; }\n", other);
    const result = await handleSignal(s.mta.mta, "SIGHUP") as ReloadResult;
    assert.equal(result.ok, false);
    const reason = result.ok ? "" : result.reason;
    assert.ok(reason.includes(`smtps net +127.0.0.1:${other} -127.0.0.1:${s.mta.port}`), reason);
    assert.match(reason, /restart the MTA to apply it$/);
    await relay(s, 1); // still listening where it was
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: other }));
  } finally {
    await teardown(s);
  }
});
