// A policy milter that fails: one that cannot be reached is skipped (no flag), ends the session with 421
// 4.7.0 (abort), or is tried again by the next session (accept_but_reconnect); one that hangs past its
// timeout, closes mid-message or answers garbage gets its default_action (451 4.7.1 by default, or
// accept), one log line, no crash; with abort nothing is accepted without the milter's checks.

import assert from "node:assert/strict";
import type { PolicyMilterConfig } from "../config/types.ts";
import { freePort } from "./helpers/harness.ts";
import { type Misbehaviour, startHostileMilter } from "./helpers/hostile_milter.ts";
import { runDialogue, SmtpClient, startSmtps, type Step } from "./helpers/smtps_dialogue.ts";

function milter(port: number, more: Partial<PolicyMilterConfig> = {}): PolicyMilterConfig {
  return {
    socket: { type: "inet", address: "127.0.0.1", port },
    timeout: 1_000,
    flags: [],
    default_action: "tempfail",
    ...more,
  };
}

const MESSAGE: Step[] = [
  ["EHLO client.test", 250],
  ["MAIL FROM:<alice@sender.test>", 250],
  ["RCPT TO:<bob@example.com>", 250],
  ["DATA", 354],
];

async function session(port: number, steps: Step[]): Promise<void> {
  const c = await SmtpClient.connect(port);
  try {
    await runDialogue(c, steps);
  } finally {
    c.close();
  }
}

Deno.test("a milter that cannot be reached is skipped, or ends the session under abort", async () => {
  const down = freePort(); // nothing listens there
  const smtps = await startSmtps({}, {}, {
    more: [
      { name: "SKIP", policy_milter: [milter(down)] },
      { name: "ABORT", policy_milter: [milter(down, { flags: ["abort"] })] },
      { name: "RECONNECT", policy_milter: [milter(down, { flags: ["accept_but_reconnect"] })] },
    ],
    net: [`127.0.0.1:${down}`],
  });
  try {
    await session(smtps.ports.SKIP, [[null, 220], ...MESSAGE, ["\r\nhello\r\n.", 250], ["QUIT", 221]]);
    await session(smtps.ports.RECONNECT, [[null, 220], ...MESSAGE, ["\r\nhello\r\n.", 250], ["QUIT", 221]]);
    const c = await SmtpClient.connect(smtps.ports.ABORT);
    try {
      const r = await c.reply();
      assert.match(r.lines[0], /^421 4\.7\.0 /);
      assert.ok(await c.closedByServer());
    } finally {
      c.close();
    }
    assert.equal(smtps.envelopes.length, 2);
  } finally {
    await smtps.stop();
  }
});

Deno.test("a milter that hangs, closes or answers garbage gets its default action, or 421 under abort", async (t) => {
  const cases: [string, string, Misbehaviour, Partial<PolicyMilterConfig>, Step[]][] = [
    ["hangs at MAIL: 451 4.7.1", "M", "hang", {}, [
      ["EHLO client.test", 250],
      ["MAIL FROM:<alice@sender.test>", "451 4.7.1"],
      ["MAIL FROM:<alice@sender.test>", "451 4.7.1"], // the rest of the session too
    ]],
    ["closes during the body: 451 4.7.1", "B", "close", {}, [...MESSAGE, ["\r\nhello\r\n.", "451 4.7.1"]]],
    ["answers garbage at RCPT: 451 4.7.1", "R", "garbage", {}, [
      ["EHLO client.test", 250],
      ["MAIL FROM:<alice@sender.test>", 250],
      ["RCPT TO:<bob@example.com>", "451 4.7.1"],
    ]],
    ["sends a bad frame at end of message: 451 4.7.1", "E", "bad_frame", {}, [
      ...MESSAGE,
      ["\r\nhello\r\n.", "451 4.7.1"],
    ]],
    ["hangs at end of message with default_action accept: accepted", "E", "hang", {
      default_action: "accept",
    }, [...MESSAGE, ["\r\nhello\r\n.", 250]]],
    ["closes at end of message under abort: 421, nothing stored", "E", "close", { flags: ["abort"] }, [
      ...MESSAGE,
      ["\r\nhello\r\n.", "421 4.7.0"],
    ]],
  ];
  for (const [label, at, how, more, steps] of cases) {
    await t.step(label, async () => {
      const hostile = startHostileMilter(at, how);
      const smtps = await startSmtps({ policy_milter: [milter(hostile.port, more)] }, {}, {
        net: [`127.0.0.1:${hostile.port}`],
      });
      try {
        await session(smtps.port, [[null, 220], ...steps]);
        assert.equal(smtps.envelopes.length, label.includes("accepted") ? 1 : 0);
        assert.equal(hostile.connections, 1);
      } finally {
        await smtps.stop();
        await hostile.close();
      }
    });
  }
});
