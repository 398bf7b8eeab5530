// smar's configuration: map declarations of every type (hash, sequence, socket, passwd), the aliases and
// local users maps, dnsbl, greylisting and protected_recipients sections, their errors, and the printer
// writing them back.

import assert from "node:assert/strict";
import { formatConfig, parseConfig } from "../config/mod.ts";
import { ConfigError } from "../config/error.ts";

const TEXT = `
map local { type = hash; file = "local.txt"; }
map remote { type = socket; address = 127.0.0.1; port = 7777; mapname = "access"; timeout = 2s; }
map unixmap { type = socket; path = "/run/smap.sock"; }
map access { type = sequence; maps = { local, remote }; }
map users { type = passwd; }
map aliases { type = hash; file = "aliases.db"; }
smar {
  access_map = access;
  aliases = aliases;
  alias_flags = { localpart, local_domains, IMPLICITLY_MATCH_DETAIL, replace_macros };
  local_user_map = users;
  address_delimiter = "-";
  dnsbl { domain = "bl.example"; tag = "bl"; }
  dnsbl { domain = "bl2.example"; }
  greylisting { grey_wait = 10m; white_expire = 30d; main_DB_name = "var/grey.db"; netmask = 0xffffff00; }
  protected_recipients { allow_by = { sender }; match_type = generic_lookup; }
}
`;

Deno.test("parseConfig() reads smar's maps, dnsbl, greylisting and protected_recipients", async (t) => {
  const c = parseConfig(TEXT, "smx.conf");
  const s = c.smar;
  await t.step("a sequence of a hash and a socket map", () => {
    assert.deepEqual(s.access_map, {
      name: "access",
      type: "sequence",
      file: "",
      maps: [
        { name: "local", type: "hash", file: "local.txt" },
        {
          name: "remote",
          type: "socket",
          file: "",
          address: "127.0.0.1",
          port: 7777,
          mapname: "access",
          timeout: 2000,
        },
      ],
    });
  });
  await t.step("a passwd map defaults to /etc/passwd", () => {
    assert.deepEqual(s.local_user_map, { name: "users", type: "passwd", file: "/etc/passwd" });
  });
  await t.step("aliases and their flags", () => {
    assert.deepEqual(s.aliases, { name: "aliases", type: "hash", file: "aliases.db" });
    assert.deepEqual(s.alias_flags, [
      "localpart",
      "local_domains",
      "implicitly_match_detail",
      "replace_macros",
    ]);
    assert.equal(s.address_delimiter, "-");
  });
  await t.step("dnsbl sections, the tag defaulting to the domain", () => {
    assert.deepEqual(s.dnsbl, [{ domain: "bl.example", tag: "bl" }, {
      domain: "bl2.example",
      tag: "bl2.example",
    }]);
  });
  await t.step("greylisting with defaults for what it leaves out", () => {
    assert.deepEqual(s.greylisting, {
      grey_wait: 600_000,
      grey_expire: 86_400_000,
      white_expire: 30 * 86_400_000,
      white_timeout: 3_600_000,
      main_DB_name: "var/grey.db",
      expire_limit: 100,
      netmask: 24,
    });
  });
  await t.step("protected_recipients", () => {
    assert.deepEqual(s.protected_recipients, { allow_by: ["sender"], match_type: ["generic_lookup"] });
  });
  await t.step("the printer writes it all back", () => {
    assert.deepEqual(parseConfig(formatConfig(c), c.source), c);
  });
});

Deno.test("parseConfig() refuses smar map declarations that do not fit their type", async (t) => {
  const cases: [string, string, string][] = [
    [
      "a file for a socket map",
      `map m { type = socket; file = "x"; path = "/s"; }`,
      "option file does not apply to a socket map",
    ],
    ["a socket map without an address", `map m { type = socket; }`, "missing option path or address"],
    [
      "both path and address",
      `map m { type = socket; path = "/s"; address = 127.0.0.1; port = 1; }`,
      "both path and address",
    ],
    ["an address without a port", `map m { type = socket; address = 127.0.0.1; }`, "missing option port"],
    ["a hash map without a file", `map m { type = hash; }`, "missing option file"],
    [
      "a sequence of an undeclared map",
      `map m { type = sequence; maps = { nope }; }`,
      "undeclared map nope for maps of m",
    ],
    [
      "a sequence containing itself",
      `map a { type = sequence; maps = { b }; }\nmap b { type = sequence; maps = { a }; }`,
      "contains itself",
    ],
    ["an unknown map type", `map m { type = btree; file = "x"; }`, "unknown map type btree"],
    [
      "a mailertable that is not a hash map",
      `map m { type = passwd; }\nsmar { mailertable = m; }`,
      "expected a hash map",
    ],
    [
      "an unknown alias flag",
      `smar { alias_flags = { localpart, bogus }; }`,
      "unknown value bogus for alias_flags",
    ],
    ["a dnsbl without a domain", `smar { dnsbl { tag = "x"; } }`, "missing option domain"],
    [
      "greylisting without a database",
      `smar { greylisting { grey_wait = 1m; } }`,
      "missing option main_DB_name",
    ],
    [
      "a netmask with holes",
      `smar { greylisting { main_DB_name = "g"; netmask = 255.0.255.0; } }`,
      "bad value",
    ],
    ["a delimiter of two characters", `smar { address_delimiter = "+-"; }`, "expected one character"],
    [
      "an unknown allow_by",
      `smar { protected_recipients { allow_by = { helo }; } }`,
      "unknown value helo for allow_by",
    ],
  ];
  for (const [label, text, want] of cases) {
    await t.step(label, () => {
      assert.throws(
        () => parseConfig(text, "smx.conf"),
        (e) => e instanceof ConfigError && e.message.includes(want),
        want,
      );
    });
  }
});
