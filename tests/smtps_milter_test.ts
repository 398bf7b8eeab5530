// The policy milter against a real milter: tests/fixtures/milter/test_milter.py on Debian's
// python3-milter (libmilter itself), started on loopback, asked by the real smtps worker over the milter
// protocol. Its reject and tempfail at RCPT and end of message, its header changes, body replacement,
// recipient and sender changes, discard and quarantine all take effect; the macros arrive; malformed
// header changes are refused and logged.

import assert from "node:assert/strict";
import type { PolicyMilterConfig } from "../config/types.ts";
import { cdbText } from "./helpers/cdb.ts";
import { haveTool, type Process, PYTHON, startTestMilter } from "./helpers/filters.ts";
import { runDialogue, SmtpClient, type Smtps, startSmtps } from "./helpers/smtps_dialogue.ts";

function milterConfig(port: number, more: Partial<PolicyMilterConfig> = {}): PolicyMilterConfig {
  return {
    socket: { type: "inet", address: "127.0.0.1", port },
    timeout: 10_000,
    flags: [],
    default_action: "tempfail",
    ...more,
  };
}

async function withMilter(fn: (smtps: Smtps, milter: Process, logFile: string) => Promise<void>) {
  if (!await haveTool(PYTHON, "python3 with python3-milter")) return;
  const logFile = await Deno.makeTempFile({ prefix: "milter-log-" });
  const milter = await startTestMilter(logFile);
  const smtps = await startSmtps({ policy_milter: [milterConfig(milter.port)] }, {}, {
    net: [`127.0.0.1:${milter.port}`],
  });
  try {
    await fn(smtps, milter, logFile);
  } finally {
    await smtps.stop();
    await milter.stop();
    await Deno.remove(logFile);
  }
}

/** Sends one message in a session of its own; returns the final reply line. */
async function send(port: number, subject: string, rcpts = ["bob@example.com"], extra = ""): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["EHLO client.test", 250],
      ["MAIL FROM:<alice@sender.test>", 250],
      ...rcpts.map((r): [string, number] => [`RCPT TO:<${r}>`, 250]),
      ["DATA", 354],
    ]);
    await c.send(`Subject: ${subject}\r\n${extra}From: alice@sender.test\r\n\r\nHello.\r\n.\r\n`);
    const r = await c.reply(15_000);
    await c.send("QUIT\r\n");
    return r.lines.at(-1)!;
  } finally {
    c.close();
  }
}

async function stored(smtps: Smtps): Promise<string> {
  return await cdbText(smtps.envelopes.at(-1)!.cdbPath);
}

Deno.test("a real milter's header change, macros and queue id reach it and take effect", async () => {
  await withMilter(async (smtps, _m, logFile) => {
    const reply = await send(smtps.port, "hello");
    assert.match(reply, /^250 2\.0\.0 Ok: queued as /);
    const content = await stored(smtps);
    assert.match(content, /\r\nX-Test-Milter: checked by test milter\r\n\r\nHello\.\r\n$/);
    const log = await Deno.readTextFile(logFile);
    const id = smtps.envelopes[0].id;
    assert.match(
      log,
      /^connect \[127\.0\.0\.1\] 127\.0\.0\.1 j=mx\.test\.example client_addr=127\.0\.0\.1 daemon_name=MTA$/m,
    );
    assert.match(log, /^helo client\.test$/m);
    assert.match(log, /^mail <alice@sender\.test> mail_addr=alice@sender\.test auth_authen=None$/m);
    assert.match(log, /^rcpt <bob@example\.com> rcpt_addr=bob@example\.com$/m);
    assert.match(log, /^header Subject 'hello'$/m);
    assert.match(log, new RegExp(`^data i=${id}$`, "m"));
    assert.match(log, new RegExp(`^eoh i=${id}$`, "m"));
    assert.match(log, new RegExp(`^eom hello i=${id}$`, "m"));
  });
});

Deno.test("a real milter's reject and tempfail at RCPT, DATA and end of message answer the client", async () => {
  await withMilter(async (smtps) => {
    const c = await SmtpClient.connect(smtps.port);
    try {
      await runDialogue(c, [
        [null, 220],
        ["EHLO client.test", 250],
        ["MAIL FROM:<alice@sender.test>", 250],
        ["RCPT TO:<reject@example.com>", "550 5.7.1 Rejected by test milter"],
        ["RCPT TO:<tempfail@example.com>", "451 4.7.1"],
        ["RCPT TO:<bob@example.com>", 250],
        ["DATA", 354],
        ["Subject: reject\r\n\r\nspam\r\n.", "554 5.7.1 Message refused by test milter"],
        ["MAIL FROM:<alice@sender.test>", 250],
        ["RCPT TO:<bob@example.com>", 250],
        ["DATA", 354],
        ["Subject: tempfail\r\n\r\nlater\r\n.", "451 4.7.1"],
        ["MAIL FROM:<alice@sender.test>", 250],
        ["RCPT TO:<nodata@example.com>", 250],
        ["DATA", "554 5.7.1 No data for you"],
        ["QUIT", 221],
      ]);
    } finally {
      c.close();
    }
    assert.equal(smtps.envelopes.length, 0);
  });
});

Deno.test("a real milter's header, body, sender and recipient changes are carried out", async () => {
  await withMilter(async (smtps) => {
    assert.match(await send(smtps.port, "rewrite", ["bob@example.com"], "X-Remove-Me: yes\r\n"), /^250 /);
    const env = smtps.envelopes[0];
    assert.equal(env.sender, "rewritten@example.com");
    const content = await stored(smtps);
    assert.match(content, /^X-First: inserted first\r\nReceived: /);
    assert.match(content, /\r\nSubject: rewritten by test milter\r\n/);
    assert.doesNotMatch(content, /X-Remove-Me/);
    assert.ok(content.endsWith("\r\n\r\nA new body.\r\nSecond line.\r\n"), content);
    assert.equal(env.size, new TextEncoder().encode(content).length);

    assert.match(await send(smtps.port, "copy", ["bob@example.com", "drop@example.com"]), /^250 /);
    assert.deepEqual(smtps.envelopes[1].recipients.map((r) => r.address), [
      "bob@example.com",
      "copy@example.com",
    ]);
  });
});

Deno.test("a real milter's discard drops the message, its quarantine holds it, bad changes are refused", async () => {
  await withMilter(async (smtps) => {
    assert.match(await send(smtps.port, "discard"), /^250 2\.0\.0 Ok: queued as /);
    assert.equal(smtps.envelopes.length, 0);
    assert.match(await send(smtps.port, "quarantine"), /^250 /);
    assert.equal(smtps.envelopes[0].quarantine, "held by test milter");
    assert.match(await send(smtps.port, "badheader"), /^250 /);
    const content = await stored(smtps);
    assert.match(content, /\r\nX-Good: kept\r\n/);
    assert.doesNotMatch(content, /Bad Name|X-Bad-Fold/);
    assert.deepEqual(smtps.envelopes[1].recipients.map((r) => r.address), [
      "bob@example.com",
      "added@example.com",
    ]);
  });
});
