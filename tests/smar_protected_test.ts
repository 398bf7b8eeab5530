// Protected recipients (sendmail X README 3.10.2) as case tables: `protectedrcpt:` entries with from:,
// cltaddr: and list: restrictions, allow_by choosing which count, and match_type choosing how the
// recipient is found.

import assert from "node:assert/strict";
import type { ProtectedRecipientsConfig } from "../config/types.ts";
import { protectedKeys } from "../components/smar/protected.ts";
import { policyOf, show } from "./helpers/smar_policy.ts";

const ACCESS = `
protectedrcpt:all@local.example	from:<boss@example.com> cltaddr:10.1.2.3 list:staff
protectedrcpt:board@local.example	from:@example.com,from:@.partner.example cltaddr:10.2
protectedrcpt:ceo	from:assistant@local.example
`;
const ALIASES = `
staff: alice <bob@example.org>
all: alice, bob@example.org
board: alice
alice: local:
`;

const ask = async (
  cfg: ProtectedRecipientsConfig | undefined,
  q: { ip: string; sender: string; recipient: string },
) => {
  const p = policyOf({
    access: ACCESS,
    mailertable: "local.example\tlmtp:[127.0.0.1]\n",
    aliases: ALIASES,
    more: cfg ? { protection: cfg } : {},
  });
  return show(await p.checkRcpt({ ...q, authorized: false }, { flags: ["access"], state: {} }));
};

const refused = "reject 550 5.7.1 Recipient is protected: sender not allowed";
const generic: ProtectedRecipientsConfig = {
  allow_by: ["sender", "client_ip"],
  match_type: ["generic_lookup"],
};

Deno.test("a protected recipient takes mail only from whom its entry allows, exactly by default", async (t) => {
  const cases: [string, string, string, string, string][] = [
    [
      "an allowed sender",
      "192.0.2.1",
      "boss@example.com",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    ["another sender", "192.0.2.1", "intruder@example.com", "all@local.example", refused],
    [
      "an allowed client",
      "10.1.2.3",
      "intruder@example.com",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    ["its net needs generic_lookup", "10.1.2.4", "intruder@example.com", "all@local.example", refused],
    [
      "a member of the list",
      "192.0.2.1",
      "bob@example.org",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    [
      "a bare member is qualified with the hostname",
      "192.0.2.1",
      "alice@localhost",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    [
      "so it is not that user at another domain",
      "192.0.2.1",
      "alice@local.example",
      "all@local.example",
      refused,
    ],
    ["the null sender", "192.0.2.1", "", "all@local.example", refused],
    ["from:@domain needs generic_lookup", "192.0.2.1", "someone@example.com", "board@local.example", refused],
    [
      "an unprotected recipient",
      "192.0.2.1",
      "anyone@example.net",
      "alice@local.example",
      "accept -> alice@local.example",
    ],
    [
      "the detail of a protected recipient: exact match only (then an unknown user)",
      "192.0.2.1",
      "x@example.net",
      "all+x@local.example",
      "reject 550 5.1.1 <all+x@local.example>: User unknown",
    ],
  ];
  for (const [label, ip, sender, recipient, want] of cases) {
    await t.step(label, async () => assert.equal(await ask(undefined, { ip, sender, recipient }), want));
  }
});

Deno.test("generic_lookup matches senders, nets and recipients in the README's lookup order", async (t) => {
  const cases: [string, string, string, string, string][] = [
    [
      "any sender of a domain",
      "192.0.2.1",
      "someone@example.com",
      "board@local.example",
      "accept -> alice@localhost",
    ],
    [
      "a subdomain of @.domain",
      "192.0.2.1",
      "x@mail.partner.example",
      "board@local.example",
      "accept -> alice@localhost",
    ],
    ["not the domain of @.domain", "192.0.2.1", "x@partner.example", "board@local.example", refused],
    ["a client net", "10.2.7.7", "x@partner.example", "board@local.example", "accept -> alice@localhost"],
    [
      "a bare local part protects it at every domain",
      "192.0.2.1",
      "x@example.com",
      "ceo@local.example",
      refused,
    ],
  ];
  for (const [label, ip, sender, recipient, want] of cases) {
    await t.step(label, async () => assert.equal(await ask(generic, { ip, sender, recipient }), want));
  }
});

Deno.test("allow_by limits which restrictions count", async (t) => {
  const bySender: ProtectedRecipientsConfig = { allow_by: ["sender"], match_type: [] };
  const byIp: ProtectedRecipientsConfig = { allow_by: ["client_ip"], match_type: [] };
  const q = (ip: string, sender: string) => ({ ip, sender, recipient: "all@local.example" });
  await t.step("sender only: the client net no longer counts", async () => {
    assert.equal(await ask(bySender, q("10.1.2.3", "intruder@example.com")), refused);
    assert.notEqual(await ask(bySender, q("192.0.2.1", "boss@example.com")), refused);
  });
  await t.step("client_ip only: senders and lists no longer count", async () => {
    assert.equal(await ask(byIp, q("192.0.2.1", "boss@example.com")), refused);
    assert.equal(await ask(byIp, q("192.0.2.1", "bob@example.org")), refused);
    assert.notEqual(await ask(byIp, q("10.1.2.3", "intruder@example.com")), refused);
  });
});

Deno.test("match_type chooses how the recipient is looked up", async (t) => {
  const cases: [string, string[], string, string[]][] = [
    ["exact by default", [], "all+x@local.example", ["protectedrcpt:all+x@local.example"]],
    ["implicitly_match_detail", ["implicitly_match_detail"], "all+x@local.example", [
      "protectedrcpt:all+x@local.example",
      "protectedrcpt:all@local.example",
    ]],
    ["generic_lookup: the full address order", ["generic_lookup"], "all@local.example", [
      "protectedrcpt:all*@local.example",
      "protectedrcpt:all@local.example",
      "protectedrcpt:@local.example",
      "protectedrcpt:all*@.example",
      "protectedrcpt:all@.example",
      "protectedrcpt:@.example",
      "protectedrcpt:all*",
      "protectedrcpt:all",
    ]],
  ];
  for (const [label, match_type, rcpt, want] of cases) {
    await t.step(label, () => assert.deepEqual(protectedKeys(rcpt, { allow_by: [], match_type }, "+"), want));
  }
  await t.step("a detail finds its protected user with implicitly_match_detail", async () => {
    const cfg = { allow_by: ["sender", "client_ip"], match_type: ["implicitly_match_detail"] };
    const q = { ip: "192.0.2.1", sender: "intruder@example.com", recipient: "all+x@local.example" };
    assert.equal(await ask(cfg, q), refused);
  });
  await t.step("generic_lookup finds a user entry at any domain", async () => {
    const cfg = { allow_by: ["sender"], match_type: ["generic_lookup"] };
    const p = policyOf({
      access: "protectedrcpt:ceo from:assistant@local.example\n",
      more: { protection: cfg },
    });
    const v = await p.checkRcpt(
      { ip: "192.0.2.1", sender: "x@example.com", recipient: "ceo@example.com", authorized: true },
      { flags: ["access"], state: {} },
    );
    assert.equal(show(v), refused);
  });
});
