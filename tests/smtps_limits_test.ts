// Session limits and admission of the real smtps worker over loopback TCP: max_threads, qmgr's and smar's
// connect verdicts (and qmgr hearing about every session it counted), every session-ending limit of the
// smtps section (bad commands, invalid addresses, commands that move no mail, transactions), lines too
// long, command timeouts, recipients per session, qmgr's disk notice, soft_bounce, strict_ehlo_checks,
// and the graceful stop.

import assert from "node:assert/strict";
import {
  HOST,
  runDialogue,
  SmtpClient,
  type Smtps,
  startSmtps,
  type Step,
} from "./helpers/smtps_dialogue.ts";

/** Waits until qmgr has heard that `n` sessions ended. */
async function sessionsEnded(s: Smtps, n: number): Promise<void> {
  for (let i = 0; i < 500 && s.closed.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.closed.length, n, "the session did not end");
}

Deno.test("smtps admits a connection only when qmgr and smar agree", async (t) => {
  const s = await startSmtps();
  const cases: [label: string, policy: Partial<Smtps["policy"]>, greeting: string, qmgrCounts: boolean][] = [
    ["both accept: the greeting", {}, `220 ${HOST} ESMTP`, true],
    ["qmgr refuses: its 421", { connection: "refuse" }, `421 4.7.0 ${HOST} Too many connections`, false],
    [
      "qmgr is unreachable: 421 4.3.0",
      { connection: "fail" },
      `421 4.3.0 ${HOST} Service temporarily unavailable`,
      false,
    ],
    ["smar rejects: 554", { connect: "reject" }, "554 5.7.1 Go away", true],
    [
      "smar tempfails: 421",
      { connect: "tempfail" },
      `421 4.3.0 ${HOST} Service temporarily unavailable`,
      true,
    ],
  ];
  try {
    for (const [label, policy, greeting, qmgrCounts] of cases) {
      await t.step(label, async () => {
        Object.assign(s.policy, { connection: "accept", connect: "accept" }, policy);
        const closedBefore = s.closed.length;
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, greeting]]);
          if (greeting.startsWith("220")) await runDialogue(c, [["QUIT", 221]]);
          assert.ok(await c.closedByServer());
          if (qmgrCounts) await sessionsEnded(s, closedBefore + 1);
          else assert.equal(s.closed.length, closedBefore, "qmgr hears conn_close only for what it counted");
        } finally {
          c.close();
        }
      });
    }
    assert.ok(s.opened.every((ip) => ip === "127.0.0.1"));
  } finally {
    await s.stop();
  }
});

Deno.test("smtps refuses sessions over max_threads with 421 and admits again when one ends", async () => {
  // The plain limit: no stress mode, which would give an idle session's slot to the newcomer.
  const s = await startSmtps({ max_threads: 2, stress_threshold: 0 });
  const clients: SmtpClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      clients.push(await SmtpClient.connect(s.port));
      await runDialogue(clients[i], [[null, 220]]);
    }
    const third = await SmtpClient.connect(s.port);
    clients.push(third);
    await runDialogue(third, [[null, `421 4.3.2 ${HOST} Too many sessions, try again later`]]);
    assert.ok(await third.closedByServer());
    assert.equal(s.opened.length, 2, "a session over the limit never reaches qmgr");
    await runDialogue(clients[0], [["QUIT", 221]]);
    await sessionsEnded(s, 1);
    const fourth = await SmtpClient.connect(s.port);
    clients.push(fourth);
    await runDialogue(fourth, [[null, 220]]);
  } finally {
    for (const c of clients) c.close();
    await s.stop();
  }
});

Deno.test("smtps closes the session after max_bad_commands_per_session bad commands", async (t) => {
  const s = await startSmtps({ max_bad_commands_per_session: 3 });
  try {
    await t.step("three bad commands, one at a time, then 421", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["BOGUS", "500 5.5.1"],
          ["NOOP", 250], // good commands do not count
          ["MAIL FROM:<a@b.example>", "503 5.5.1"],
          ["EHLO", ["501 5.5.4", `421 4.7.0 ${HOST} Too many errors`]],
        ]);
        assert.ok(await c.closedByServer());
      } finally {
        c.close();
      }
    });
    await t.step("a pipelined flood of bad commands gets three replies and 421", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          [Array(10).fill("BOGUS").join("\r\n"), ["500 5.5.1", "500 5.5.1", "500 5.5.1", "421 4.7.0"]],
        ]);
        assert.ok(await c.closedByServer());
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps answers 500 5.5.2 to a command line over 512 octets and reads on", async () => {
  const s = await startSmtps({ max_bad_commands_per_session: 2 });
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["NOOP " + "x".repeat(505), "250 2.0.0"], // 510 + CRLF = 512 octets: allowed
      ["NOOP " + "x".repeat(506), "500 5.5.2 Line too long"],
      ["NOOP", 250],
      ["X".repeat(100_000), ["500 5.5.2", "421 4.7.0"]], // it counts as a bad command
    ]);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps answers 421 4.4.2 when a command does not arrive within io_timeout", async (t) => {
  const s = await startSmtps({ io_timeout: 200 });
  try {
    for (const [label, partial] of [["nothing sent", ""], ["half a line sent", "MAIL FROM:<a@b"]]) {
      await t.step(label, async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
          if (partial) await c.send(partial);
          await runDialogue(c, [[null, `421 4.4.2 ${HOST} Error: timeout exceeded`]]);
          assert.ok(await c.closedByServer());
        } finally {
          c.close();
        }
      });
    }
  } finally {
    await s.stop();
  }
});

Deno.test("smtps limits recipients per session", async () => {
  const s = await startSmtps({ max_recipients_per_session: 2 });
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["EHLO client.example", 250],
      ["MAIL FROM:<>", 250],
      ["RCPT TO:<a@example.com>", 250],
      ["RSET", 250],
      ["MAIL FROM:<>", 250],
      ["RCPT TO:<b@example.com>", 250],
      ["RCPT TO:<c@example.com>", "452 4.5.3 Too many recipients"],
    ]);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps stops gracefully: idle sessions get 421, a message in DATA is finished first", async () => {
  const s = await startSmtps();
  const idle = await SmtpClient.connect(s.port);
  const busy = await SmtpClient.connect(s.port);
  let stopped: Promise<void> | undefined;
  try {
    await runDialogue(idle, [[null, 220], ["EHLO idle.example", 250]]);
    await runDialogue(busy, [
      [null, 220],
      ["EHLO busy.example", 250],
      ["MAIL FROM:<a@example.org>", 250],
      ["RCPT TO:<b@example.com>", 250],
      ["DATA", 354],
      ["Subject: in flight", []],
    ]);
    stopped = s.stop();
    await runDialogue(idle, [[null, `421 4.3.2 ${HOST} Service shutting down`]]);
    assert.ok(await idle.closedByServer());
    await runDialogue(busy, [["\r\nbody\r\n.", ["250 2.0.0", `421 4.3.2 ${HOST} Service shutting down`]]]);
    assert.ok(await busy.closedByServer());
    assert.equal(s.envelopes.length, 1);
    const refused = await SmtpClient.connect(s.port).then((c) => c.close(), (err) => err);
    assert.ok(refused instanceof Error, "the listener is closed");
  } finally {
    idle.close();
    busy.close();
    await (stopped ?? s.stop());
  }
});

/** A session that ends with `last` after `steps`, closed by the server. */
async function endsWith(port: number, steps: Step[]): Promise<void> {
  const c = await SmtpClient.connect(port);
  try {
    await runDialogue(c, [[null, 220], ...steps]);
    assert.ok(await c.closedByServer(), "the server closed the session");
  } finally {
    c.close();
  }
}

Deno.test("smtps ends the session with 421 at each session-ending limit of its section", async (t) => {
  const limits = {
    max_bad_commands_per_session: 0,
    max_bad_commands_per_transaction: 2,
    max_invalid_addresses_per_session: 3,
    max_invalid_addresses_per_transaction: 2,
    max_nop_commands_between_transactions: 3,
    max_nop_commands_in_transaction: 2,
    max_transactions: 2,
  };
  const s = await startSmtps(limits, { rejectRecipients: ["nobody@example.com"] });
  const EHLO: Step = ["EHLO client.example", 250];
  const MAIL: Step = ["MAIL FROM:<a@example.org>", 250];
  const cases: [label: string, steps: Step[]][] = [
    ["bad commands in one transaction", [
      EHLO,
      MAIL,
      ["RCPT TO:<x>", "501 5.1.3"],
      ["BOGUS", ["500 5.5.1", `421 4.7.0 ${HOST} Too many errors`]],
    ]],
    ["invalid addresses in one transaction: syntax and refusals by smar", [
      EHLO,
      MAIL,
      ["RCPT TO:<nobody@example.com>", "550 5.7.1"],
      ["RCPT TO:<bad@@example.com>", ["501 5.1.3", `421 4.7.0 ${HOST} Too many invalid addresses`]],
    ]],
    ["invalid addresses over the session", [
      EHLO,
      MAIL,
      ["RCPT TO:<nobody@example.com>", "550 5.7.1"],
      ["RSET", 250],
      MAIL,
      ["RCPT TO:<nobody@example.com>", "550 5.7.1"],
      ["RSET", 250],
      ["MAIL FROM:<a@@example.org>", ["501 5.1.7", `421 4.7.0 ${HOST} Too many invalid addresses`]],
    ]],
    ["commands that move no mail between transactions", [
      ["NOOP", 250],
      EHLO,
      ["VRFY x", 252],
      ["HELP", [214, `421 4.7.0 ${HOST} Too many commands that do not send mail`]],
    ]],
    ["commands that move no mail in a transaction", [
      EHLO,
      MAIL,
      ["NOOP", 250],
      ["NOOP", [250, `421 4.7.0 ${HOST} Too many commands that do not send mail`]],
    ]],
    ["transactions per session", [
      EHLO,
      MAIL,
      ["RSET", 250],
      MAIL,
      ["RSET", 250],
      ["MAIL FROM:<a@example.org>", `421 4.7.0 ${HOST} Too many transactions`],
    ]],
  ];
  try {
    for (const [label, steps] of cases) await t.step(label, () => endsWith(s.port, steps));
    await t.step("a transaction begun resets the count between transactions", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [[null, 220], EHLO, ["NOOP", 250], ["NOOP", 250], MAIL, ["RSET", 250], [
          "NOOP",
          250,
        ], ["QUIT", 221]]);
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps answers MAIL with 452 4.3.1 while qmgr says the queue's disk is low", async () => {
  const s = await startSmtps();
  const c = await SmtpClient.connect(s.port);
  const qmgr = s.harness.peers.get("qmgr")!;
  try {
    await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
    qmgr.notify("smtps", { type: "qmgr.disk_state", low: true, free: 1000 });
    await runDialogue(c, [["NOOP", 250], [
      "MAIL FROM:<a@example.org>",
      "452 4.3.1 Insufficient system storage",
    ]]);
    qmgr.notify("smtps", { type: "qmgr.disk_state", low: false, free: 10_000_000 });
    await runDialogue(c, [["NOOP", 250], ["MAIL FROM:<a@example.org>", 250], ["QUIT", 221]]);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps with soft_bounce turns refusals 5yz into 4yz and leaves protocol errors 500-504", async () => {
  const s = await startSmtps({ flags: ["8bitmime", "soft_bounce"] }, {
    rejectRecipients: ["nobody@example.com"],
  });
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["BOGUS", "500 5.5.1 Command unrecognized"],
      ["EHLO client.example", 250],
      ["MAIL FROM:<a@example.org>", 250],
      ["RCPT TO:<nobody@example.com>", "450 4.7.1 Relaying denied"],
      ["RCPT TO:<bad@@x>", "501 5.1.3"],
      ["VRFY", "501 5.5.4"],
      ["DATA", "454 4.5.1 No valid recipients"],
      ["QUIT", 221],
    ]);
  } finally {
    c.close();
    await s.stop();
  }
  await t_connectRefusal();
});

/** soft_bounce before the greeting: a 554 from smar goes out as 421 (RFC 5321 3.1 allows no 454 there). */
async function t_connectRefusal(): Promise<void> {
  const s = await startSmtps({ flags: ["soft_bounce"] }, { connect: "reject" });
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [[null, "421 4.3.0"]]);
  } finally {
    c.close();
    await s.stop();
  }
}

Deno.test("smtps with strict_ehlo_checks takes only a domain name or an address literal", async () => {
  const s = await startSmtps({ flags: ["strict_ehlo_checks"] });
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["EHLO bad_name!", "501 5.5.2"],
      ["EHLO two words.example", "501 5.5.2"],
      ["HELO [300.1.1.1]", "501 5.5.2"],
      ["HELO [192.0.2.1]", 250],
      ["EHLO client.example", 250],
      ["QUIT", 221],
    ]);
  } finally {
    c.close();
    await s.stop();
  }
});
