// Reading server replies (takeReply) and building commands (commands.ts): the byte-level rules smtpc
// holds servers to, and the parameters it sends.

import assert from "node:assert/strict";
import { MAX_REPLY_BYTES, replyText, takeReply } from "../components/smtpc/reply_reader.ts";
import { mailCommand, parseExtensions, rcptCommand, sizeLimit, xtext } from "../components/smtpc/commands.ts";
import type { DeliveryTransaction } from "../components/protocol/messages.ts";

const enc = new TextEncoder();

function take(text: string) {
  const b = enc.encode(text);
  return takeReply(b, 0, b.length);
}

Deno.test("takeReply() reads whole replies and refuses what breaks the protocol", async (t) => {
  const good: { name: string; bytes: string; code: number; text: string; rest: number }[] = [
    { name: "a one-line reply", bytes: "250 2.0.0 Ok\r\n", code: 250, text: "250 2.0.0 Ok", rest: 0 },
    { name: "a bare code", bytes: "250\r\n", code: 250, text: "250", rest: 0 },
    {
      name: "a multi-line reply",
      bytes: "250-a\r\n250-b\r\n250 c\r\n",
      code: 250,
      text: "250 a b c",
      rest: 0,
    },
    {
      name: "the first of two pipelined replies",
      bytes: "250 Ok\r\n354 Go\r\n",
      code: 250,
      text: "250 Ok",
      rest: 8,
    },
  ];
  for (const c of good) {
    await t.step(`accepts ${c.name}`, () => {
      const got = take(c.bytes)!;
      assert.equal(got.reply.code, c.code);
      assert.equal(replyText(got.reply), c.text);
      assert.equal(enc.encode(c.bytes).length - got.next, c.rest);
    });
  }
  await t.step("waits for more on an incomplete reply", () => {
    assert.equal(take("250-a\r\n250 b"), undefined);
    assert.equal(take("250-a\r\n"), undefined);
  });
  const bad: { name: string; bytes: string; error: RegExp }[] = [
    { name: "a bare LF", bytes: "250 Ok\n", error: /not terminated by CRLF/ },
    { name: "an empty line", bytes: "\r\n", error: /malformed line/ },
    { name: "letters instead of a code", bytes: "hello\r\n", error: /malformed line/ },
    { name: "a 1xx code", bytes: "150 what\r\n", error: /malformed line/ },
    { name: "a bad separator", bytes: "250_Ok\r\n", error: /malformed line/ },
    { name: "a code changing inside a reply", bytes: "250-a\r\n550 b\r\n", error: /code changed/ },
    { name: "a reply over 64 KiB", bytes: "250-" + "x".repeat(MAX_REPLY_BYTES) + "\r\n", error: /64 KiB/ },
    {
      name: "an unterminated line over 64 KiB",
      bytes: "250 " + "x".repeat(MAX_REPLY_BYTES),
      error: /64 KiB/,
    },
  ];
  for (const c of bad) {
    await t.step(`refuses ${c.name}`, () => assert.throws(() => take(c.bytes), c.error));
  }
  await t.step("escapes control characters in reply text", () => {
    assert.equal(replyText(take("550 bad\x07\x1b user\r\n")!.reply), "550 bad\\x07\\x1b user");
  });
  await t.step(
    "escapes non-ASCII and undecodable bytes in reply text: it may end up in a US-ASCII DSN",
    () => {
      const bytes = new Uint8Array([...enc.encode("550 5.1.1 "), 0xff, 0xc3, 0xa9, ...enc.encode(" no\r\n")]);
      const got = takeReply(bytes, 0, bytes.length)!;
      assert.equal(replyText(got.reply), "550 5.1.1 \\xef\\xbf\\xbd\\xc3\\xa9 no");
      assert.throws(() => take("\u00e9\u00e9\u00e9 garbage\r\n"), /malformed line \\xc3\\xa9/);
    },
  );
});

const TA: DeliveryTransaction = {
  taId: "t",
  messageId: "m",
  cdbPath: "/x",
  size: 1234,
  sender: "s@a.test",
  recipients: [],
  route: { protocol: "esmtp", port: 25, hosts: [] },
  bodyType: "8BITMIME",
  envid: "id+1=2",
  ret: "HDRS",
};

Deno.test("commands carry only the parameters the server offers", async (t) => {
  const ehlo = (...ext: string[]) => parseExtensions({ code: 250, lines: ["mx.test", ...ext] });
  await t.step("extensions are read case-insensitively with their parameters", () => {
    const exts = ehlo("pipelining", "SIZE 52428800", "8BITMIME", "DSN");
    assert.deepEqual([...exts.keys()], ["PIPELINING", "SIZE", "8BITMIME", "DSN"]);
    assert.equal(sizeLimit(exts), 52428800);
    assert.equal(sizeLimit(ehlo("SIZE")), 0);
  });
  const mails: { name: string; exts: string[]; line: string }[] = [
    { name: "no extensions", exts: [], line: "MAIL FROM:<s@a.test>\r\n" },
    {
      name: "SIZE and 8BITMIME",
      exts: ["SIZE 0", "8BITMIME"],
      line: "MAIL FROM:<s@a.test> SIZE=1234 BODY=8BITMIME\r\n",
    },
    { name: "DSN", exts: ["DSN"], line: "MAIL FROM:<s@a.test> RET=HDRS ENVID=id+2B1+3D2\r\n" },
  ];
  for (const c of mails) {
    await t.step(`MAIL FROM with ${c.name}`, () => assert.equal(mailCommand(TA, ehlo(...c.exts)), c.line));
  }
  await t.step("RCPT TO carries NOTIFY and ORCPT only with DSN", () => {
    const r = { address: "r@b.test", notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;r+x@b.test" };
    assert.equal(rcptCommand(r, ehlo()), "RCPT TO:<r@b.test>\r\n");
    assert.equal(
      rcptCommand(r, ehlo("DSN")),
      "RCPT TO:<r@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r+2Bx@b.test\r\n",
    );
  });
  await t.step(
    "xtext encodes +, = and non-printables",
    () => assert.equal(xtext("a+b=c d\u00e9"), "a+2Bb+3Dc+20d+C3+A9"),
  );
});
