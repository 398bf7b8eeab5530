// The MAIL and RCPT argument parser of smtps (components/smtps/arguments.ts) and what it builds on: paths
// per RFC 5321 with their length limits (501/553), UTF-8 addresses under SMTPUTF8 (553 5.6.7 without
// it), the ESMTP parameters SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH, NOTIFY and ORCPT, and xtext
// (components/mail/xtext.ts). Pure case tables.

import assert from "node:assert/strict";
import { parsePath } from "../components/mail/address.ts";
import { decodeUtf8AddrEscapes, decodeXtext, encodeXtext } from "../components/mail/xtext.ts";
import { type Offered, parseMailArgs, parseOrcpt, parseRcptArgs } from "../components/smtps/arguments.ts";

const ALL: Offered = { esmtp: true, eightBit: true, smtputf8: true, auth: true };
const code = (r: { ok: false; reply: { code: number; status: string } }) =>
  `${r.reply.code} ${r.reply.status}`;

Deno.test("parseMailArgs() reads the path and every MAIL parameter the session was offered", async (t) => {
  const ok: [label: string, arg: string, want: object][] = [
    ["a plain sender", "FROM:<a@b.example>", { sender: "a@b.example" }],
    ["the null sender", "FROM:<>", { sender: "" }],
    ["a space after the colon, tolerated", "FROM: <a@b.example>", { sender: "a@b.example" }],
    ["the keyword in lower case", "from:<a@b.example>", { sender: "a@b.example" }],
    ["SIZE", "FROM:<a@b.example> SIZE=1000", { sender: "a@b.example", size: 1000 }],
    ["BODY=8BITMIME", "FROM:<a@b.example> body=8bitmime", { sender: "a@b.example", body: "8BITMIME" }],
    ["SIZE and BODY", "FROM:<> SIZE=5 BODY=7BIT", { sender: "", size: 5, body: "7BIT" }],
    ["a quoted local part with spaces", 'FROM:<"a b"@c.example> SIZE=1', {
      sender: '"a b"@c.example',
      size: 1,
    }],
    ["RET and ENVID, xtext decoded", "FROM:<a@b.example> RET=hdrs ENVID=QQ+2B314+3D", {
      sender: "a@b.example",
      ret: "HDRS",
      envid: "QQ+314=",
    }],
    ["SMTPUTF8 allows a UTF-8 sender", "FROM:<jörg@bücher.example> SMTPUTF8", {
      sender: "jörg@bücher.example",
      smtputf8: true,
    }],
    ["AUTH=<>", "FROM:<a@b.example> AUTH=<>", { sender: "a@b.example", auth: "" }],
    ["AUTH with an xtext address", "FROM:<a@b.example> AUTH=e+2Bx@b.example", {
      sender: "a@b.example",
      auth: "e+x@b.example",
    }],
  ];
  for (const [label, arg, want] of ok) {
    await t.step(label, () => assert.deepEqual(parseMailArgs(arg, ALL), { ok: true, mail: want }));
  }
  const bad: [label: string, arg: string, code: string, offered?: Partial<Offered>][] = [
    ["no FROM:", "<a@b.example>", "501 5.5.4"],
    ["nothing after FROM:", "FROM:", "501 5.5.4"],
    ["no brackets", "FROM:a@b.example", "501 5.1.7"],
    ["junk after the bracket", "FROM:<a@b.example>x", "501 5.1.7"],
    ["a bad address", "FROM:<a@@b>", "501 5.1.7"],
    ["SIZE without a number", "FROM:<a@b.example> SIZE=big", "501 5.5.4"],
    ["SIZE twice", "FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4"],
    ["an unknown BODY", "FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4"],
    ["BODY=8BITMIME without the 8bitmime flag", "FROM:<a@b.example> BODY=8BITMIME", "501 5.5.4", {
      eightBit: false,
    }],
    ["an unknown parameter", "FROM:<a@b.example> XFOO", "555 5.5.4"],
    ["a malformed parameter", "FROM:<a@b.example> =x", "501 5.5.4"],
    ["any parameter after HELO", "FROM:<a@b.example> SIZE=1", "555 5.5.4", { esmtp: false }],
    ["SMTPUTF8 when not offered", "FROM:<a@b.example> SMTPUTF8", "555 5.5.4", { smtputf8: false }],
    ["SMTPUTF8 with a value", "FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4"],
    ["a UTF-8 sender without SMTPUTF8", "FROM:<jörg@b.example>", "553 5.6.7"],
    ["RET other than FULL or HDRS", "FROM:<a@b.example> RET=ALL", "501 5.5.4"],
    ["ENVID with a bad xtext escape", "FROM:<a@b.example> ENVID=a+2", "501 5.5.4"],
    ["ENVID with a lower-case escape", "FROM:<a@b.example> ENVID=a+2b", "501 5.5.4"],
    ["ENVID with a control character", "FROM:<a@b.example> ENVID=a+0Db", "501 5.5.4"],
    ["ENVID over 100 characters", `FROM:<a@b.example> ENVID=${"x".repeat(101)}`, "501 5.5.4"],
    ["ENVID without a value", "FROM:<a@b.example> ENVID", "501 5.5.4"],
    ["AUTH when AUTH is not offered", "FROM:<a@b.example> AUTH=<>", "555 5.5.4", { auth: false }],
    ["AUTH with bad xtext", "FROM:<a@b.example> AUTH=a+ZZ", "501 5.5.4"],
    ["a local part of 65 octets", `FROM:<${"a".repeat(65)}@b.example>`, "553 5.1.7"],
    ["a 2-octet character counts twice", `FROM:<${"ö".repeat(33)}@b.example> SMTPUTF8`, "553 5.1.7"],
  ];
  for (const [label, arg, want, offered] of bad) {
    await t.step(label, () => {
      const r = parseMailArgs(arg, { ...ALL, ...offered });
      assert.ok(!r.ok, `${arg} was accepted`);
      assert.equal(code(r), want);
    });
  }
  await t.step("a bad address counts as an invalid address, a bad parameter does not", () => {
    const a = parseMailArgs("FROM:<a@@b>", ALL);
    const p = parseMailArgs("FROM:<a@b.example> SIZE=x", ALL);
    assert.ok(!a.ok && a.invalidAddress && !p.ok && !p.invalidAddress);
  });
});

Deno.test("parseRcptArgs() reads the path, NOTIFY and ORCPT", async (t) => {
  const cases: [label: string, arg: string, want: object | string, smtputf8?: boolean][] = [
    ["a plain recipient", "TO:<u@Example.COM>", { address: "u@example.com" }],
    ["postmaster", "TO:<Postmaster>", { address: "postmaster" }],
    ["a source route, ignored", "TO:<@relay.example,@[192.0.2.1]:u@example.com>", {
      address: "u@example.com",
    }],
    ["an IP literal", "TO:<u@[192.0.2.1]>", { address: "u@[192.0.2.1]" }],
    ["an IPv6 literal", "TO:<u@[IPv6:2001:DB8::1]>", { address: "u@[IPv6:2001:db8::1]" }],
    ["a quoted local part", 'TO:<"u v"@example.com>', { address: '"u v"@example.com' }],
    ["NOTIFY with three values", "TO:<u@example.com> NOTIFY=success,Failure,DELAY", {
      address: "u@example.com",
      notify: ["SUCCESS", "FAILURE", "DELAY"],
    }],
    ["NOTIFY=NEVER", "TO:<u@example.com> NOTIFY=NEVER", { address: "u@example.com", notify: ["NEVER"] }],
    ["ORCPT, xtext decoded", "TO:<u@example.com> ORCPT=rfc822;v+2Bx@example.com", {
      address: "u@example.com",
      orcpt: "rfc822;v+x@example.com",
    }],
    ["ORCPT of type utf-8 with an escape", "TO:<u@example.com> ORCPT=utf-8;j\\x{F6}rg@example.com", {
      address: "u@example.com",
      orcpt: "utf-8;jörg@example.com",
    }],
    ["a UTF-8 recipient under SMTPUTF8", "TO:<用户@例子.广告>", { address: "用户@例子.广告" }, true],
    ["the null path", "TO:<>", "501 5.1.3"],
    ["no TO:", "<u@example.com>", "501 5.5.4"],
    ["a bad address", "TO:<u@-x>", "501 5.1.3"],
    ["a UTF-8 recipient without SMTPUTF8", "TO:<用户@例子.广告>", "553 5.6.7"],
    ["a local part of 65 octets", `TO:<${"u".repeat(65)}@example.com>`, "553 5.1.3"],
    [
      "a path of 257 octets",
      `TO:<${"u".repeat(64)}@${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(62)}>`,
      "501 5.1.3",
    ],
    ["NOTIFY=NEVER with another value", "TO:<u@example.com> NOTIFY=NEVER,DELAY", "501 5.5.4"],
    ["NOTIFY with an unknown value", "TO:<u@example.com> NOTIFY=SOMETIMES", "501 5.5.4"],
    ["NOTIFY twice", "TO:<u@example.com> NOTIFY=DELAY NOTIFY=DELAY", "501 5.5.4"],
    ["ORCPT without a type", "TO:<u@example.com> ORCPT=u@example.com", "501 5.5.4"],
    ["ORCPT with a control character", "TO:<u@example.com> ORCPT=rfc822;u+00@example.com", "501 5.5.4"],
    ["an unknown parameter", "TO:<u@example.com> XFOO=1", "555 5.5.4"],
  ];
  for (const [label, arg, want, smtputf8] of cases) {
    await t.step(label, () => {
      const r = parseRcptArgs(arg, true, smtputf8 ?? false);
      if (typeof want === "string") {
        assert.ok(!r.ok, `${arg} was accepted`);
        assert.equal(code(r), want);
      } else assert.deepEqual(r, { ok: true, recipient: want });
    });
  }
  await t.step("parameters after HELO", () => {
    const r = parseRcptArgs("TO:<u@example.com> NOTIFY=NEVER", false, false);
    assert.ok(!r.ok);
    assert.equal(code(r), "555 5.5.4");
  });
});

Deno.test("parsePath() takes UTF-8 only under SMTPUTF8 and counts octets", async (t) => {
  const cases: [label: string, path: string, utf8: boolean, want: string][] = [
    ["a UTF-8 local part", "<jörg@example.com>", true, "jörg@example.com"],
    ["a U-label domain, lower-cased", "<a@BÜCHER.example>", true, "a@bücher.example"],
    ["a quoted UTF-8 local part", '<"jö rg"@example.com>', true, '"jö rg"@example.com'],
    ["UTF-8 without SMTPUTF8", "<jörg@example.com>", false, "utf8"],
    ["a C1 control is not a letter", "<j\u0085rg@example.com>", true, "syntax"],
    [
      "64 octets of two-byte characters fit",
      `<${"ö".repeat(32)}@example.com>`,
      true,
      `${"ö".repeat(32)}@example.com`,
    ],
    ["65 octets do not", `<${"ö".repeat(32)}a@example.com>`, true, "too_long"],
  ];
  for (const [label, path, utf8, want] of cases) {
    await t.step(label, () => {
      const r = parsePath(path, { utf8 });
      assert.equal(r.ok ? r.mailbox.address : r.problem, want);
    });
  }
});

Deno.test("xtext decodes +XX, refuses what RFC 3461 forbids, and round-trips", async (t) => {
  const cases: [text: string, decoded: string | undefined][] = [
    ["plain", "plain"],
    ["a+2Bb+3Dc", "a+b=c"],
    ["+20", " "],
    ["a+2b", undefined],
    ["a+", undefined],
    ["a+G0", undefined],
    ["a=b", undefined],
    ["a b", undefined],
    ["+0A", undefined],
    ["+7F", undefined],
    ["+C3", undefined],
  ];
  for (const [text, decoded] of cases) {
    await t.step(JSON.stringify(text), () => assert.equal(decodeXtext(text), decoded));
  }
  await t.step("encodeXtext() is undone by decodeXtext()", () => {
    const text = "odd +=\\ text~!";
    assert.equal(encodeXtext(text), "odd+20+2B+3D\\+20text~!");
    assert.equal(decodeXtext(encodeXtext(text)), text);
  });
  await t.step("the utf-8 address escapes of RFC 6533", () => {
    assert.equal(decodeUtf8AddrEscapes("j\\x{F6}rg\\x{1F600}"), "jörg😀");
    assert.equal(decodeUtf8AddrEscapes("a\\x{0}"), undefined);
    assert.equal(decodeUtf8AddrEscapes("a\\b"), undefined);
  });
  await t.step("parseOrcpt() refuses a non-ASCII rfc822 address and a bad type", () => {
    assert.equal(parseOrcpt("rfc822;jörg@x", true), undefined);
    assert.equal(parseOrcpt("utf-8;jörg@x", false), undefined);
    assert.equal(parseOrcpt("utf-8;jörg@x", true), "utf-8;jörg@x");
    assert.equal(parseOrcpt("rfc_822;a@x", true), undefined);
    assert.equal(parseOrcpt(`rfc822;${"a".repeat(500)}`, true), undefined);
  });
});
