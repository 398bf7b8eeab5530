// Alias expansion (sendmail X README 3.9.3.3) as case tables: the flags that choose the keys, nesting up
// to 5 levels, loops, the local: marker, macros, owner- lists and error: entries.

import assert from "node:assert/strict";
import { Aliases, type Expansion, splitList } from "../components/smar/aliases.ts";
import { syncMap } from "../components/smar/maps.ts";
import { textMap } from "./helpers/smar_policy.ts";

const LOCAL = new Set(["localhost", "local.example", "other.local"]);

function aliases(text: string, flags: string[] = [], delimiter = "+"): Aliases {
  return new Aliases(syncMap(textMap("aliases", text, "aliases")), {
    flags,
    delimiter,
    hostname: "localhost",
    isLocal: (d) => LOCAL.has(d),
  });
}

function show(x: Expansion): string {
  if (x.kind === "error") return `${x.reply.code} ${x.reply.status} ${x.reply.text}`;
  const list = x.recipients.map((r) => `${r.address}${r.local ? "" : " (remote)"}`).join(", ");
  return `${list}${x.owner ? ` [owner ${x.owner}]` : ""}${x.expanded ? "" : " [not an alias]"}`;
}

const NESTED = `
# nesting: a1 -> a2 -> ... -> a6
a1: a2
a2: a3
a3: a4
a4: a5
a5: alice
b1: b2
b2: b3
b3: b4
b4: b5
b5: b6
b6: alice
# loops
loop1: loop2
loop2: loop1
root: root, admin@remote.example
# the local: marker is not expanded again
direct: local:a1
# lists and their owners
staff: alice,
  bob, carol@remote.example
owner-staff: alice
bounce: error:550 5.1.1 This address no longer exists
`;

Deno.test("Aliases.expand() follows nesting up to 5 levels and refuses loops", async (t) => {
  const a = aliases(NESTED);
  const cases: [string, string][] = [
    ["a1@localhost", "alice@localhost"],
    ["b1@localhost", "550 5.4.6 Too many levels of aliases at b6@localhost"],
    ["loop1@localhost", "550 5.4.6 Alias loop detected at loop1@localhost"],
    ["root@localhost", "root@localhost, admin@remote.example (remote)"],
    ["direct@localhost", "a1@localhost"],
    [
      "staff@localhost",
      "alice@localhost, bob@localhost, carol@remote.example (remote) [owner owner-staff@localhost]",
    ],
    ["bounce@localhost", "550 5.1.1 This address no longer exists"],
    ["nobody@localhost", "nobody@localhost [not an alias]"],
    ["a1@remote.example", "a1@remote.example (remote) [not an alias]"],
  ];
  for (const [address, want] of cases) {
    await t.step(address, async () => assert.equal(show(await a.expand(address)), want));
  }
});

const FLAGGED = `
bob: robert
bob@other.local: bobby@remote.example
@other.local: catchall
@.sub.example: sub-${"${subdomain}"}
sales@remote.example: sales-team@local.example
list: ${"${user}"}-owner, ${"${detail}"}-box, ${"${domain}"}, ${"${tag}"}, [${"${delimiter}"}], [${"${extension}"}]
`;

Deno.test("alias_flags choose which keys are looked up", async (t) => {
  const cases: [string, string[], string, string][] = [
    ["localpart is the default", [], "bob@local.example", "robert@localhost"],
    [
      "localpart ignores remote domains",
      ["localpart"],
      "bob@remote.example",
      "bob@remote.example (remote) [not an alias]",
    ],
    [
      "a detail does not match without implicitly_match_detail",
      [],
      "bob+x@localhost",
      "bob+x@localhost [not an alias]",
    ],
    [
      "implicitly_match_detail",
      ["localpart", "implicitly_match_detail"],
      "bob+x@localhost",
      "robert@localhost",
    ],
    [
      "preserve_domain keeps the recipient's domain",
      ["localpart", "preserve_domain"],
      "bob@local.example",
      "robert@local.example",
    ],
    [
      "local_domains looks up the whole address first",
      ["local_domains", "localpart"],
      "bob@other.local",
      "bobby@remote.example (remote)",
    ],
    [
      "local_domains: a catch-all for a local domain",
      ["local_domains"],
      "zed@other.local",
      "catchall@localhost",
    ],
    ["local_domains without localpart", ["local_domains"], "bob@localhost", "bob@localhost [not an alias]"],
    [
      "all_domains looks up remote addresses too",
      ["all_domains"],
      "sales@remote.example",
      "sales-team@local.example",
    ],
    [
      "all_domains: a subdomain catch-all",
      ["all_domains", "replace_macros"],
      "x@a.b.sub.example",
      "sub-a.b@localhost",
    ],
  ];
  for (const [label, flags, address, want] of cases) {
    await t.step(label, async () => assert.equal(show(await aliases(FLAGGED, flags).expand(address)), want));
  }
});

Deno.test("replace_macros fills in user, detail, domain, tag, delimiter and extension", async (t) => {
  const flags = ["localpart", "implicitly_match_detail", "replace_macros", "preserve_domain"];
  const cases: [string, string][] = [
    [
      "list+news@local.example",
      "list-owner@local.example, news-box@local.example, local.example@local.example, list@local.example, [+]@local.example, [+news]@local.example",
    ],
    [
      "list@local.example",
      "list-owner@local.example, -box@local.example, local.example@local.example, list@local.example, []@local.example", /* delimiter and extension both empty: one address */
    ],
  ];
  for (const [address, want] of cases) {
    await t.step(
      address,
      async () => assert.equal(show(await aliases(FLAGGED, flags).expand(address)), want),
    );
  }
  await t.step("without replace_macros the text stays", async () => {
    const x = await aliases("m: ${user}\n").expand("m@localhost");
    assert.equal(show(x), "${user}@localhost");
  });
  await t.step("another address_delimiter", async () => {
    const x = await aliases(
      "list: ${detail}\n",
      ["localpart", "implicitly_match_detail", "replace_macros"],
      "-",
    )
      .expand("list-sales@localhost");
    assert.equal(show(x), "sales@localhost");
  });
});

Deno.test("Aliases.members() lists a right-hand side without expanding it", async () => {
  assert.deepEqual(await aliases(NESTED).members("staff"), [
    "alice@localhost",
    "bob@localhost",
    "carol@remote.example",
  ]);
  assert.deepEqual(await aliases(NESTED).members("nothing"), []);
});

Deno.test("splitList() splits at blanks and commas outside quotes and angle brackets", async (t) => {
  const cases: [string, string[]][] = [
    ["<user1@my.dom> <user2@my.dom> <localuser@local.host>", [
      "user1@my.dom",
      "user2@my.dom",
      "localuser@local.host",
    ]],
    [' a, "b, c"@x ,, d ', ["a", '"b, c"@x', "d"]],
    ['<"a b"@x>\t<c@d>', ['"a b"@x', "c@d"]],
    ["local:", ["local:"]],
  ];
  for (const [rhs, want] of cases) await t.step(rhs, () => assert.deepEqual(splitList(rhs), want));
});

Deno.test("the README's alias examples expand as the README says", async (t) => {
  const local = aliases(`
myalias: localuser
mylist: <user1@my.dom> <user2@my.dom> <localuser@local.host>
postmaster: <user@host.domain>
abuse: user+abuse
user++: local:
user: local:
`);
  const cases: [string, string][] = [
    ["myalias@localhost", "localuser@localhost"],
    ["mylist@localhost", "user1@my.dom (remote), user2@my.dom (remote), localuser@local.host (remote)"],
    ["postmaster@local.example", "user@host.domain (remote)"],
    ["abuse@localhost", "user+abuse@localhost"],
    ["user@local.example", "user@local.example"],
    ["user+news@local.example", "user+news@local.example"],
    ["user+@local.example", "user+@local.example [not an alias]"],
  ];
  for (const [address, want] of cases) {
    await t.step(address, async () => assert.equal(show(await local.expand(address)), want));
  }
  await t.step("preserve_domain: a bare name keeps the original domain", async () => {
    const x = await aliases("myalias: localuser\n", ["localpart", "preserve_domain"]).expand(
      "myalias@other.local",
    );
    assert.equal(show(x), "localuser@other.local");
  });
  await t.step("local_domains: myalias@first.dom and another@second.dom only", async () => {
    LOCAL.add("first.dom");
    LOCAL.add("second.dom");
    try {
      const a = aliases("myalias@first.dom: user1\nanother@second.dom: user2\n", ["local_domains"]);
      assert.equal(show(await a.expand("myalias@first.dom")), "user1@localhost");
      assert.equal(show(await a.expand("another@second.dom")), "user2@localhost");
      assert.equal(show(await a.expand("myalias@second.dom")), "myalias@second.dom [not an alias]");
      assert.equal(show(await a.expand("another@first.dom")), "another@first.dom [not an alias]");
    } finally {
      LOCAL.delete("first.dom");
      LOCAL.delete("second.dom");
    }
  });
  await t.step("replace_macros: alias*@.domain user${extension}@${subdomain}.domain", async () => {
    const a = aliases("alias*@.domain     user${extension}@${subdomain}.domain\n", [
      "all_domains",
      "replace_macros",
    ]);
    assert.equal(show(await a.expand("alias@host.domain")), "user@host.domain (remote)");
    assert.equal(show(await a.expand("alias+detail@host2.domain")), "user+detail@host2.domain (remote)");
  });
});
