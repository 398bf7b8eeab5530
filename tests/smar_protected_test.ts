// Protected recipients (sendmail X README 3.10.2) as case tables: `protectedrcpt:` entries with from:,
// cltaddr: and list: restrictions, allow_by choosing which count, and match_type choosing how the
// recipient is found.

import assert from "node:assert/strict";
import type { ProtectedRecipientsConfig } from "../config/types.ts";
import { protectedKeys } from "../components/smar/protected.ts";
import { policyOf, show } from "./helpers/smar_policy.ts";

const ACCESS = `
protectedrcpt:all@local.example	from:boss@example.com cltaddr:10.1 list:staff
protectedrcpt:board@local.example	from:@example.com,from:.partner.example
protectedrcpt:ceo	from:assistant@local.example
`;
const ALIASES = `
staff: alice, bob@example.org
all: alice, bob@example.org
board: alice
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

Deno.test("a protected recipient takes mail only from whom its entry allows", async (t) => {
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
      "an allowed client net",
      "10.1.2.3",
      "intruder@example.com",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    [
      "a member of the list",
      "192.0.2.1",
      "bob@example.org",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    [
      "a bare member matches a local sender",
      "192.0.2.1",
      "alice@local.example",
      "all@local.example",
      "accept -> alice@localhost, bob@example.org",
    ],
    ["the null sender", "192.0.2.1", "", "all@local.example", refused],
    [
      "any sender of a domain",
      "192.0.2.1",
      "someone@example.com",
      "board@local.example",
      "accept -> alice@localhost",
    ],
    [
      "a subdomain of a .domain",
      "192.0.2.1",
      "x@mail.partner.example",
      "board@local.example",
      "accept -> alice@localhost",
    ],
    ["not the domain of a .domain", "192.0.2.1", "x@partner.example", "board@local.example", refused],
    ["an unprotected recipient", "192.0.2.1", "anyone@example.net", "alice@local.example", "accept"],
    [
      "the detail of a protected recipient: exact match only",
      "192.0.2.1",
      "x@example.net",
      "all+x@local.example",
      "accept",
    ],
  ];
  for (const [label, ip, sender, recipient, want] of cases) {
    await t.step(label, async () => assert.equal(await ask(undefined, { ip, sender, recipient }), want));
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
      "protectedrcpt:all@local.example",
      "protectedrcpt:all*@local.example",
      "protectedrcpt:@local.example",
      "protectedrcpt:local.example",
      "protectedrcpt:.example",
      "protectedrcpt:all@",
      "protectedrcpt:all*@",
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
      access: "protectedrcpt:ceo@ from:assistant@local.example\n",
      more: { protection: cfg },
    });
    const v = await p.checkRcpt(
      { ip: "192.0.2.1", sender: "x@example.com", recipient: "ceo@example.com", authorized: true },
      { flags: ["access"], state: {} },
    );
    assert.equal(show(v), refused);
  });
});
