// smar's policy answers: connect-stage access checks and the relaying decision for each recipient, from
// an access map and a mailertable, as case tables.

import assert from "node:assert/strict";
import { join } from "node:path";
import { clientKeys, parseAccessValue, Policy } from "../components/smar/access.ts";
import { loadMap } from "../components/smar/maps.ts";
import { loadMailertable } from "../components/smar/mailertable.ts";
import type { Verdict } from "../components/protocol/messages.ts";

const ACCESS = `
cltaddr:127.0.0.1	relay
cltaddr:10.1	relay
cltaddr:192.0.2.66	reject
cltaddr:198.51.100	error:451 4.7.1 Try again later please
cltaddr:203.0.113.9	ERROR:550 5.7.1 Go away
cltaddr:203.0.113	relay
cltaddr:2001:db8::5	relay
cltaddr:192.0.2.200	bogus
to:relay.example	relay
to:.relayparent.example	relay
to:notrelay.example	ok
`;

const MAILERTABLE = `
local.example	lmtp:[127.0.0.1]
.localsub.example	lmtp:[127.0.0.1]
remote.example	esmtp:[192.0.2.1]
.	lmtp:[127.0.0.1]
`;

async function withPolicy(fn: (p: Policy) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smar_policy_" });
  try {
    await Deno.writeTextFile(join(dir, "access"), ACCESS);
    await Deno.writeTextFile(join(dir, "mailertable"), MAILERTABLE);
    const access = await loadMap({ name: "access", type: "hash", file: join(dir, "access") });
    const mt = await loadMailertable({ name: "mailertable", type: "hash", file: join(dir, "mailertable") });
    try {
      await fn(new Policy(access, mt));
    } finally {
      access.close();
      mt.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const show = (v: Verdict) =>
  v.reply ? `${v.action} ${v.reply.code} ${v.reply.status} ${v.reply.text}` : v.action;

Deno.test("parseAccessValue() reads relay, ok, reject and error:", async (t) => {
  const cases: [string, ReturnType<typeof parseAccessValue>][] = [
    ["relay", { kind: "relay" }],
    ["RELAY", { kind: "relay" }],
    ["ok", { kind: "ok" }],
    ["reject", { kind: "reject" }],
    ["error:550 5.7.1 No thanks", {
      kind: "error",
      reply: { code: 550, status: "5.7.1", text: "No thanks" },
    }],
    ["error: 421 4.3.2 Busy", { kind: "error", reply: { code: 421, status: "4.3.2", text: "Busy" } }],
    ["error:553 Who are you", { kind: "error", reply: { code: 553, status: "5.0.0", text: "Who are you" } }],
    ["error:550", { kind: "error", reply: { code: 550, status: "5.0.0", text: "Access denied" } }],
    ["error:550 4.7.1 Mixed classes", undefined],
    ["error:250 2.0.0 Not an error", undefined],
    ["discard", undefined],
  ];
  for (const [rhs, want] of cases) await t.step(rhs, () => assert.deepEqual(parseAccessValue(rhs), want));
});

Deno.test("clientKeys() tries the address, then shorter IPv4 prefixes", () => {
  assert.deepEqual(clientKeys("192.0.2.1"), [
    "cltaddr:192.0.2.1",
    "cltaddr:192.0.2",
    "cltaddr:192.0",
    "cltaddr:192",
  ]);
  assert.deepEqual(clientKeys("::ffff:10.1.2.3")[1], "cltaddr:10.1.2");
  assert.deepEqual(clientKeys("2001:0DB8:0:0::5"), ["cltaddr:2001:0db8:0:0::5", "cltaddr:2001:db8::5"]);
});

Deno.test("Policy.checkConnect() rejects clients the access map names", async (t) => {
  await withPolicy(async (policy) => {
    const cases: [string, string, string][] = [
      ["an unlisted client", "192.0.2.1", "accept"],
      ["a client marked reject", "192.0.2.66", "reject 554 5.7.1 Access denied"],
      ["a network with a 4xx error", "198.51.100.7", "tempfail 451 4.7.1 Try again later please"],
      ["an address with a 5xx error, before its network's entry", "203.0.113.9", "reject 550 5.7.1 Go away"],
      ["a relay client", "127.0.0.1", "accept"],
      ["an unknown value is ignored", "192.0.2.200", "accept"],
    ];
    for (const [label, ip, want] of cases) {
      await t.step(label, () => assert.equal(show(policy.checkConnect(ip)), want));
    }
  });
});

Deno.test("Policy.checkRcpt() decides relaying", async (t) => {
  await withPolicy(async (policy) => {
    const OUT = "192.0.2.1";
    const DENIED = "reject 550 5.7.1 Relaying denied";
    const SYNTAX = "reject 501 5.1.3 Bad recipient address syntax";
    const cases: [string, string, string, boolean, string][] = [
      ["a domain the mailertable routes to lmtp", OUT, "user@local.example", false, "accept"],
      ["the same in upper case", OUT, "USER@LOCAL.Example", false, "accept"],
      ["a subdomain of a dotted lmtp key", OUT, "user@a.localsub.example", false, "accept"],
      ["the bare domain of a dotted key is not local", OUT, "user@localsub.example", false, DENIED],
      ["a domain with to: relay", OUT, "user@relay.example", false, "accept"],
      ["a subdomain of a dotted to: relay", OUT, "user@x.relayparent.example", false, "accept"],
      ["to: with a value other than relay", OUT, "user@notrelay.example", false, DENIED],
      ["a domain routed by esmtp", OUT, "user@remote.example", false, DENIED],
      ["the lmtp catch-all does not make every domain local", OUT, "user@elsewhere.example", false, DENIED],
      ["an authorized client", OUT, "user@elsewhere.example", true, "accept"],
      ["a relay client", "127.0.0.1", "user@elsewhere.example", false, "accept"],
      ["a client in a relay network", "10.1.2.3", "user@elsewhere.example", false, "accept"],
      ["a client outside it", "10.2.0.1", "user@elsewhere.example", false, DENIED],
      ["an IPv6 relay client", "2001:db8::5", "user@elsewhere.example", false, "accept"],
      [
        "an IPv6 relay client written long",
        "2001:0db8:0:0:0:0:0:5",
        "user@elsewhere.example",
        false,
        "accept",
      ],
      ["an IPv4-mapped relay client", "::ffff:10.1.2.3", "user@elsewhere.example", false, "accept"],
      ["a % hack to a local domain", OUT, "u%ext.example@local.example", false, DENIED],
      ["a bang path to a local domain", OUT, "ext.example!u@local.example", false, DENIED],
      ["a quoted @ to a local domain", OUT, '"u@ext.example"@local.example', false, DENIED],
      ["two @ signs", OUT, "u@ext.example@local.example", false, DENIED],
      ["a % hack from an authorized client", OUT, "u%ext.example@local.example", true, "accept"],
      ["a % hack from a relay client", "127.0.0.1", "u%ext.example@elsewhere.example", false, "accept"],
      ["a recipient in angle brackets", OUT, "<user@local.example>", false, "accept"],
      ["a bare postmaster (RFC 5321 4.5.1)", OUT, "Postmaster", false, "accept"],
      ["no domain", OUT, "user", false, SYNTAX],
      ["an empty domain", OUT, "user@", false, SYNTAX],
      ["an empty local part", OUT, "@local.example", false, SYNTAX],
      ["a malformed domain", OUT, "user@bad..example", false, SYNTAX],
      ["a malformed address literal", OUT, "user@[999.1.1.1]", false, SYNTAX],
      ["bad syntax even from a relay client", "127.0.0.1", "user", false, SYNTAX],
    ];
    for (const [label, ip, recipient, authorized, want] of cases) {
      await t.step(label, () => {
        assert.equal(show(policy.checkRcpt({ ip, recipient, authorized })), want);
      });
    }
  });
});

Deno.test("Policy.checkRcpt() without maps relays only for authorized clients", () => {
  const policy = new Policy(undefined, undefined);
  assert.equal(
    show(policy.checkRcpt({ ip: "127.0.0.1", recipient: "u@example.com", authorized: false })),
    "reject 550 5.7.1 Relaying denied",
  );
  assert.equal(
    show(policy.checkRcpt({ ip: "127.0.0.1", recipient: "u@example.com", authorized: true })),
    "accept",
  );
  assert.equal(show(policy.checkConnect("127.0.0.1")), "accept");
});
