// Least privilege of the local delivery agent: a probe worker holding exactly the set the MCP computes for
// the lda (computePermissions(config).lda) may listen on the lda's LMTP socket, read and write under the
// mail root and read the users map, and nothing else: not a sibling of the mail root whose name merely
// starts the same, not the queue or the CDB, not the users map for writing, no other port, no outgoing
// connection, no environment. Also: the set exists only when the configuration has an lda section.

import assert from "node:assert/strict";
import { runMain } from "../components/mcp/cli.ts";
import { join } from "node:path";
import { loadConfig, parseConfig } from "../config/mod.ts";
import { computePermissions, mainProcessFlags } from "../components/mcp/permissions.ts";
import { freePort } from "./helpers/harness.ts";
import { testConfigText } from "./helpers/mta.ts";
import { type Probe, runProbes } from "./helpers/probe.ts";

Deno.test("the lda's permission set allows its mail root and LMTP socket and refuses the rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-perm-" });
  const open = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // somewhere it must not connect to
  const elsewhere = (open.addr as Deno.NetAddr).port;
  try {
    const ldaPort = freePort();
    const otherPort = freePort();
    const mailRoot = join(dir, "var/mail");
    const usersFile = join(dir, "local_users");
    await Deno.writeTextFile(join(dir, "mailertable"), `localhost\t${ldaPort}^lmtp:[127.0.0.1]\n`);
    await Deno.writeTextFile(join(dir, "access"), "cltaddr:127.0.0.1\trelay\n");
    await Deno.writeTextFile(usersFile, "demo\n");
    const lda = `map local_users { type = hash; file = ${JSON.stringify(usersFile)}; }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = ${ldaPort}; }
  mail_root = ${JSON.stringify(mailRoot)};
  local_user_map = local_users;
}
`;
    const config = parseConfig(testConfigText(dir, freePort(), ["127.0.0.1:5353"]) + lda, "test.conf");
    for (const d of ["var/mail/demo/Maildir/new", "var/mailbox", "var/cdb/0", "var/ibdb"]) {
      await Deno.mkdir(join(dir, d), { recursive: true });
    }
    const cdbFile = join(dir, "var/cdb/0/msg");
    await Deno.writeTextFile(cdbFile, "content");
    const sets = await computePermissions(config);
    assert.ok(sets.lda);
    assert.deepEqual(sets.lda, {
      read: [mailRoot, usersFile],
      write: [mailRoot],
      net: [`127.0.0.1:${ldaPort}`],
      env: false,
      sys: false,
      run: false,
      ffi: false,
      import: false,
    });

    const local = (port: number) => ({ hostname: "127.0.0.1", port });
    const cases: { probe: Probe; expect: string }[] = [
      { probe: { op: "listen", ...local(ldaPort) }, expect: "ok" },
      { probe: { op: "write", path: join(mailRoot, "demo/Maildir/new/1.R1Q1.localhost") }, expect: "ok" },
      { probe: { op: "read", path: join(mailRoot, "demo/Maildir/new/1.R1Q1.localhost") }, expect: "ok" },
      { probe: { op: "read", path: usersFile }, expect: "ok" },
      { probe: { op: "write", path: usersFile }, expect: "NotCapable" },
      { probe: { op: "write", path: join(dir, "var/mailbox/x") }, expect: "NotCapable" },
      { probe: { op: "write", path: join(dir, "var/x") }, expect: "NotCapable" },
      { probe: { op: "write", path: join(mailRoot, "../cdb/0/x") }, expect: "NotCapable" },
      { probe: { op: "write", path: cdbFile }, expect: "NotCapable" },
      { probe: { op: "read", path: cdbFile }, expect: "NotCapable" },
      { probe: { op: "write", path: join(dir, "var/ibdb/ibdb.sqlite") }, expect: "NotCapable" },
      { probe: { op: "read", path: join(dir, "mailertable") }, expect: "NotCapable" },
      { probe: { op: "write", path: "/tmp/smx-lda-escape" }, expect: "NotCapable" },
      { probe: { op: "listen", ...local(otherPort) }, expect: "NotCapable" },
      { probe: { op: "connect", ...local(elsewhere) }, expect: "NotCapable" },
      { probe: { op: "connect", ...local(25) }, expect: "NotCapable" },
      { probe: { op: "env", key: "HOME" }, expect: "NotCapable" },
    ];
    const got = await runProbes(sets.lda as Deno.PermissionOptionsObject, cases.map((c) => c.probe));
    const describe = (c: (typeof cases)[number], r: string) => `${JSON.stringify(c.probe)} -> ${r}`;
    assert.deepEqual(got.map((r, i) => describe(cases[i], r)), cases.map((c) => describe(c, c.expect)));
  } finally {
    open.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without an lda section the MCP computes no lda set (the supervisor starts services that have one)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-perm-" });
  try {
    await Deno.writeTextFile(join(dir, "mailertable"), "");
    await Deno.writeTextFile(join(dir, "access"), "");
    const config = parseConfig(testConfigText(dir, freePort(), ["127.0.0.1:5353"]), "test.conf");
    const sets = await computePermissions(config);
    assert.equal(sets.lda, undefined);
    assert.deepEqual(Object.keys(sets).sort(), ["qmgr", "smar", "smtpc", "smtps"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task start grants the main process what the built-in configuration needs, the lda included", async () => {
  const config = await loadConfig();
  const sets = await computePermissions(config);
  assert.deepEqual(sets.lda?.write, ["var/mail"]);
  const deno = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(deno.tasks.start, "sh scripts/start.sh", "the launcher that runs the --print-command line");
  const out: string[] = [];
  assert.equal(await runMain(["--print-command"], { out: (t) => out.push(t), err: () => {} }), 0);
  const flags = out[0].split(" ").filter((w) => w.startsWith("--"));
  assert.deepEqual(flags, mainProcessFlags(sets));
});
