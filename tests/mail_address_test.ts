// The RFC 5321 path parser (components/mail/address.ts) as case tables: what it accepts and in which
// canonical form, what it refuses and why.

import assert from "node:assert/strict";
import { domainOf, parseMailbox, parsePath, pathEnd } from "../components/mail/address.ts";

const long = (n: number, c = "a") => c.repeat(n);
const label63 = long(63);
/** A valid domain of exactly `n` octets, from labels of at most 63. */
function domainOfLength(n: number): string {
  const labels: string[] = [];
  let left = n;
  while (left > 64) {
    labels.push(label63);
    left -= 64;
  }
  labels.push(long(left));
  return labels.join(".");
}

Deno.test("parsePath() accepts RFC 5321 paths and gives their canonical form", async (t) => {
  const cases: [label: string, path: string, canonical: string, opts?: Parameters<typeof parsePath>[1]][] = [
    ["a plain address", "<user@example.com>", "user@example.com"],
    ["a domain in upper case, lower-cased", "<User@EXAMPLE.Com>", "User@example.com"],
    ["a dotted local part", "<first.last@example.com>", "first.last@example.com"],
    ["atext specials", "<a!#$%&'*+-/=?^_`{|}~b@example.com>", "a!#$%&'*+-/=?^_`{|}~b@example.com"],
    ["a quoted local part that needs no quotes, unquoted", '<"john"@example.com>', "john@example.com"],
    ["a quoted local part with a space, kept quoted", '<"john doe"@example.com>', '"john doe"@example.com'],
    ["a quoted local part with an @", '<"a@b"@example.com>', '"a@b"@example.com'],
    ["a quoted pair, re-escaped minimally", '<"a\\"b"@example.com>', '"a\\"b"@example.com'],
    ["a needless quoted pair, dropped", '<"a\\b"@example.com>', "ab@example.com"],
    ["an IPv4 address literal", "<user@[192.0.2.1]>", "user@[192.0.2.1]"],
    ["an IPv6 address literal", "<user@[IPv6:2001:DB8::1]>", "user@[IPv6:2001:db8::1]"],
    ["a source route, ignored", "<@relay.example,@[192.0.2.9]:user@example.com>", "user@example.com"],
    ["one hop of source route", "<@relay.example:user@example.com>", "user@example.com"],
    ["the null path for MAIL", "<>", "", { allowNull: true }],
    ["postmaster for RCPT", "<postmaster>", "postmaster", { allowPostmaster: true }],
    ["Postmaster in any case", "<PostMaster>", "postmaster", { allowPostmaster: true }],
    ["postmaster with a domain, like any address", "<Postmaster@Example.com>", "Postmaster@example.com"],
    ["a local part of 64 octets", `<${long(64)}@example.com>`, `${long(64)}@example.com`],
    ["a digit-only domain label", "<u@123.example>", "u@123.example"],
    ["a hyphen inside a label", "<u@mail-relay.example>", "u@mail-relay.example"],
  ];
  for (const [label, path, canonical, opts] of cases) {
    await t.step(label, () => {
      const r = parsePath(path, opts);
      assert.ok(r.ok, `${path}: ${!r.ok && r.reason}`);
      assert.equal(r.mailbox.address, canonical);
    });
  }
});

Deno.test("parsePath() refuses malformed paths with a reason", async (t) => {
  const cases: [label: string, path: string, reason: RegExp, opts?: Parameters<typeof parsePath>[1]][] = [
    ["no angle brackets", "user@example.com", /not enclosed/],
    ["an unclosed bracket", "<user@example.com", /not enclosed/],
    ["the null path where not allowed", "<>", /null path/],
    ["postmaster without a domain for MAIL", "<postmaster>", /missing @domain/],
    ["no @", "<user>", /missing @domain/],
    ["an empty local part", "<@example.com>", /source route|local part/],
    ["a leading dot", "<.user@example.com>", /local part/],
    ["two dots", "<a..b@example.com>", /local part/],
    ["a trailing dot in the local part", "<a.@example.com>", /local part/],
    ["a space outside quotes", "<a b@example.com>", /local part/],
    ["an unterminated quote", '<"ab@example.com>', /local part|@domain/],
    ["a control character in quotes", '<"a\x01b"@example.com>', /quoted/],
    ["an empty domain", "<user@>", /domain/],
    ["a domain with a trailing dot", "<user@example.com.>", /domain/],
    ["a label starting with a hyphen", "<user@-example.com>", /domain/],
    ["a label ending with a hyphen", "<user@example-.com>", /domain/],
    ["an underscore in the domain", "<user@ex_ample.com>", /domain/],
    ["a label of 64 octets", `<user@${long(64)}.example>`, /domain/],
    ["a bad IPv4 literal", "<user@[192.0.2.256]>", /address literal/],
    ["an IPv6 literal without its tag", "<user@[2001:db8::1]>", /address literal/],
    ["a general address literal", "<user@[x400:abc]>", /address literal/],
    ["a source route without a colon", "<@relay.example,user@example.com>", /source route/],
    ["a source route with a bad hop", "<@-bad.example:user@example.com>", /source route/],
    ["a local part of 65 octets", `<${long(65)}@example.com>`, /local part longer than 64/],
    [
      "a quoted local part over 64 once canonical",
      `<"${long(63)} "@example.com>`,
      /local part longer than 64/,
    ],
    ["non-ASCII without SMTPUTF8", "<jörg@example.com>", /local part/],
  ];
  for (const [label, path, reason, opts] of cases) {
    await t.step(label, () => {
      const r = parsePath(path, opts);
      assert.ok(!r.ok, `${path} was accepted as ${r.ok && r.mailbox.address}`);
      assert.match(r.reason, reason);
    });
  }
});

Deno.test("parsePath() enforces the domain and path length limits", async (t) => {
  await t.step("a 255-octet domain is accepted when the path fits", () => {
    const d = [label63, label63, label63, long(63)].join("."); // 255 octets
    assert.equal(d.length, 255);
    const r = parseMailbox(`u@${d}`);
    assert.ok(r.ok, !r.ok ? r.reason : "");
  });
  await t.step("a 256-octet domain is refused", () => {
    const d = [label63, label63, label63, long(62), "b"].join(".");
    assert.equal(d.length, 256);
    const r = parseMailbox(`u@${d}`);
    assert.ok(!r.ok);
    assert.match(r.reason, /domain longer than 255/);
  });
  await t.step("a 256-octet path is accepted, a 257-octet path refused", () => {
    const ok = `<${long(64)}@${domainOfLength(189)}>`;
    assert.equal(ok.length, 256);
    assert.ok(parsePath(ok).ok);
    const tooLong = `<${long(64)}@${domainOfLength(190)}>`;
    assert.equal(tooLong.length, 257);
    const r = parsePath(tooLong);
    assert.ok(!r.ok);
    assert.match(r.reason, /path longer than 256/);
  });
});

Deno.test("pathEnd() finds the closing bracket, skipping quoted strings", async (t) => {
  const cases: [label: string, text: string, end: number][] = [
    ["a plain path then parameters", "<a@b> SIZE=1", 5],
    ["a > inside quotes", '<"a>b"@c> X', 9],
    ["an escaped quote inside quotes", '<"a\\">"@c>', 10],
    ["no opening bracket", "a@b", -1],
    ["no closing bracket", "<a@b", -1],
  ];
  for (const [label, text, end] of cases) {
    await t.step(label, () => assert.equal(pathEnd(text), end));
  }
});

Deno.test("domainOf() gives the lower-cased domain of an address", () => {
  assert.equal(domainOf("User@Example.COM"), "example.com");
  assert.equal(domainOf('"a@b"@c.example'), "c.example");
  assert.equal(domainOf("postmaster"), "");
});
