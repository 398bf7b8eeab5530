// The pure helpers smtps builds on: reply formatting and parsing (components/mail/reply.ts), the Received:
// header, its protocol name and its date (components/mail/received.ts), as case tables. The MAIL/RCPT
// argument parser has its own file (smtps_params_test.ts).

import assert from "node:assert/strict";
import { formatReply, parseReply, reply, replyText } from "../components/mail/reply.ts";
import { ipLiteral, receivedHeader, receivedProtocol, rfc5322Date } from "../components/mail/received.ts";

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
  await t.step("with TLS and the authenticated user, each in a comment before by", () => {
    assert.equal(
      receivedHeader({
        ...base,
        protocol: "ESMTPSA",
        tls: { version: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384" },
        authUser: "alice (x)",
      }),
      `Received: from client.example ([192.0.2.1])\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n` +
        `\t(authenticated user alice??x?)\r\n\tby mx.example (smX) with ESMTPSA id ABC; ${d}\r\n`,
    );
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

Deno.test("receivedProtocol() names the protocol as RFC 3848 and RFC 6531 do", async (t) => {
  const cases: [esmtp: boolean, tls: boolean, auth: boolean, utf8: boolean, name: string][] = [
    [false, false, false, false, "SMTP"],
    [true, false, false, false, "ESMTP"],
    [true, true, false, false, "ESMTPS"],
    [true, false, true, false, "ESMTPA"],
    [true, true, true, false, "ESMTPSA"],
    [true, false, false, true, "UTF8SMTP"],
    [true, true, false, true, "UTF8SMTPS"],
    [true, false, true, true, "UTF8SMTPA"],
    [true, true, true, true, "UTF8SMTPSA"],
  ];
  for (const [esmtp, tls, auth, utf8, name] of cases) {
    await t.step(name, () => assert.equal(receivedProtocol({ esmtp, tls, auth, utf8 }), name));
  }
});
