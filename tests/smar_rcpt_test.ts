// smar's RCPT stage as case tables: relaying (README 3.12.2 RCPT case 1 and 4.3-4.5) for clients that
// may and may not relay, the address forms that would smuggle a relay, `to:` entries, refusals held back
// by delay_checks, `discard` at each stage, local users and aliases.

import assert from "node:assert/strict";
import type { CheckContext, PolicyState } from "../components/protocol/messages.ts";
import { policyOf, show } from "./helpers/smar_policy.ts";

const ACCESS = `
cltaddr:127.0.0.1	relay
to:@relay.example	relay
to:@.relayparent.example	relay
to:@notrelay.example	ok
to:blocked@local.example	reject
to:busy@local.example	error:452 4.2.2 Mailbox full
to:trap@local.example	discard
to:pit@local.example	quick:discard
to:postmaster@local.example	ok
to:abuse@local.example	quick:ok
certissuer:/C=US/O=Example+20CA	relay
certsubject:/CN=partner.example	relay
`;
const MAILERTABLE = `
local.example	lmtp:[127.0.0.1]
.localsub.example	lmtp:[127.0.0.1]
localhost	lmtp:[127.0.0.1]
remote.example	esmtp:[192.0.2.1]
.	esmtp:[192.0.2.2]
`;
const USERS = "alice\nbob\npostmaster\nblocked\nbusy\ntrap\nabuse\npit\n";

const OUTSIDE: PolicyState = {};
const RELAY: PolicyState = { relay: true };
const ACCESS_FLAG = ["access"];

Deno.test("RCPT from a client that may not relay: local domains and to: relay only", async (t) => {
  const p = policyOf({ access: ACCESS, mailertable: MAILERTABLE, users: USERS });
  const denied = "reject 550 5.7.1 Relay access denied";
  const cases: [string, string, string][] = [
    ["a local user", "alice@local.example", "accept"],
    ["a local user with a detail", "alice+news@local.example", "accept"],
    ["a local subdomain", "alice@mail.localsub.example", "accept"],
    ["an unknown local user", "carol@local.example", "reject 550 5.1.1 <carol@local.example>: User unknown"],
    ["a to: relay domain", "u@relay.example", "accept"],
    ["a subdomain of a to: relay parent", "u@a.relayparent.example", "accept"],
    ["to: ok is not relay", "u@notrelay.example", denied],
    ["a remote domain in the mailertable", "u@remote.example", denied],
    ["a domain only the catch-all routes", "u@example.com", denied],
    ["the percent hack u%ext@us", "u%example.com@local.example", denied],
    ["a bang path ext!u@us", "example.com!u@local.example", denied],
    ['a quoted local part "u@ext"@us', '"u@example.com"@local.example', denied],
    ["what a source route @us:u@ext leaves", "u@example.com", denied],
    ["a bare postmaster", "postmaster", "accept -> postmaster@localhost"],
    ["no domain", "alice", "reject 501 5.1.3 Bad recipient address syntax"],
  ];
  for (const [label, rcpt, want] of cases) {
    await t.step(label, async () => {
      const v = await p.checkRcpt(
        { ip: "192.0.2.200", sender: "s@example.org", recipient: rcpt, authorized: false },
        { state: OUTSIDE },
      );
      assert.equal(show(v), want);
    });
  }
});

Deno.test("RCPT from a client that may relay: anything, even smuggling forms", async (t) => {
  const p = policyOf({ access: ACCESS, mailertable: MAILERTABLE, users: USERS });
  const cases: [string, boolean, CheckContext, string][] = [
    ["a relay client (connect state)", false, { state: RELAY }, "accept"],
    ["an AUTH session", true, { state: OUTSIDE }, "accept"],
    ["a verified certificate with allow_relaying_if_verified", false, {
      state: OUTSIDE,
      cert: { verified: true, issuer: "/O=Any", subject: "/CN=any" },
      tlsFlags: ["allow_relaying_if_verified"],
    }, "accept"],
    ["an unverified certificate", false, {
      state: OUTSIDE,
      cert: { verified: false, issuer: "/C=US/O=Example+20CA", subject: "/CN=x" },
      tlsFlags: ["allow_relaying_if_verified"],
    }, "reject 550 5.7.1 Relay access denied"],
    ["a certificate issuer with a relay entry", false, {
      state: OUTSIDE,
      cert: { verified: true, issuer: "/C=US/O=Example+20CA", subject: "/CN=x" },
      tlsFlags: ["allow_relaying_if_verified", "check_access_map_for_relaying"],
    }, "accept"],
    ["a certificate subject with a relay entry", false, {
      state: OUTSIDE,
      cert: { verified: true, issuer: "/O=Other", subject: "/CN=partner.example" },
      tlsFlags: ["check_access_map_for_relaying"],
    }, "accept"],
    ["a certificate the access map does not list", false, {
      state: OUTSIDE,
      cert: { verified: true, issuer: "/O=Other", subject: "/CN=other" },
      tlsFlags: ["allow_relaying_if_verified", "check_access_map_for_relaying"],
    }, "reject 550 5.7.1 Relay access denied"],
  ];
  for (const [label, authorized, ctx, want] of cases) {
    await t.step(label, async () => {
      const q = { ip: "192.0.2.200", sender: "s@example.org", recipient: "u%x@example.com", authorized };
      assert.equal(show(await p.checkRcpt(q, ctx)), want);
    });
  }
  await t.step("a check without state looks the client up", async () => {
    const q = { ip: "127.0.0.1", sender: "s@example.org", recipient: "u@example.com", authorized: false };
    assert.equal(show(await p.checkRcpt(q)), "accept");
  });
});

Deno.test("lmtp_does_not_imply_relaying: a local domain needs a to: relay entry", async () => {
  const p = policyOf({ access: "to:@localhost relay\n", mailertable: MAILERTABLE });
  const ask = (recipient: string) =>
    p.checkRcpt({ ip: "192.0.2.200", sender: "", recipient, authorized: false }, {
      flags: ["lmtp_does_not_imply_relaying"],
      state: OUTSIDE,
    });
  assert.equal(show(await ask("alice@local.example")), "reject 550 5.7.1 Relay access denied");
  assert.equal(show(await ask("alice@localhost")), "accept");
});

Deno.test("RCPT with the access flag: to: entries, held-back refusals, discard per stage", async (t) => {
  const p = policyOf({ access: ACCESS, mailertable: MAILERTABLE, users: USERS });
  const held = { code: 550, status: "5.7.1", text: "Access denied" };
  const cases: [string, string, PolicyState, string][] = [
    ["to: reject", "blocked@local.example", OUTSIDE, "reject 550 5.7.0 Rejected."],
    ["to: error", "busy@local.example", OUTSIDE, "tempfail 452 4.2.2 Mailbox full"],
    ["to: discard drops that recipient", "trap@local.example", OUTSIDE, "accept drop"],
    [
      "to: quick:discard drops the transaction",
      "pit@local.example",
      OUTSIDE,
      "accept discard",
    ],
    [
      "a refusal held back from MAIL",
      "alice@local.example",
      { deferred: held },
      "reject 550 5.7.1 Access denied",
    ],
    [
      "a plain to: ok does not lift it (README 3.9.3.1)",
      "postmaster@local.example",
      { deferred: held },
      "reject 550 5.7.1 Access denied",
    ],
    ["to: quick:ok lifts it", "abuse@local.example", { deferred: held }, "accept"],
    ["discard from the connect or MAIL stage", "alice@local.example", { discard: true }, "accept discard"],
    ["quick: skips the to: entry", "blocked@local.example", { quick: true, relay: true }, "accept"],
  ];
  for (const [label, rcpt, state, want] of cases) {
    await t.step(label, async () => {
      const v = await p.checkRcpt(
        { ip: "192.0.2.200", sender: "s@example.org", recipient: rcpt, authorized: false },
        { flags: ACCESS_FLAG, state },
      );
      assert.equal(show(v), want);
    });
  }
  await t.step("without the access flag to: reject does nothing", async () => {
    const v = await p.checkRcpt(
      { ip: "192.0.2.200", sender: "s@example.org", recipient: "blocked@local.example", authorized: false },
      { state: OUTSIDE },
    );
    assert.equal(show(v), "accept");
  });
});

Deno.test("RCPT expands aliases before routing and checks the local users they name", async (t) => {
  const p = policyOf({
    access: ACCESS,
    mailertable: MAILERTABLE,
    users: USERS,
    aliases: `
postmaster: alice
team: alice, bob, partner@remote.example
ghosts: alice, casper
`,
  });
  const cases: [string, string, string][] = [
    ["an alias to a local user", "postmaster@local.example", "accept -> alice@localhost"],
    [
      "a list with a remote member",
      "team@localhost",
      "accept -> alice@localhost, bob@localhost, partner@remote.example",
    ],
    [
      "an unknown member is kept (it bounces later)",
      "ghosts@localhost",
      "accept -> alice@localhost, casper@localhost",
    ],
    ["a bare postmaster", "postmaster", "accept -> alice@localhost"],
    ["a user that is no alias", "bob@localhost", "accept"],
  ];
  for (const [label, rcpt, want] of cases) {
    await t.step(label, async () => {
      const v = await p.checkRcpt(
        { ip: "192.0.2.200", sender: "s@example.org", recipient: rcpt, authorized: false },
        { state: OUTSIDE },
      );
      assert.equal(show(v), want);
    });
  }
});
