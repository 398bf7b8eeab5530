// CHUNKING (RFC 3030) against the real smtps worker: chunks stored byte for byte behind our Received:
// header, BDAT 0 LAST, pipelined chunks, DATA after BDAT, chunks out of sequence (read and dropped), a
// chunk over the size limit, a malformed BDAT, and a connection lost mid-chunk leaving nothing behind.

import assert from "node:assert/strict";
import { cdbFiles, runDialogue, SmtpClient, type Smtps, startSmtps } from "./helpers/smtps_dialogue.ts";
import { cdbText } from "./helpers/cdb.ts";

/** Opens a session and a transaction with one recipient. */
async function open(s: Smtps): Promise<SmtpClient> {
  const c = await SmtpClient.connect(s.port);
  await runDialogue(c, [
    [null, 220],
    ["EHLO client.example", 250],
    ["MAIL FROM:<a@example.org>", 250],
    ["RCPT TO:<b@example.com>", 250],
  ]);
  return c;
}

/** A BDAT command with its chunk, the size counted in octets. */
const bdat = (chunk: string, last = false) =>
  `BDAT ${new TextEncoder().encode(chunk).length}${last ? " LAST" : ""}\r\n${chunk}`;

/**
 * A dialogue step sending `chunk` + CRLF as one BDAT chunk (runDialogue adds the CRLF, which belongs to
 * the chunk here), expecting `expect`.
 */
const chunk = (text: string, expect: string | number, last = false): [string, string | number] => [
  bdat(`${text}\r\n`, last).slice(0, -2),
  expect,
];

/** The content of a stored message after our Received: header. */
async function body(path: string): Promise<string> {
  const text = await cdbText(path);
  const end = text.indexOf("\r\n", text.indexOf("; ", text.indexOf("\tby "))) + 2;
  return text.slice(end);
}

/** Waits until qmgr has heard that `n` sessions ended. */
async function sessionsEnded(s: Smtps, n: number): Promise<void> {
  for (let i = 0; i < 500 && s.closed.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(s.closed.length, n, "the session did not end");
}

Deno.test("smtps receives a message in BDAT chunks", async (t) => {
  const s = await startSmtps({ max_message_size: 1000, max_hops: 2 });
  try {
    await t.step("two chunks, then the last: stored as sent, bare LF and dots included", async () => {
      const c = await open(s);
      try {
        await c.send(bdat("Subject: chunks\r\n\r\n"));
        await runDialogue(c, [[null, "250 2.0.0 Ok: 19 octets received"]]);
        await c.send(bdat(".a\nb\r\n.\r\n", true));
        const [r] = await runDialogue(c, [[null, "250 2.0.0 Ok: queued as"], ["QUIT", 221]]);
        const e = s.envelopes.at(-1)!;
        assert.ok(r.lines[0].endsWith(e.id));
        assert.equal(await body(e.cdbPath), "Subject: chunks\r\n\r\n.a\nb\r\n.\r\n");
        assert.match(await cdbText(e.cdbPath), /with ESMTP id /);
      } finally {
        c.close();
      }
    });
    await t.step("BDAT 0 LAST alone: an empty message", async () => {
      const c = await open(s);
      try {
        await runDialogue(c, [["BDAT 0 LAST", "250 2.0.0 Ok: queued as"]]);
        assert.equal(await body(s.envelopes.at(-1)!.cdbPath), "");
      } finally {
        c.close();
      }
    });
    await t.step("chunks pipelined with the commands after them", async () => {
      const c = await open(s);
      try {
        await runDialogue(c, [["BDAT 5\r\nhelloBDAT 7 LAST\r\n world!RSET", [
          250,
          "250 2.0.0 Ok: queued",
          250,
        ]]]);
        assert.equal(await body(s.envelopes.at(-1)!.cdbPath), "hello world!");
      } finally {
        c.close();
      }
    });
    await t.step("DATA after BDAT is out of sequence", async () => {
      const c = await open(s);
      try {
        await runDialogue(c, [
          chunk("abc", 250),
          ["DATA", "503 5.5.1 Error: DATA after BDAT"],
          chunk("def", "250 2.0.0 Ok: queued", true),
        ]);
        assert.equal(await body(s.envelopes.at(-1)!.cdbPath), "abc\r\ndef\r\n");
      } finally {
        c.close();
      }
    });
    await t.step("a chunk out of sequence is read and dropped", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          chunk("NOOP\r\nxyz", "503 5.5.1 Error: need MAIL"),
          ["MAIL FROM:<a@example.org>", 250],
          chunk("QUIT", "554 5.5.1 No valid recipients", true),
          ["QUIT", 221],
        ]);
      } finally {
        c.close();
      }
    });
    await t.step("a chunk over the size limit: 552, the transaction is over, no file", async () => {
      const before = (await cdbFiles(s.cdbDir)).length;
      const c = await open(s);
      try {
        await runDialogue(c, [
          chunk("x".repeat(600), 250),
          chunk("y".repeat(600), "552 5.3.4"),
          chunk("zzzzz", "503 5.5.1", true),
          ["NOOP", 250],
        ]);
        assert.equal((await cdbFiles(s.cdbDir)).length, before);
      } finally {
        c.close();
      }
    });
    await t.step("too many Received: headers: 554 5.4.6 at the last chunk", async () => {
      const c = await open(s);
      const hops = "Received: from a\r\nReceived: from b\r\nReceived: from c\r\n\r\nx\r\n";
      try {
        await c.send(bdat(hops, true));
        await runDialogue(c, [[null, "554 5.4.6"]]);
      } finally {
        c.close();
      }
    });
    await t.step("a malformed BDAT ends the session: its chunk cannot be found", async () => {
      const c = await open(s);
      try {
        await runDialogue(c, [["BDAT many\r\nabc", "501 5.5.4"]]);
        assert.ok(await c.closedByServer());
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps leaves nothing when the connection drops in the middle of a chunk", async () => {
  const s = await startSmtps();
  try {
    const c = await open(s);
    await runDialogue(c, [chunk("first", 250)]);
    await c.send("BDAT 100 LAST\r\nonly a part of it");
    c.close();
    await sessionsEnded(s, 1);
    assert.deepEqual(await cdbFiles(s.cdbDir), []);
    assert.equal(s.envelopes.length, 0);
  } finally {
    await s.stop();
  }
});
