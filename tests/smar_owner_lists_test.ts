// Owner lists (sendmail's owner- aliases) in smar: which expanded addresses carry a list owner (only
// those expanded from a list that has an `owner-` alias, the innermost such list winning), the RCPT
// verdict's errorsTo, and the expansion qmgr asks for the mail it makes itself (qmgr.expand), in a unit
// and through the real smar worker.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import { Aliases, type Expansion } from "../components/smar/aliases.ts";
import { expandAddress as expandHere } from "../components/smar/expand.ts";
import { syncMap } from "../components/smar/maps.ts";
import { expandAddress } from "../components/smar/client.ts";
import type { Endpoint } from "../components/protocol/endpoint.ts";
import { validateMessage } from "../components/protocol/validate.ts";
import { startComponent } from "./helpers/harness.ts";
import { policyOf, textMap } from "./helpers/smar_policy.ts";

const LOCAL = new Set(["localhost", "local.example"]);

const ALIASES = `
staff: alice, bob, carol@remote.example, local:dave, staff-core
owner-staff: boss@remote.example
staff-core: erin, frank
# a nested list with its own owner
all: staff, ops
ops: grace
owner-ops: opsboss
# a list without an owner
team: alice, zed@remote.example
# an owner for a whole-address key (all_domains)
sales@remote.example: heidi
owner-sales@remote.example: salesboss
postmaster: alice
bounce: error:550 5.1.1 Gone
`;

function aliases(flags: string[] = []): Aliases {
  return new Aliases(syncMap(textMap("aliases", ALIASES, "aliases")), {
    flags,
    delimiter: "+",
    hostname: "localhost",
    isLocal: (d) => LOCAL.has(d),
  });
}

/** Each address with its owner: `a@d (owner o@d)`, or `a@d` alone. */
function owners(x: Expansion): string {
  if (x.kind === "error") return `${x.reply.code} ${x.reply.status} ${x.reply.text}`;
  return x.recipients.map((r) => r.owner ? `${r.address} (owner ${r.owner})` : r.address).join(", ");
}

Deno.test("Aliases.expand() gives an owner only to addresses expanded from a list that has one", async (t) => {
  const cases: [string, string[], string, string][] = [
    [
      "every member of staff, at any depth, local: and nested lists included",
      [],
      "staff@local.example",
      "alice@localhost (owner owner-staff@local.example), bob@localhost (owner owner-staff@local.example), " +
      "carol@remote.example (owner owner-staff@local.example), dave@localhost (owner owner-staff@local.example), " +
      "erin@localhost (owner owner-staff@local.example), frank@localhost (owner owner-staff@local.example)",
    ],
    [
      "a nested list with its own owner: the innermost owner wins; a list without one adds none",
      [],
      "all@localhost",
      "alice@localhost (owner owner-staff@localhost), bob@localhost (owner owner-staff@localhost), " +
      "carol@remote.example (owner owner-staff@localhost), dave@localhost (owner owner-staff@localhost), " +
      "erin@localhost (owner owner-staff@localhost), frank@localhost (owner owner-staff@localhost), " +
      "grace@localhost (owner owner-ops@localhost)",
    ],
    ["a list without an owner", [], "team@localhost", "alice@localhost, zed@remote.example"],
    ["an alias that is no list with an owner", [], "postmaster@localhost", "alice@localhost"],
    ["an address that is no alias", [], "alice@localhost", "alice@localhost"],
    [
      "a whole-address key: owner-<key> as it is",
      ["all_domains"],
      "sales@remote.example",
      "heidi@localhost (owner owner-sales@remote.example)",
    ],
  ];
  for (const [label, flags, address, want] of cases) {
    await t.step(label, async () => assert.equal(owners(await aliases(flags).expand(address)), want));
  }
});

Deno.test("the RCPT verdict names the owner of each expanded recipient that has one (errorsTo)", async (t) => {
  const p = policyOf({
    access: "cltaddr:127.0.0.1\trelay\n",
    mailertable: "local.example\tlmtp:[127.0.0.1]\nlocalhost\tlmtp:[127.0.0.1]\n",
    aliases: ALIASES,
    users: "alice\nbob\nerin\nfrank\ngrace\n",
  });
  const ask = (recipient: string) =>
    p.checkRcpt({ ip: "127.0.0.1", sender: "s@example.org", recipient, authorized: false });
  await t.step("members of ops carry owner-ops, nobody else does", async () => {
    const v = await ask("ops@localhost");
    assert.deepEqual(v.recipients, ["grace@localhost"]);
    assert.deepEqual(v.errorsTo, { "grace@localhost": "owner-ops@localhost" });
  });
  await t.step("a list without an owner: no errorsTo at all", async () => {
    const v = await ask("team@localhost");
    assert.deepEqual(v.recipients, ["alice@localhost", "zed@remote.example"]);
    assert.equal(v.errorsTo, undefined);
  });
  await t.step("the owner's address is at the list's domain", async () => {
    const v = await ask("staff@local.example");
    assert.deepEqual(Object.keys(v.errorsTo ?? {}), v.recipients, "every member has the owner");
    assert.equal(v.errorsTo?.["carol@remote.example"], "owner-staff@local.example");
  });
});

Deno.test("expandAddress() expands the addressee of mail qmgr makes, without any policy check", async (t) => {
  const p = policyOf({
    mailertable: "localhost\tlmtp:[127.0.0.1]\n",
    aliases: ALIASES,
    users: "alice\n", // frank is no user: kept, not refused
  });
  const cases: [string, string, { recipients: string[]; errorsTo?: Record<string, string> }][] = [
    ["postmaster, qualified", "postmaster@localhost", { recipients: ["alice@localhost"] }],
    ["a bare postmaster gets the hostname", "postmaster", { recipients: ["alice@localhost"] }],
    ["an address that is no alias", "someone@remote.example", { recipients: ["someone@remote.example"] }],
    ["an error: alias is kept as it is", "bounce@localhost", { recipients: ["bounce@localhost"] }],
    [
      "an owner's list gives errorsTo",
      "ops@localhost",
      { recipients: ["grace@localhost"], errorsTo: { "grace@localhost": "owner-ops@localhost" } },
    ],
    ["an alias to a user that does not exist", "staff-core@localhost", {
      recipients: ["erin@localhost", "frank@localhost"],
    }],
  ];
  for (const [label, address, want] of cases) {
    await t.step(label, async () => assert.deepEqual(await expandHere(p, address), want));
  }
  await t.step("without an aliases map, the address itself", async () => {
    const none = policyOf({ mailertable: "localhost\tlmtp:[127.0.0.1]\n" });
    assert.deepEqual(await expandHere(none, "postmaster@localhost"), {
      recipients: ["postmaster@localhost"],
    });
  });
});

Deno.test("the smar worker answers qmgr.expand from qmgr, not from smtps", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smar_owner_" });
  try {
    const files = { aliases: join(dir, "aliases"), mailertable: join(dir, "mailertable") };
    await Deno.writeTextFile(files.aliases, ALIASES);
    await Deno.writeTextFile(files.mailertable, "localhost\tlmtp:[127.0.0.1]\n");
    const config = structuredClone(defaultConfig());
    config.mcp.heartbeat_interval = 60_000;
    config.hostname = "localhost";
    config.smar.nameserver = ["127.0.0.1:53"]; // never asked: no domain here needs DNS
    config.smar.aliases = { name: "aliases", type: "hash", file: files.aliases };
    config.smar.mailertable = { name: "mailertable", type: "hash", file: files.mailertable };
    const h = await startComponent("smar", config, {
      read: [files.aliases, files.mailertable],
      net: ["127.0.0.1:53", "127.0.0.1:0"],
    }, {
      smtps: () => {},
      qmgr: () => {},
    });
    try {
      await t.step("postmaster to the user its alias names", async () => {
        const qmgr = h.peers.get("qmgr") as Endpoint;
        assert.deepEqual(await expandAddress(qmgr, "postmaster@localhost"), {
          recipients: ["alice@localhost"],
        });
        assert.deepEqual(
          await expandAddress(qmgr, "all@localhost").then((x) => x?.errorsTo?.["grace@localhost"]),
          "owner-ops@localhost",
        );
      });
      await t.step("smtps may not ask: no expansion", async () => {
        const smtps = h.peers.get("smtps") as Endpoint;
        assert.equal(await expandAddress(smtps, "postmaster@localhost"), undefined);
      });
    } finally {
      await h.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the protocol checks errorsTo and the expansion messages where they arrive", async (t) => {
  const cases: [string, unknown, string | undefined][] = [
    ["qmgr.expand with an address", { type: "qmgr.expand", address: "postmaster@localhost" }, undefined],
    ["qmgr.expand without one", { type: "qmgr.expand" }, "qmgr.expand: address: expected a string"],
    [
      "smar.expansion with owners",
      { type: "smar.expansion", address: "l@d", recipients: ["a@d"], errorsTo: { "a@d": "owner-l@d" } },
      undefined,
    ],
    [
      "an owner that is no string",
      { type: "smar.expansion", address: "l@d", recipients: ["a@d"], errorsTo: { "a@d": 1 } },
      "smar.expansion: errorsTo: a@d: expected a string",
    ],
    [
      "a verdict's errorsTo that is a list",
      { type: "smar.verdict", verdict: { action: "accept", errorsTo: ["x"] } },
      "smar.verdict: verdict: errorsTo: expected an object",
    ],
    [
      "a recipient's errorsTo in an envelope",
      {
        type: "smtps.commit",
        envelope: {
          id: "X",
          cdbPath: "/x",
          size: 1,
          arrival: 1,
          sender: "s@d",
          recipients: [{ address: "a@d", errorsTo: 7 }],
          client: { ip: "127.0.0.1", helo: "h" },
        },
      },
      "smtps.commit: envelope: recipients: [0]: errorsTo: expected a string",
    ],
  ];
  for (const [label, body, want] of cases) {
    await t.step(label, () => assert.equal(validateMessage(body), want));
  }
});
