// SMTP dialogues against the real smtps worker over loopback TCP, with qmgr and smar played by the test:
// every command's replies (codes and enhanced status codes), sequence errors, policy refusals from smar,
// recipient limits, DSN and SMTPUTF8 parameters reaching the envelope, pipelined batches (RFC 2920) and
// what smar's verdicts may add (alias expansion, discard, a refusal held until DATA).

import assert from "node:assert/strict";
import { cdbFiles, HOST, runDialogue, SmtpClient, startSmtps, type Step } from "./helpers/smtps_dialogue.ts";
import { cdbText } from "./helpers/cdb.ts";

const MAIL = "MAIL FROM:<sender@example.org>";
const RCPT = "RCPT TO:<rcpt@example.com>";
const DENIED = "denied@example.com";
const LATER = "later@example.com";

const cases: [label: string, steps: Step[]][] = [
  ["a whole transaction after EHLO", [
    ["EHLO client.example", 250],
    [MAIL, "250 2.1.0 Ok"],
    [RCPT, "250 2.1.5 Ok"],
    ["DATA now", "501 5.5.4"],
    ["DATA", "354 End data with <CR><LF>.<CR><LF>"],
    ["Subject: test\r\n\r\nbody\r\n.", "250 2.0.0 Ok: queued as "],
    ["QUIT", "221 2.0.0"],
  ]],
  ["a whole transaction after HELO", [
    ["HELO client.example", `250 ${HOST}`],
    ["MAIL FROM:<>", 250],
    ["RCPT TO:<postmaster>", 250],
    ["DATA", 354],
    [".", "250 2.0.0"],
    ["QUIT", 221],
  ]],
  ["commands that need no HELO", [
    ["NOOP", "250 2.0.0 Ok"],
    ["NOOP anything", "250 2.0.0"],
    ["RSET", "250 2.0.0"],
    ["VRFY someone", "252 2.5.2 Cannot VRFY user, but will accept message"],
    ["HELP", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"],
    ["EXPN staff", "502 5.5.1 Command not implemented"],
    ["QUIT", "221 2.0.0"],
  ]],
  ["mail commands before HELO are out of sequence", [
    [MAIL, "503 5.5.1"],
    [RCPT, "503 5.5.1"],
    ["DATA", "503 5.5.1"],
  ]],
  ["unknown commands and missing arguments", [
    ["XYZZY", "500 5.5.1 Command unrecognized"],
    ["", "500 5.5.1"],
    ["EHLO", "501 5.5.4"],
    ["HELO", "501 5.5.4"],
    ["VRFY", "501 5.5.4"],
    ["RSET now", "501 5.5.4"],
    ["QUIT now", "501 5.5.4"],
  ]],
  ["MAIL and RCPT out of sequence", [
    ["EHLO client.example", 250],
    [RCPT, "503 5.5.1"],
    ["DATA", "503 5.5.1"],
    [MAIL, 250],
    [MAIL, "503 5.5.1"],
    ["DATA", "554 5.5.1 No valid recipients"],
  ]],
  ["DATA after only refused recipients", [
    ["EHLO client.example", 250],
    [MAIL, 250],
    [`RCPT TO:<${DENIED}>`, "550 5.7.1 Relaying denied"],
    [`RCPT TO:<${LATER}>`, "450 4.7.1 Greylisted"],
    ["DATA", "554 5.5.1 No valid recipients"],
  ]],
  ["bad addresses and parameters", [
    ["EHLO client.example", 250],
    ["MAIL FROM:sender@example.org", "501 5.1.7"],
    ["MAIL FROM:<sender@@example.org>", "501 5.1.7"],
    ["MAIL FROM:<sender@example.org> FOO=BAR", "555 5.5.4"],
    ["MAIL FROM:<sender@example.org> SIZE=x", "501 5.5.4"],
    ["MAIL TO:<sender@example.org>", "501 5.5.4"],
    ["MAIL FROM:<sender@example.org> SIZE=2000", "552 5.3.4 Message size exceeds fixed maximum message size"],
    ["MAIL FROM:<sender@example.org> SIZE=1000 BODY=8BITMIME", "250 2.1.0"],
    ["RCPT TO:<rcpt@exa mple.com>", "501 5.1.3"],
    ["RCPT TO:<>", "501 5.1.3"],
    ["RCPT TO:<rcpt@example.com> XFOO=1", "555 5.5.4"],
    ["RCPT TO:<rcpt@example.com> NOTIFY=SOMETIMES", "501 5.5.4"],
    ["RCPT TO:<jörg@example.com>", "553 5.6.7 Non-ASCII address requires SMTPUTF8"],
    [`RCPT TO:<${"r".repeat(65)}@example.com>`, "553 5.1.3"],
    ["RCPT FROM:<rcpt@example.com>", "501 5.5.4"],
    ["RCPT TO:<@relay.example:rcpt@example.com>", "250 2.1.5"],
  ]],
  ["ESMTP parameters after HELO", [
    ["HELO client.example", 250],
    ["MAIL FROM:<sender@example.org> SIZE=10", "555 5.5.4"],
  ]],
  ["a sender smar rejects", [
    ["EHLO client.example", 250],
    ["MAIL FROM:<spammer@example.net>", "550 5.7.1 Sender rejected"],
    ["MAIL FROM:<>", 250],
  ]],
  ["too many recipients in one transaction", [
    ["EHLO client.example", 250],
    [MAIL, 250],
    ["RCPT TO:<a@example.com>", 250],
    ["RCPT TO:<b@example.com>", 250],
    ["RCPT TO:<a@example.com>", "250 2.1.5"], // a repeat is not a new recipient
    ["RCPT TO:<c@example.com>", "452 4.5.3 Too many recipients"],
    ["DATA", 354],
    [".", 250],
    [MAIL, 250],
    ["RCPT TO:<c@example.com>", 250], // the limit is per transaction
  ]],
  ["RSET drops the transaction but keeps the session", [
    ["EHLO client.example", 250],
    [MAIL, 250],
    [RCPT, 250],
    ["RSET", "250 2.0.0"],
    [RCPT, "503 5.5.1"],
    [MAIL, 250],
  ]],
  ["EHLO again resets the transaction", [
    ["EHLO client.example", 250],
    [MAIL, 250],
    ["EHLO client.example", 250],
    [RCPT, "503 5.5.1"],
  ]],
  ["after a message the transaction is over, the session goes on", [
    ["EHLO client.example", 250],
    [MAIL, 250],
    [RCPT, 250],
    ["DATA", 354],
    [".", 250],
    [RCPT, "503 5.5.1"],
    ["DATA", "503 5.5.1"],
    [MAIL, 250],
  ]],
];

Deno.test("smtps answers each command with the reply RFC 5321 asks for", async (t) => {
  const s = await startSmtps({ max_message_size: 1000, max_recipients_per_transaction: 2 }, {
    rejectSenders: ["spammer@example.net"],
    rejectRecipients: [DENIED],
    tempfailRecipients: [LATER],
  });
  try {
    for (const [label, steps] of cases) {
      await t.step(label, async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, `220 ${HOST} ESMTP`], ...steps]);
        } finally {
          c.close();
        }
      });
    }
  } finally {
    await s.stop();
  }
});

Deno.test("smtps announces its extensions in the EHLO reply", async () => {
  const s = await startSmtps({ max_message_size: 12345 });
  const c = await SmtpClient.connect(s.port);
  try {
    const [, ehlo] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
    assert.deepEqual(ehlo.lines, [
      `250-${HOST}`,
      "250-PIPELINING",
      "250-8BITMIME",
      "250-SIZE 12345",
      "250-ENHANCEDSTATUSCODES",
      "250-DSN",
      "250-CHUNKING",
      "250 SMTPUTF8",
    ]);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps answers a pipelined batch in order, in one write", async (t) => {
  const s = await startSmtps({ max_nop_commands_between_transactions: 0 }, { rejectRecipients: [DENIED] });
  try {
    await t.step("MAIL, RCPT, RCPT, DATA sent at once get their replies together with the 354", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
        await c.send(`${MAIL}\r\n${RCPT}\r\nRCPT TO:<${DENIED}>\r\nDATA\r\n`);
        // The replies were flushed once, when the 354 had to go out: one read gets them all.
        const buf = new Uint8Array(4096);
        const n = await c.conn.read(buf);
        const text = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        assert.match(
          text,
          /^250 2\.1\.0 Ok\r\n250 2\.1\.5 Ok\r\n550 5\.7\.1 Relaying denied\r\n354 [^\r]*\r\n$/,
        );
        await runDialogue(c, [["hello\r\n.", "250 2.0.0"], ["QUIT", 221]]);
        assert.deepEqual(s.envelopes.at(-1)?.recipients, [{ address: "rcpt@example.com" }]);
      } finally {
        c.close();
      }
    });
    await t.step("a whole session in three writes: EHLO, commands to DATA, content with QUIT", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          [`${MAIL}\r\n${RCPT}\r\nDATA`, [250, 250, 354]],
          ["Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT", ["250 2.0.0", "221 2.0.0"]],
        ]);
        assert.ok(await c.closedByServer());
      } finally {
        c.close();
      }
    });
    await t.step("a flood of 3000 pipelined RSETs gets 3000 replies in order", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
        await c.send("RSET\r\n".repeat(3000) + "QUIT\r\n");
        for (let i = 0; i < 3000; i++) assert.equal((await c.reply()).code, 250, `reply ${i}`);
        await runDialogue(c, [[null, 221]]);
      } finally {
        c.close();
      }
    });
    await t.step("errors in a batch do not stop the commands after them", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          [`BOGUS\r\nMAIL FROM:<bad\r\n${MAIL}\r\nRSET\r\nQUIT`, [
            "500 5.5.1",
            "501 5.1.7",
            "250 2.1.0",
            "250 2.0.0",
            "221 2.0.0",
          ]],
        ]);
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps asks smar about each recipient with the transaction's sender", async () => {
  const s = await startSmtps();
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [
      [null, 220],
      ["EHLO client.example", 250],
      ["MAIL FROM:<Sender@EXAMPLE.org>", 250],
      ["RCPT TO:<One@Example.COM>", 250],
      ['RCPT TO:<"two words"@example.com>', 250],
      ["QUIT", 221],
    ]);
    assert.deepEqual(s.rcptChecks, [
      "Sender@example.org -> One@example.com",
      'Sender@example.org -> "two words"@example.com',
    ]);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps stores the DSN and SMTPUTF8 parameters in the envelope", async (t) => {
  const s = await startSmtps();
  try {
    await t.step("RET, ENVID, NOTIFY and ORCPT, xtext decoded", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          ["MAIL FROM:<a@example.org> RET=HDRS ENVID=id+2B1", 250],
          ["RCPT TO:<b@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;B+2Bx@example.com", 250],
          ["RCPT TO:<c@example.com> NOTIFY=NEVER", 250],
          ["DATA", 354],
          ["x\r\n.", 250],
          ["QUIT", 221],
        ]);
        const e = s.envelopes.at(-1)!;
        assert.equal(e.ret, "HDRS");
        assert.equal(e.envid, "id+1");
        assert.deepEqual(e.recipients, [
          { address: "b@example.com", notify: ["FAILURE", "DELAY"], orcpt: "rfc822;B+x@example.com" },
          { address: "c@example.com", notify: ["NEVER"] },
        ]);
        assert.equal(e.smtputf8, undefined);
      } finally {
        c.close();
      }
    });
    await t.step("SMTPUTF8 with UTF-8 addresses", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          ["MAIL FROM:<jörg@bücher.example> SMTPUTF8 BODY=8BITMIME", 250],
          ["RCPT TO:<用户@例子.广告>", 250],
          ["DATA", 354],
          ["Subject: grüße\r\n\r\nx\r\n.", 250],
          ["QUIT", 221],
        ]);
        const e = s.envelopes.at(-1)!;
        assert.equal(e.smtputf8, true);
        assert.equal(e.sender, "jörg@bücher.example");
        assert.deepEqual(e.recipients, [{ address: "用户@例子.广告" }]);
        const content = await cdbText(e.cdbPath);
        assert.match(content, /with UTF8SMTP id /);
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps applies what smar's verdicts say beyond accept and reject", async (t) => {
  const s = await startSmtps({ flags: ["8bitmime", "access", "delay_checks"] }, {
    rcptVerdict: (m) => {
      if (m.recipient === "list@example.com") {
        return { action: "accept", recipients: ["x@example.com", "y@example.net"] };
      }
      if (m.recipient === "grey@example.com") {
        return { action: "accept", dataReply: { code: 451, status: "4.7.1", text: "Greylisted, try later" } };
      }
      if (m.recipient === "drop@example.com") return { action: "accept", discard: true };
      return undefined;
    },
  });
  const session = (rcpt: string, last: string | number): Step[] => [
    [null, 220],
    ["EHLO client.example", 250],
    [MAIL, 250],
    [`RCPT TO:<${rcpt}> NOTIFY=FAILURE`, 250],
    ["DATA", typeof last === "number" ? 354 : last],
  ];
  try {
    await t.step(
      "an alias expanded by smar: its addresses in the envelope, ORCPT the one asked",
      async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [...session("list@example.com", 354), [".", 250]]);
          assert.deepEqual(s.envelopes.at(-1)!.recipients, [
            { address: "x@example.com", notify: ["FAILURE"], orcpt: "rfc822;list@example.com" },
            { address: "y@example.net", notify: ["FAILURE"], orcpt: "rfc822;list@example.com" },
          ]);
          const check = s.rcptMessages.at(-1)!;
          assert.deepEqual(check.context?.flags, ["8bitmime", "access", "delay_checks"]);
          assert.equal(check.context?.helo, "client.example");
        } finally {
          c.close();
        }
      },
    );
    await t.step("a refusal smar holds until DATA comes instead of the 354", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [...session("grey@example.com", "451 4.7.1 Greylisted, try later"), [
          RCPT,
          503,
        ]]);
      } finally {
        c.close();
      }
    });
    await t.step("a message smar says to discard gets 250 and is not committed", async () => {
      const before = s.envelopes.length;
      const files = await cdbFiles(s.cdbDir);
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [...session("drop@example.com", 354), [".", "250 2.0.0 Ok: queued as"]]);
        assert.equal(s.envelopes.length, before);
        assert.deepEqual(await cdbFiles(s.cdbDir), files, "the file is gone");
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});
