// smtps against hostile and broken clients over loopback TCP: every SMTP smuggling variant (never two
// messages from one DATA), bare CR and LF in commands, clients that talk before the greeting or pipeline
// where RFC 2920 forbids it, a client trickling a byte at a time (cut at io_timeout), and long data lines
// kept intact.

import assert from "node:assert/strict";
import { cdbFiles, HOST, runDialogue, SmtpClient, type Smtps, startSmtps } from "./helpers/smtps_dialogue.ts";
import { cdbText } from "./helpers/cdb.ts";

const SMUGGLED = "MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n" +
  "Subject: smuggled\r\n\r\nevil\r\n";

/** The line-end variants attackers use to end DATA early, each followed by a second message. */
const VARIANTS: [label: string, bytes: string][] = [
  ["LF.LF", "\n.\n"],
  ["LF.CRLF", "\n.\r\n"],
  ["CRLF.LF", "\r\n.\n"],
  ["CR.CR", "\r.\r"],
  ["CR.CRLF", "\r.\r\n"],
  ["CRLF.CR", "\r\n.\r"],
  ["CR.LF", "\r.\n"],
  ["LF.CR", "\n.\r"],
  ["CRLF NUL . CRLF", "\r\n\0.\r\n"],
];

/** Waits until qmgr has heard that `n` sessions ended. */
async function sessionsEnded(s: Smtps, n: number): Promise<void> {
  for (let i = 0; i < 500 && s.closed.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.closed.length, n, "the session did not end");
}

/** Sends one DATA with `variant` and a smuggled message behind it; returns the replies after the 354. */
async function smuggle(s: Smtps, variant: string): Promise<string[]> {
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["EHLO client.example", 250],
      ["MAIL FROM:<sender@example.org>", 250],
      ["RCPT TO:<rcpt@example.com>", 250],
      ["DATA", 354],
    ]);
    await c.send(`Subject: first\r\n\r\nbody${variant}${SMUGGLED}.\r\nQUIT\r\n`);
    const replies: string[] = [];
    for (;;) {
      const r = await c.reply().catch(() => undefined);
      if (!r) break;
      replies.push(r.lines.at(-1)!.slice(0, 9));
      if (r.code === 221 || r.code >= 500) break;
    }
    assert.ok(await c.closedByServer());
    return replies;
  } finally {
    c.close();
  }
}

Deno.test("smtps never turns one DATA into two messages, whatever the line ends", async (t) => {
  for (const lenient of [false, true]) {
    const s = await startSmtps(lenient ? { bare_newline_clients: ["127.0.0.1"] } : {});
    try {
      for (const [label, variant] of VARIANTS) {
        const clean = !/[\r\n]/.test(variant.replace(/\r\n/g, "")); // only CRLF: nothing bare
        const nul = variant.includes("\0"); // content with a NUL is refused (554 5.6.0), lenient or not
        const want = nul
          ? "554 5.6.0 and no message"
          : lenient || clean
          ? "one message holding the smuggled text"
          : "554 and no message";
        await t.step(
          `${lenient ? "a client allowed bare line ends" : "a strict session"}, ${label}: ${want}`,
          async () => {
            const before = s.envelopes.length;
            const replies = await smuggle(s, variant);
            const added = s.envelopes.slice(before);
            assert.ok(added.length <= 1, `never two messages (got ${added.length})`);
            if (nul) {
              assert.deepEqual(replies, ["554 5.6.0"]);
              assert.equal(added.length, 0);
            } else if (lenient || clean) {
              assert.deepEqual(replies, ["250 2.0.0", "221 2.0.0"]);
              assert.equal(added.length, 1);
              assert.deepEqual(added[0].recipients, [{ address: "rcpt@example.com" }]);
              const content = await cdbText(added[0].cdbPath);
              assert.ok(
                content.includes("RCPT TO:<victim@example.com>"),
                "the smuggled commands are content",
              );
            } else {
              assert.deepEqual(replies, ["554 5.5.2"]);
              assert.equal(added.length, 0);
            }
          },
        );
      }
      await t.step("no files left behind but the committed ones", async () => {
        await sessionsEnded(s, VARIANTS.length);
        assert.equal((await cdbFiles(s.cdbDir)).length, s.envelopes.length);
      });
    } finally {
      await s.stop();
    }
  }
});

Deno.test("smtps refuses bare CR or LF in commands and closes, unless the client is allowed them", async (t) => {
  const strict = await startSmtps();
  const lenient = await startSmtps({ bare_newline_clients: ["10.0.0.0/8", "127.0.0.1/32"] });
  try {
    const cases: [label: string, s: Smtps, send: string, want: string][] = [
      [
        "a command ended by a bare LF",
        strict,
        "EHLO client.example\n",
        `554 5.5.2 ${HOST} Error: bare CR or LF`,
      ],
      ["a bare CR inside a command", strict, "NOOP\rRSET\r\n", "554 5.5.2"],
      ["a bare LF from an allowed client", lenient, "EHLO client.example\n", "250 "],
      ["a bare CR from an allowed client stays in the line", lenient, "NOOP a\rb\r\n", "250 2.0.0"],
    ];
    for (const [label, s, send, want] of cases) {
      await t.step(label, async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, 220]]);
          await c.send(send);
          const r = await c.reply();
          assert.ok(r.lines.at(-1)!.startsWith(want), r.lines.join(" | "));
          if (want.startsWith("554")) assert.ok(await c.closedByServer());
        } finally {
          c.close();
        }
      });
    }
  } finally {
    await strict.stop();
    await lenient.stop();
  }
});

Deno.test("smtps refuses a client that talks before the greeting", async () => {
  const s = await startSmtps({}, { connectDelay: 300 });
  const c = await SmtpClient.connect(s.port);
  try {
    await c.send("EHLO early.example\r\n");
    await runDialogue(c, [[null, `554 5.5.0 ${HOST} Error: talked before the greeting`]]);
    assert.ok(await c.closedByServer());
    await sessionsEnded(s, 1);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps enforces the pipelining rules of RFC 2920 with 554 5.5.0", async (t) => {
  const s = await startSmtps();
  const MAIL = "MAIL FROM:<a@example.org>";
  const RCPT = "RCPT TO:<b@example.com>";
  const cases: [label: string, before: [string, number][], batch: string, ok: number][] = [
    ["nothing may follow EHLO", [], `EHLO client.example\r\n${MAIL}`, 0],
    ["no pipelining after HELO", [["HELO client.example", 250]], `${MAIL}\r\n${RCPT}`, 0],
    ["no pipelining before EHLO", [], "RSET\r\nRSET", 0],
    [
      "nothing may follow DATA before its 354",
      [["EHLO client.example", 250]],
      `${MAIL}\r\n${RCPT}\r\nDATA\r\nSubject: x`,
      2,
    ],
    ["nothing may follow NOOP", [["EHLO client.example", 250]], "NOOP\r\nRSET", 0],
    ["nothing may follow QUIT", [["EHLO client.example", 250]], "QUIT\r\nNOOP", 0],
    ["nothing may follow VRFY", [["EHLO client.example", 250]], "VRFY x\r\nRSET", 0],
  ];
  try {
    for (const [label, before, batch, ok] of cases) {
      await t.step(label, async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, 220], ...before, [batch, [...Array(ok).fill(250), "554 5.5.0"]]]);
          assert.ok(await c.closedByServer());
        } finally {
          c.close();
        }
      });
    }
    await t.step("MAIL, RCPT and RSET may be pipelined after EHLO, ending with DATA", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          [`RSET\r\n${MAIL}\r\n${RCPT}\r\nDATA`, [250, 250, 250, 354]],
          ["x\r\n.\r\nQUIT", [250, 221]],
        ]);
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

/** Sends `text` one byte every `ms` until done or the server answers; resolves with that answer. */
async function trickle(c: SmtpClient, text: string, ms: number): Promise<string> {
  let answered = false;
  const answer = c.reply(10_000).then((r) => {
    answered = true;
    return r.lines.at(-1)!;
  });
  for (const ch of text) {
    if (answered) break;
    await new Promise((r) => setTimeout(r, ms));
    try {
      await c.send(ch);
    } catch {
      break; // the server closed first
    }
  }
  return await answer;
}

Deno.test("smtps cuts a client trickling a byte at a time at io_timeout", async (t) => {
  const s = await startSmtps({ io_timeout: 1_000 });
  try {
    await t.step("a command line that never ends in time", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [[null, 220]]);
        const answer = await trickle(c, "EHLO a.very.slow.client.example.org.trickling.forever\r\n", 60);
        assert.ok(answer.startsWith(`421 4.4.2 ${HOST} Error: timeout exceeded`), answer);
      } finally {
        c.close();
      }
    });
    await t.step("a data block that never ends in time, and no file left", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          ["MAIL FROM:<a@example.org>", 250],
          ["RCPT TO:<b@example.com>", 250],
          ["DATA", 354],
        ]);
        const answer = await trickle(c, "Subject: slow\r\n\r\n" + "x".repeat(200) + "\r\n.\r\n", 40);
        assert.ok(answer.startsWith("421 4.4.2"), answer);
        await sessionsEnded(s, 2);
        assert.deepEqual(await cdbFiles(s.cdbDir), []);
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps keeps long data lines intact", async () => {
  const s = await startSmtps();
  const c = await SmtpClient.connect(s.port);
  try {
    const line = "y".repeat(100_000);
    await runDialogue(c, [
      [null, 220],
      ["EHLO client.example", 250],
      ["MAIL FROM:<a@example.org>", 250],
      ["RCPT TO:<b@example.com>", 250],
      ["DATA", 354],
      [`Subject: long\r\n\r\n${line}\r\n.`, 250],
      ["QUIT", 221],
    ]);
    const content = await cdbText(s.envelopes[0].cdbPath);
    assert.ok(content.endsWith(`Subject: long\r\n\r\n${line}\r\n`));
  } finally {
    c.close();
    await s.stop();
  }
});
