// The access map's right-hand sides (relay, ok, reject, discard, cont, error:, each optionally quick:)
// and its first-match lookup, as case tables.

import assert from "node:assert/strict";
import { AccessMap, type AccessValue, parseAccessValue } from "../components/smar/access.ts";
import { syncMap } from "../components/smar/maps.ts";
import { addressKeys, ipKeys, tagged } from "../components/smar/keys.ts";
import { textMap } from "./helpers/smar_policy.ts";

Deno.test("parseAccessValue() reads every right-hand side of the README", async (t) => {
  const cases: [string, AccessValue | undefined][] = [
    ["relay", { action: "relay", quick: false }],
    ["RELAY", { action: "relay", quick: false }],
    ["ok", { action: "ok", quick: false }],
    ["reject", { action: "reject", quick: false }],
    ["discard", { action: "discard", quick: false }],
    ["cont", { action: "cont", quick: false }],
    ["quick:relay", { action: "relay", quick: true }],
    ["QUICK:ok", { action: "ok", quick: true }],
    ["quick:reject", { action: "reject", quick: true }],
    ["quick:discard", { action: "discard", quick: true }],
    ["error:550 5.7.1 No thanks", {
      action: "error",
      quick: false,
      reply: { code: 550, status: "5.7.1", text: "No thanks" },
    }],
    ["quick:error:451 4.7.1 Later", {
      action: "error",
      quick: true,
      reply: { code: 451, status: "4.7.1", text: "Later" },
    }],
    ["error: 421 4.3.2 Busy", {
      action: "error",
      quick: false,
      reply: { code: 421, status: "4.3.2", text: "Busy" },
    }],
    ["error:553 Who are you", {
      action: "error",
      quick: false,
      reply: { code: 553, status: "5.0.0", text: "Who are you" },
    }],
    ["error:550", {
      action: "error",
      quick: false,
      reply: { code: 550, status: "5.0.0", text: "Access denied" },
    }],
    ["error:550 4.7.1 Mixed classes", undefined],
    ["error:250 2.0.0 Not an error", undefined],
    ["quick:", undefined],
    ["bogus", undefined],
  ];
  for (const [rhs, want] of cases) await t.step(rhs, () => assert.deepEqual(parseAccessValue(rhs), want));
});

const MAP = `
cltaddr:10	reject
cltaddr:10.1.2	cont
cltaddr:10.1.2.3	relay
cltaddr:192.0.2.7	bogus
from:spammer	reject
from:@.spam.example	error:550 5.7.1 Spam domain
from:friend@spam.example	ok
`;

Deno.test("AccessMap.first() takes the most specific entry; cont ends the lookup without deciding", async (t) => {
  const access = new AccessMap(syncMap(textMap("access", MAP)));
  const cases: [string, string[], string | undefined][] = [
    ["a host of 10 is rejected", tagged("cltaddr", ipKeys("10.9.9.9")), "cltaddr:10 reject"],
    ["10.1.2.3 relays", tagged("cltaddr", ipKeys("10.1.2.3")), "cltaddr:10.1.2.3 relay"],
    ["the rest of 10.1.2 stops at cont", tagged("cltaddr", ipKeys("10.1.2.4")), "cltaddr:10.1.2 cont"],
    ["an unknown value counts as cont", tagged("cltaddr", ipKeys("192.0.2.7")), "cltaddr:192.0.2.7 cont"],
    ["no entry", tagged("cltaddr", ipKeys("192.0.2.8")), undefined],
    ["spammer at any domain", tagged("from", addressKeys("spammer@example.org")), "from:spammer reject"],
    [
      "a subdomain of spam.example",
      tagged("from", addressKeys("x@mail.spam.example")),
      "from:@.spam.example error",
    ],
    ["spam.example itself has no entry", tagged("from", addressKeys("x@spam.example")), undefined],
    [
      "a friend there is ok",
      tagged("from", addressKeys("friend@spam.example")),
      "from:friend@spam.example ok",
    ],
  ];
  for (const [label, keys, want] of cases) {
    await t.step(label, async () => {
      const hit = await access.first(keys);
      assert.equal(hit ? `${hit.key} ${hit.value.action}` : undefined, want);
    });
  }
});

Deno.test("AccessMap.mayHave() tells which tags the map holds", () => {
  const access = new AccessMap(syncMap(textMap("access", MAP)));
  assert.equal(access.mayHave("cltaddr"), true);
  assert.equal(access.mayHave("from"), true);
  assert.equal(access.mayHave("cltname"), false);
  assert.equal(access.mayHave("mxbadip"), false);
});
