// DATA against the real smtps worker: the exact bytes it stores in the CDB (our Received: header first,
// then the content dot-unstuffed with its line endings as sent), the envelope it commits, and every way a
// message can fail — too big, too many hops, a dropped connection, a timeout, a failed commit — leaving
// no file behind.

import assert from "node:assert/strict";
import { cdbPath } from "../components/mail/cdb.ts";
import { cdbFiles, HOST, runDialogue, SmtpClient, type Smtps, startSmtps } from "./helpers/smtps_dialogue.ts";
import { cdbText } from "./helpers/cdb.ts";
import { readCdbContent } from "../components/mail/cdb.ts";

const DATE = /[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}/;

/** Opens a session and a transaction up to the 354. */
async function openData(s: Smtps, recipients = ["rcpt@example.com"], greeting = "EHLO client.example") {
  const c = await SmtpClient.connect(s.port);
  await runDialogue(c, [
    [null, 220],
    [greeting, 250],
    ["MAIL FROM:<sender@example.org>", 250],
    ...recipients.map((r): [string, number] => [`RCPT TO:<${r}>`, 250]),
    ["DATA", 354],
  ]);
  return c;
}

/** Waits until qmgr has heard that `n` sessions ended (the session's cleanup is done by then). */
async function sessionsEnded(s: Smtps, n: number): Promise<void> {
  for (let i = 0; i < 500 && s.closed.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.closed.length, n, "the session did not end");
}

Deno.test("smtps stores the content behind its Received: header, byte for byte", async (t) => {
  const s = await startSmtps({ bare_newline_clients: ["127.0.0.0/8"] });
  try {
    await t.step(
      "dot-unstuffed, CRLF and (from a client allowed them) bare LF kept, one recipient",
      async () => {
        const c = await openData(s);
        try {
          const content = "Subject: dots\r\n\r\n..leading dot\r\n...two\r\nbare\nLF\r\n.x\r\nend\r\n";
          const [r] = await runDialogue(c, [[content + ".", "250 2.0.0 Ok: queued as "], ["QUIT", 221]]);
          const env = s.envelopes.at(-1)!;
          assert.equal(r.lines[0], `250 2.0.0 Ok: queued as ${env.id}`);
          assert.equal(env.cdbPath, cdbPath(s.cdbDir, env.id));
          const bytes = await cdbText(env.cdbPath);
          const received = `Received: from client.example ([127.0.0.1])\r\n` +
            `\tby ${HOST} (smX) with ESMTP id ${env.id}\r\n\tfor <rcpt@example.com>; `;
          assert.ok(bytes.startsWith(received), JSON.stringify(bytes.slice(0, 200)));
          const rest = bytes.slice(received.length);
          assert.match(rest, new RegExp(`^${DATE.source}\r\n`));
          assert.equal(
            rest.slice(rest.indexOf("\r\n") + 2),
            "Subject: dots\r\n\r\n.leading dot\r\n..two\r\nbare\nLF\r\nx\r\nend\r\n",
          );
          assert.equal(env.size, new TextEncoder().encode(bytes).length);
          assert.deepEqual(
            { sender: env.sender, recipients: env.recipients, client: env.client, bodyType: env.bodyType },
            {
              sender: "sender@example.org",
              recipients: [{ address: "rcpt@example.com" }],
              client: { ip: "127.0.0.1", helo: "client.example" },
              bodyType: undefined,
            },
          );
          assert.ok(Math.abs(env.arrival - Date.now()) < 60_000);
        } finally {
          c.close();
        }
      },
    );
    await t.step("after HELO: with SMTP, no for clause with two recipients", async () => {
      const c = await openData(s, ["a@example.com", "b@example.com"], "HELO old.example");
      try {
        await runDialogue(c, [["hi\r\n.", 250]]);
        const env = s.envelopes.at(-1)!;
        const bytes = await cdbText(env.cdbPath);
        assert.match(
          bytes,
          new RegExp(
            `^Received: from old\\.example \\(\\[127\\.0\\.0\\.1\\]\\)\r\n\tby ${HOST} \\(smX\\) with SMTP id ${env.id}; ` +
              `${DATE.source}\r\nhi\r\n$`,
          ),
        );
        assert.deepEqual(env.recipients.map((r) => r.address), ["a@example.com", "b@example.com"]);
      } finally {
        c.close();
      }
    });
    await t.step("BODY=8BITMIME reaches the envelope, 8-bit bytes the file", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          ["MAIL FROM:<> BODY=8BITMIME", 250],
          ["RCPT TO:<rcpt@example.com>", 250],
          ["DATA", 354],
        ]);
        await c.send(new Uint8Array([0xc3, 0xa9, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a]));
        await runDialogue(c, [[null, 250]]);
        const env = s.envelopes.at(-1)!;
        assert.equal(env.bodyType, "8BITMIME");
        assert.equal(env.sender, "");
        const bytes = await readCdbContent(env.cdbPath);
        assert.deepEqual([...bytes.subarray(-4)], [0xc3, 0xa9, 0x0d, 0x0a]);
      } finally {
        c.close();
      }
    });
    await t.step("a megabyte in odd-sized writes arrives intact", async () => {
      const c = await openData(s);
      try {
        const line = "0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
        const body = new TextEncoder().encode(".start\r\n" + line.repeat(16_000));
        for (let off = 0; off < body.length; off += 7919) await c.send(body.subarray(off, off + 7919));
        await runDialogue(c, [[".", 250]]);
        const env = s.envelopes.at(-1)!;
        const text = await cdbText(env.cdbPath);
        assert.equal(text.slice(text.indexOf("\r\nstart\r\n") + 2), "start\r\n" + line.repeat(16_000));
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps refuses a message over max_message_size and keeps the session", async () => {
  const s = await startSmtps({ max_message_size: 1000 });
  const c = await openData(s);
  try {
    await c.send(
      "Subject: big\r\n\r\n" + "x".repeat(78) + "\r\n".repeat(1) + ("y".repeat(98) + "\r\n").repeat(20),
    );
    await runDialogue(c, [
      [".", "552 5.3.4 Message size exceeds fixed maximum message size"],
      ["MAIL FROM:<sender@example.org>", 250],
      ["RCPT TO:<rcpt@example.com>", 250],
      ["DATA", 354],
      ["Subject: small\r\n\r\nfits\r\n.", 250],
    ]);
    assert.equal(s.envelopes.length, 1);
    assert.deepEqual(await cdbFiles(s.cdbDir), [`${s.envelopes[0].id.slice(-1)}/${s.envelopes[0].id}`]);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps refuses a message with more Received: headers than max_hops", async (t) => {
  const s = await startSmtps({ max_hops: 3 });
  const hops = (n: number) => "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n".repeat(n);
  const cases: [label: string, content: string, reply: string][] = [
    ["three hops pass", `${hops(3)}Subject: x\r\n\r\nbody\r\n`, "250 2.0.0"],
    ["four hops are a loop", `${hops(2)}Subject: x\r\n${hops(2)}\r\nbody\r\n`, "554 5.4.6 Too many hops"],
    ["the header name in any case", `${hops(3)}RECEIVED: x\r\n\r\nbody\r\n`, "554 5.4.6"],
    ["Received: lines in the body do not count", `${hops(3)}\r\n${hops(5)}`, "250 2.0.0"],
  ];
  try {
    for (const [label, content, reply] of cases) {
      await t.step(label, async () => {
        const before = s.envelopes.length;
        const c = await openData(s);
        try {
          await runDialogue(c, [[content + ".", reply]]);
          const kept = s.envelopes.length - before;
          assert.equal(kept, reply.startsWith("250") ? 1 : 0);
          assert.equal((await cdbFiles(s.cdbDir)).length, s.envelopes.length, "no file of a refused message");
        } finally {
          c.close();
        }
      });
    }
  } finally {
    await s.stop();
  }
});

Deno.test("smtps leaves no file when the client drops the connection mid-DATA", async () => {
  const s = await startSmtps();
  try {
    const c = await openData(s);
    await c.send("Subject: cut\r\n\r\nhalf a mess");
    c.close();
    await sessionsEnded(s, 1);
    assert.deepEqual(await cdbFiles(s.cdbDir), []);
    assert.equal(s.envelopes.length, 0);
  } finally {
    await s.stop();
  }
});

Deno.test("smtps answers 421 when DATA stalls past io_timeout, and leaves no file", async () => {
  const s = await startSmtps({ io_timeout: 300 });
  const c = await openData(s);
  try {
    await c.send("Subject: slow\r\n\r\nand then nothing");
    await runDialogue(c, [[null, `421 4.4.2 ${HOST} Error: timeout exceeded`]]);
    assert.ok(await c.closedByServer());
    await sessionsEnded(s, 1);
    assert.deepEqual(await cdbFiles(s.cdbDir), []);
  } finally {
    c.close();
    await s.stop();
  }
});

Deno.test("smtps answers 451 and removes the file when qmgr does not commit", async (t) => {
  const s = await startSmtps();
  try {
    for (const failure of ["fail", "rpc_failure"] as const) {
      await t.step(`qmgr answers ${failure}`, async () => {
        s.policy.commit = failure;
        const c = await openData(s);
        try {
          await runDialogue(c, [
            ["Subject: x\r\n\r\nbody\r\n.", "451 4.3.0 Error: queue file write error"],
            ["RCPT TO:<rcpt@example.com>", "503 5.5.1"], // the transaction is over
            ["QUIT", 221],
          ]);
          assert.deepEqual(await cdbFiles(s.cdbDir), []);
        } finally {
          c.close();
        }
      });
    }
  } finally {
    await s.stop();
  }
});
