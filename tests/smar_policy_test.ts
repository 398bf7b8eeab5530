// smar's connect and MAIL stages (sendmail X README 3.12.2) as case tables: the access map's client and
// sender entries with and without the `access` flag, quick:, cont, discard, delay_checks, the client's
// confirmed name, and the sender domain checks (routable, temporary DNS failure, mxbadip, local senders).

import assert from "node:assert/strict";
import type { CheckContext } from "../components/protocol/messages.ts";
import { A, MX, policyOf, PTR, show } from "./helpers/smar_policy.ts";

const ACCESS = `
cltaddr:127.0.0.1	relay
cltaddr:10.1	relay
cltaddr:10.2	quick:relay
cltaddr:192.0.2.66	reject
cltaddr:198.51.100	error:451 4.7.1 Try again later please
cltaddr:198.51.100.7	cont
cltaddr:203.0.113.9	ERROR:550 5.7.1 Go away
cltaddr:203.0.113.10	discard
cltaddr:203.0.113.11	ok
cltaddr:203.0.113.12	quick:ok
cltaddr:203.0.113.13	quick:error:550 5.7.1 No mail from here
cltaddr:2001:db8::5	relay
cltresolve:no	error:550 5.7.1 Client name does not resolve
cltresolve:tempptr	error:451 4.7.1 Client name lookup failed
cltname:.dialup.example	reject
cltname:good.example	relay
from:<>	ok
from:spammer	reject
from:@.spam.example	error:553 5.7.1 Spam domain
from:bulk@example.net	discard
from:vip@example.net	quick:ok
mxbadip:127	error:553 5.7.1 MX points to loopback
mxbadip:10	reject
`;

const DNS = {
  "PTR 1.2.0.192.in-addr.arpa": [PTR("1.2.0.192.in-addr.arpa", "host.dialup.example")],
  "A host.dialup.example": [A("host.dialup.example", "192.0.2.1")],
  "PTR 2.2.0.192.in-addr.arpa": [PTR("2.2.0.192.in-addr.arpa", "good.example")],
  "A good.example": [A("good.example", "192.0.2.2")],
  "PTR 3.2.0.192.in-addr.arpa": [PTR("3.2.0.192.in-addr.arpa", "liar.example")],
  "A liar.example": [A("liar.example", "192.0.2.99")],
  "PTR 4.2.0.192.in-addr.arpa": "temp" as const,
  "PTR 5.2.0.192.in-addr.arpa": [PTR("5.2.0.192.in-addr.arpa", "slow.example")],
  "A slow.example": "temp" as const,
  "MX example.org": [MX("example.org", "mx.example.org")],
  "A mx.example.org": [A("mx.example.org", "192.0.2.25")],
  "MX a-only.example": "nodata" as const,
  "A a-only.example": [A("a-only.example", "192.0.2.26")],
  "MX nothing.example": "nodata" as const,
  "A nothing.example": "nodata" as const,
  "MX flaky.example": "temp" as const,
  "MX loop.example": [MX("loop.example", "mx.loop.example")],
  "A mx.loop.example": [A("mx.loop.example", "127.0.0.1")],
  "MX private.example": [MX("private.example", "mx.private.example")],
  "A mx.private.example": [A("mx.private.example", "10.0.0.1")],
  "MX nullmx.example": [MX("nullmx.example", "", 0)],
};

const MAILERTABLE = "local.example\tlmtp:[127.0.0.1]\nrouted.example\tesmtp:[192.0.2.1]\n";
const ACCESS_FLAG: CheckContext = { flags: ["access"] };
const DELAY: CheckContext = { flags: ["access", "delay_checks"] };

Deno.test("the connect stage follows cltaddr:, then the client's name, with the access flag", async (t) => {
  const p = policyOf({ access: ACCESS, mailertable: MAILERTABLE, dns: DNS });
  const cases: [string, string, CheckContext, string, object?][] = [
    ["a relay client", "127.0.0.1", ACCESS_FLAG, "accept", { relay: true, whitelisted: true }],
    ["a relay net", "10.1.9.9", {}, "accept", { relay: true }],
    ["quick:relay", "10.2.0.1", {}, "accept", { relay: true, quick: true }],
    ["reject (554 before the greeting)", "192.0.2.66", ACCESS_FLAG, "reject 554 5.7.0 Rejected."],
    ["reject is held back by delay_checks", "192.0.2.66", DELAY, "accept"],
    ["quick:error is not held back", "203.0.113.13", DELAY, "reject 550 5.7.1 No mail from here"],
    ["error: with its own reply", "198.51.100.1", ACCESS_FLAG, "tempfail 451 4.7.1 Try again later please"],
    [
      "cont ends the net's lookup, the name checks go on",
      "198.51.100.7",
      ACCESS_FLAG,
      "reject 550 5.7.1 Client name does not resolve",
    ],
    ["error:550", "203.0.113.9", ACCESS_FLAG, "reject 550 5.7.1 Go away"],
    ["discard", "203.0.113.10", ACCESS_FLAG, "accept discard", { discard: true }],
    ["ok", "203.0.113.11", ACCESS_FLAG, "accept", { whitelisted: true }],
    ["quick:ok", "203.0.113.12", ACCESS_FLAG, "accept", { whitelisted: true, quick: true }],
    ["an IPv6 relay client", "2001:db8::5", {}, "accept", { relay: true }],
    ["without the access flag only relay counts", "192.0.2.66", {}, "accept", { resolve: "no" }],
    ["a client name in a rejected domain", "192.0.2.1", ACCESS_FLAG, "reject 554 5.7.0 Rejected."],
    ["a client name that relays", "192.0.2.2", {}, "accept", {
      resolve: "ok",
      clientName: "good.example",
      relay: true,
    }],
    [
      "a PTR name whose A record does not confirm it",
      "192.0.2.3",
      ACCESS_FLAG,
      "reject 550 5.7.1 Client name does not resolve",
    ],
    ["a PTR lookup that fails", "192.0.2.4", ACCESS_FLAG, "tempfail 451 4.7.1 Client name lookup failed"],
    ["an A lookup that fails: tempa has no entry", "192.0.2.5", ACCESS_FLAG, "accept", { resolve: "tempa" }],
    ["no PTR record", "192.0.2.6", { flags: ["access", "delay_checks"] }, "accept", {
      resolve: "no",
      deferred: { code: 550, status: "5.7.1", text: "Client name does not resolve" },
    }],
  ];
  for (const [label, ip, ctx, want, state] of cases) {
    await t.step(label, async () => {
      const v = await p.checkConnect(ip, ctx);
      assert.equal(show(v), want);
      if (state) assert.deepEqual(v.state, state);
    });
  }
});

Deno.test("the connect stage asks DNS nothing when the access map has no name entries", async () => {
  const p = policyOf({ access: "cltaddr:10 reject\n", dns: DNS });
  assert.equal(show(await p.checkConnect("192.0.2.1", ACCESS_FLAG)), "accept");
  assert.deepEqual(p.dns.asked, []);
});

Deno.test("the MAIL stage checks from:, then the sender's domain, with the access flag", async (t) => {
  const p = policyOf({
    access: ACCESS,
    mailertable: MAILERTABLE,
    dns: DNS,
    aliases: "postmaster: alice\n",
    users: "alice\nbob\n",
  });
  const cases: [string, string, CheckContext, string][] = [
    ["the null sender", "", ACCESS_FLAG, "accept"],
    ["a routable domain", "someone@example.org", ACCESS_FLAG, "accept"],
    ["a domain with an A record only", "someone@a-only.example", ACCESS_FLAG, "accept"],
    [
      "a domain that does not exist",
      "someone@nowhere.example",
      ACCESS_FLAG,
      "reject 553 5.1.8 Domain of sender address does not exist",
    ],
    [
      "a domain with neither MX nor A",
      "someone@nothing.example",
      ACCESS_FLAG,
      "reject 553 5.1.8 Domain of sender address does not exist",
    ],
    [
      "a domain DNS cannot tell about now",
      "someone@flaky.example",
      ACCESS_FLAG,
      "tempfail 451 4.1.8 Domain of sender address does not resolve",
    ],
    [
      "a domain with a null MX",
      "someone@nullmx.example",
      ACCESS_FLAG,
      "reject 550 5.7.27 Sender domain does not accept mail",
    ],
    ["a domain in the mailertable", "someone@routed.example", ACCESS_FLAG, "accept"],
    ["an address literal", "someone@[192.0.2.1]", ACCESS_FLAG, "accept"],
    [
      "mxbadip: an MX on loopback",
      "someone@loop.example",
      ACCESS_FLAG,
      "reject 553 5.7.1 MX points to loopback",
    ],
    [
      "mxbadip: reject",
      "someone@private.example",
      ACCESS_FLAG,
      "reject 553 5.7.1 Domain of sender address has a forbidden mail exchanger",
    ],
    [
      "from: reject (a bare local part: any domain)",
      "spammer@example.org",
      ACCESS_FLAG,
      "reject 550 5.7.0 Rejected.",
    ],
    ["from: error for subdomains", "x@mail.spam.example", ACCESS_FLAG, "reject 553 5.7.1 Spam domain"],
    ["from: discard", "bulk@example.net", ACCESS_FLAG, "accept discard"],
    ["from: quick:ok skips the domain check", "vip@example.net", ACCESS_FLAG, "accept"],
    ["a local sender that exists", "bob@local.example", ACCESS_FLAG, "accept"],
    ["a local sender that is an alias", "postmaster@local.example", ACCESS_FLAG, "accept"],
    [
      "a local sender that does not exist",
      "mallory@local.example",
      ACCESS_FLAG,
      "reject 553 5.1.0 Sender address rejected: user unknown",
    ],
    ["no checks without the access flag", "spammer@nowhere.example", {}, "accept"],
    ["a refusal held back by delay_checks", "spammer@example.org", DELAY, "accept"],
    ["quick: from the connect stage skips every check", "spammer@nowhere.example", {
      flags: ["access"],
      state: { quick: true },
    }, "accept"],
    ["discard from the connect stage carries over", "someone@example.org", {
      flags: ["access"],
      state: { discard: true },
    }, "accept discard"],
  ];
  for (const [label, sender, ctx, want] of cases) {
    await t.step(label, async () => assert.equal(show(await p.checkMail("192.0.2.200", sender, ctx)), want));
  }
});

Deno.test("delay_checks keeps the first refusal in the state for RCPT", async () => {
  const p = policyOf({ access: ACCESS, mailertable: MAILERTABLE, dns: DNS });
  const connect = await p.checkConnect("192.0.2.66", DELAY);
  const rejected = { code: 550, status: "5.7.0", text: "Rejected." };
  assert.deepEqual(connect.state, { deferred: rejected });
  const mail = await p.checkMail("192.0.2.66", "spammer@example.org", { ...DELAY, state: connect.state });
  assert.deepEqual(mail.state, { deferred: rejected });
  const fresh = await p.checkMail("192.0.2.1", "spammer@example.org", { ...DELAY, state: {} });
  assert.deepEqual(fresh.state, { deferred: rejected });
});

Deno.test("the mailertable's default entry `.` makes every sender domain routable (MAIL check 1)", async () => {
  const p = policyOf({ access: ACCESS, mailertable: MAILERTABLE + ".\tesmtp:[192.0.2.1]\n", dns: DNS });
  assert.equal(show(await p.checkMail("192.0.2.200", "someone@nowhere.example", ACCESS_FLAG)), "accept");
  assert.deepEqual(p.dns.asked, []);
});
