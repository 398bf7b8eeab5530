// The pure helpers smtps builds on: reply formatting and parsing (components/mail/reply.ts), the Received:
// header and its date (components/mail/received.ts), and the MAIL/RCPT argument parser
// (components/smtps/arguments.ts), as case tables.

import assert from "node:assert/strict";
import { formatReply, parseReply, reply, replyText } from "../components/mail/reply.ts";
import { ipLiteral, receivedHeader, rfc5322Date } from "../components/mail/received.ts";
import { parseMailArgs, parseRcptArgs } from "../components/smtps/arguments.ts";

Deno.test("formatReply() writes one or more lines with code, status and CRLF", async (t) => {
  const cases: [label: string, r: ReturnType<typeof reply>, wire: string][] = [
    ["a one-line reply", reply(250, "2.1.0", "Ok"), "250 2.1.0 Ok\r\n"],
    ["a reply without a status", reply(220, "", "mx ESMTP"), "220 mx ESMTP\r\n"],
    [
      "a multi-line reply",
      reply(250, "", "mx\nPIPELINING\nSIZE 10"),
      "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
    ],
    ["a multi-line reply with status", reply(550, "5.7.1", "a\nb"), "550-5.7.1 a\r\n550 5.7.1 b\r\n"],
    ["control characters removed", reply(550, "5.7.1", "bad\r\x00text"), "550 5.7.1 badtext\r\n"],
  ];
  for (const [label, r, wire] of cases) await t.step(label, () => assert.equal(formatReply(r), wire));
});

Deno.test("parseReply() reads back what formatReply() writes, and refuses garbage", async (t) => {
  for (
    const r of [
      reply(250, "2.0.0", "Ok: queued as X"),
      reply(250, "", "mx\nSIZE 5"),
      reply(451, "4.3.0", "a\nb"),
    ]
  ) {
    await t.step(replyText(r), () => {
      const lines = formatReply(r).split("\r\n").slice(0, -1);
      assert.deepEqual(parseReply(lines), r);
    });
  }
  const bad: [label: string, lines: string[]][] = [
    ["no lines", []],
    ["not a code", ["hello"]],
    ["a continuation as the last line", ["250-a"]],
    ["a final line before the end", ["250 a", "250 b"]],
    ["mixed codes", ["250-a", "251 b"]],
  ];
  for (const [label, lines] of bad) await t.step(label, () => assert.equal(parseReply(lines), undefined));
  await t.step("an out-of-range code is a bug", () => assert.throws(() => reply(600, "", "x"), RangeError));
});

Deno.test("receivedHeader() writes the trace header with a for clause only for one recipient", async (t) => {
  const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
  const base = {
    helo: "client.example",
    ip: "192.0.2.1",
    hostname: "mx.example",
    protocol: "ESMTP",
    id: "ABC",
    date,
  };
  const d = rfc5322Date(date);
  await t.step("with one recipient", () => {
    assert.equal(
      receivedHeader({ ...base, recipient: "u@example.com" }),
      `Received: from client.example ([192.0.2.1])\r\n\tby mx.example (smX) with ESMTP id ABC\r\n` +
        `\tfor <u@example.com>; ${d}\r\n`,
    );
  });
  await t.step("without a recipient, after HELO, from IPv6", () => {
    assert.equal(
      receivedHeader({ ...base, ip: "::1", protocol: "SMTP" }),
      `Received: from client.example ([IPv6:::1])\r\n\tby mx.example (smX) with SMTP id ABC; ${d}\r\n`,
    );
  });
  await t.step("a HELO with spaces or parentheses is made harmless", () => {
    assert.match(receivedHeader({ ...base, helo: "a (b)\tc" }), /^Received: from a\?\?b\?\?c \(/);
  });
  await t.step("ipLiteral() tags IPv6", () => {
    assert.equal(ipLiteral("10.0.0.1"), "[10.0.0.1]");
    assert.equal(ipLiteral("2001:db8::1"), "[IPv6:2001:db8::1]");
  });
});

Deno.test("rfc5322Date() writes day, date, time and zone offset", () => {
  const d = new Date(2024, 0, 2, 3, 4, 5); // local time: the offset is whatever this machine's zone says
  const off = -d.getTimezoneOffset();
  const zone = `${off < 0 ? "-" : "+"}${String(Math.floor(Math.abs(off) / 60)).padStart(2, "0")}${
    String(Math.abs(off) % 60).padStart(2, "0")
  }`;
  assert.equal(rfc5322Date(d), `Tue, 2 Jan 2024 03:04:05 ${zone}`);
});

Deno.test("parseMailArgs() reads the path and the SIZE and BODY parameters", async (t) => {
  const ok: [label: string, arg: string, want: object][] = [
    ["a plain sender", "FROM:<a@b.example>", { sender: "a@b.example" }],
    ["the null sender", "FROM:<>", { sender: "" }],
    ["a space after the colon, tolerated", "FROM: <a@b.example>", { sender: "a@b.example" }],
    ["the keyword in lower case", "from:<a@b.example>", { sender: "a@b.example" }],
    ["SIZE", "FROM:<a@b.example> SIZE=1000", { sender: "a@b.example", size: 1000 }],
    ["BODY=8BITMIME", "FROM:<a@b.example> body=8bitmime", { sender: "a@b.example", body: "8BITMIME" }],
    ["both", "FROM:<> SIZE=5 BODY=7BIT", { sender: "", size: 5, body: "7BIT" }],
    ["a quoted local part with spaces", 'FROM:<"a b"@c.example> SIZE=1', {
      sender: '"a b"@c.example',
      size: 1,
    }],
  ];
  for (const [label, arg, want] of ok) {
    await t.step(label, () => assert.deepEqual(parseMailArgs(arg, true, true), { ok: true, ...want }));
  }
  const bad: [label: string, arg: string, code: string, esmtp?: boolean][] = [
    ["no FROM:", "<a@b.example>", "501 5.5.4"],
    ["nothing after FROM:", "FROM:", "501 5.5.4"],
    ["no brackets", "FROM:a@b.example", "501 5.1.7"],
    ["junk after the bracket", "FROM:<a@b.example>x", "501 5.1.7"],
    ["a bad address", "FROM:<a@@b>", "501 5.1.7"],
    ["SIZE without a number", "FROM:<a@b.example> SIZE=big", "501 5.5.4"],
    ["SIZE twice", "FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4"],
    ["an unknown BODY", "FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4"],
    ["an unknown parameter", "FROM:<a@b.example> SMTPUTF8", "555 5.5.4"],
    ["a malformed parameter", "FROM:<a@b.example> =x", "501 5.5.4"],
    ["any parameter after HELO", "FROM:<a@b.example> SIZE=1", "555 5.5.4", false],
  ];
  for (const [label, arg, code, esmtp] of bad) {
    await t.step(label, () => {
      const r = parseMailArgs(arg, esmtp ?? true, true);
      assert.ok(!r.ok);
      assert.equal(`${r.reply.code} ${r.reply.status}`, code);
    });
  }
  await t.step("BODY=8BITMIME is refused when the 8bitmime flag is off", () => {
    const r = parseMailArgs("FROM:<a@b.example> BODY=8BITMIME", true, false);
    assert.ok(!r.ok);
    assert.equal(r.reply.code, 501);
  });
});

Deno.test("parseRcptArgs() reads the path and refuses parameters", async (t) => {
  const cases: [label: string, arg: string, want: string][] = [
    ["a plain recipient", "TO:<u@Example.COM>", "ok u@example.com"],
    ["postmaster", "TO:<Postmaster>", "ok postmaster"],
    ["a source route", "TO:<@relay.example:u@example.com>", "ok u@example.com"],
    ["the null path", "TO:<>", "501 5.1.3"],
    ["no TO:", "<u@example.com>", "501 5.5.4"],
    ["a bad address", "TO:<u@-x>", "501 5.1.3"],
    ["a parameter", "TO:<u@example.com> NOTIFY=NEVER", "555 5.5.4"],
  ];
  for (const [label, arg, want] of cases) {
    await t.step(label, () => {
      const r = parseRcptArgs(arg);
      assert.equal(r.ok ? `ok ${r.recipient}` : `${r.reply.code} ${r.reply.status}`, want);
    });
  }
});
