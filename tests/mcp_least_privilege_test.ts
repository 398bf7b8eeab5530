// Least privilege, tested: for each component, a probe worker started with exactly the set the MCP
// computes for it (computePermissions, as the supervisor hands it out) tries what the component must do
// (it works) and what it must not (NotCapable): smtps reading the IBDB, smtpc listening, smar writing the
// CDB, qmgr opening a network connection, and more of the same kind.

import { defaultGreylisting, defaultSmtpsAuth } from "../config/defaults.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import type { ComponentName } from "../components/protocol/messages.ts";
import { freePort } from "./helpers/harness.ts";
import { testConfigText } from "./helpers/mta.ts";
import { type Probe, runProbes } from "./helpers/probe.ts";

Deno.test("each component's computed permission set allows its job and refuses the rest", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smx-perm-" });
  const open = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // a destination the mailertable names
  const routed = (open.addr as Deno.NetAddr).port;
  try {
    const smtpsPort = freePort();
    const otherPort = freePort();
    await Deno.writeTextFile(join(dir, "mailertable"), `x.test\t${routed}^[127.0.0.1]\n`);
    await Deno.writeTextFile(join(dir, "access"), "cltaddr:127.0.0.1\trelay\n");
    const config = parseConfig(testConfigText(dir, smtpsPort, ["127.0.0.1:5353"]), "test.conf");
    const greyDb = join(dir, "grey.db"); // smar's greylisting database: the one file it may write
    config.smar.greylisting = { ...defaultGreylisting(), main_DB_name: greyDb };
    // smtps's TLS key and AUTH map: files it may read, and nothing next to them.
    const tlsKey = join(dir, "smtps.key");
    const authMap = join(dir, "auth.db");
    for (const f of [tlsKey, authMap]) await Deno.writeTextFile(f, "");
    config.smtps[0].tls = { cert_file: tlsKey, key_file: tlsKey, flags: [] };
    config.smtps[0].auth = { ...defaultSmtpsAuth(authMap) };
    for (const d of ["var/cdb/0", "var/ibdb", "var/defedb"]) {
      await Deno.mkdir(join(dir, d), { recursive: true });
    }
    const ibdbFile = join(dir, "var/ibdb/ibdb.sqlite");
    await Deno.writeTextFile(ibdbFile, "");
    const mailertable = join(dir, "mailertable");
    const cdbFile = join(dir, "var/cdb/0/probe");
    const local = (port: number) => ({ hostname: "127.0.0.1", port });
    const sets = await computePermissions(config);
    // qmgr's disk guard needs sys statfs; a test process started without it cannot hand it out.
    const statfsHeld = Deno.permissions.querySync({ name: "sys", kind: "statfs" as "hostname" }).state ===
      "granted";
    if (!statfsHeld) sets.qmgr.sys = sets.smtps.sys = false;
    const ibdb = join(dir, "var/ibdb");

    const cases: { name: ComponentName; probe: Probe; expect: string }[] = [
      { name: "smtps", probe: { op: "listen", ...local(smtpsPort) }, expect: "ok" },
      { name: "smtps", probe: { op: "write", path: cdbFile }, expect: "ok" },
      { name: "smtps", probe: { op: "read", path: ibdbFile }, expect: "NotCapable" },
      { name: "smtps", probe: { op: "listen", ...local(otherPort) }, expect: "NotCapable" },
      { name: "smtps", probe: { op: "connect", ...local(routed) }, expect: "NotCapable" },
      { name: "smtps", probe: { op: "env", key: "HOME" }, expect: "NotCapable" },
      { name: "smtps", probe: { op: "read", path: tlsKey }, expect: "ok" },
      { name: "smtps", probe: { op: "read", path: authMap }, expect: "ok" },
      { name: "smtps", probe: { op: "read", path: mailertable }, expect: "NotCapable" },
      { name: "smtps", probe: { op: "write", path: authMap }, expect: "NotCapable" },
      { name: "smtpc", probe: { op: "connect", ...local(routed) }, expect: "ok" },
      { name: "smtpc", probe: { op: "read", path: cdbFile }, expect: "ok" },
      { name: "smtpc", probe: { op: "listen", ...local(0) }, expect: "NotCapable" },
      { name: "smtpc", probe: { op: "listen", ...local(otherPort) }, expect: "NotCapable" },
      { name: "smtpc", probe: { op: "connect", ...local(otherPort) }, expect: "NotCapable" },
      { name: "smtpc", probe: { op: "write", path: cdbFile }, expect: "NotCapable" },
      { name: "smtpc", probe: { op: "read", path: ibdbFile }, expect: "NotCapable" },
      { name: "smar", probe: { op: "read", path: mailertable }, expect: "ok" },
      { name: "smar", probe: { op: "write", path: join(dir, "var/cdb/0/smar") }, expect: "NotCapable" },
      { name: "smar", probe: { op: "write", path: mailertable }, expect: "NotCapable" },
      { name: "smar", probe: { op: "write", path: greyDb }, expect: "ok" },
      { name: "smar", probe: { op: "write", path: join(dir, "other.db") }, expect: "NotCapable" },
      { name: "smar", probe: { op: "read", path: cdbFile }, expect: "NotCapable" },
      { name: "smar", probe: { op: "connect", ...local(routed) }, expect: "NotCapable" },
      { name: "smar", probe: { op: "listen", ...local(otherPort) }, expect: "NotCapable" },
      { name: "qmgr", probe: { op: "write", path: ibdbFile }, expect: "ok" },
      { name: "qmgr", probe: { op: "read", path: cdbFile }, expect: "ok" },
      { name: "qmgr", probe: { op: "connect", ...local(routed) }, expect: "NotCapable" },
      { name: "qmgr", probe: { op: "listen", ...local(otherPort) }, expect: "NotCapable" },
      { name: "qmgr", probe: { op: "read", path: mailertable }, expect: "NotCapable" },
      { name: "qmgr", probe: { op: "listen_unix", path: join(ibdb, "qmgr.sock") }, expect: "ok" },
      { name: "qmgr", probe: { op: "listen_unix", path: join(ibdb, "other.sock") }, expect: "NotCapable" },
      ...(statfsHeld
        ? [{ name: "qmgr" as const, probe: { op: "statfs", path: ibdb } as Probe, expect: "ok" }]
        : []),
      ...(statfsHeld
        ? [{
          name: "smtps" as const,
          probe: { op: "statfs", path: join(dir, "var/cdb") } as Probe,
          expect: "ok",
        }]
        : []),
      { name: "smtps", probe: { op: "statfs", path: ibdb }, expect: "NotCapable" },
      { name: "smtps", probe: { op: "listen_unix", path: join(ibdb, "qmgr.sock") }, expect: "NotCapable" },
    ];
    for (const name of ["smtps", "smtpc", "smar", "qmgr"] as const) {
      const mine = cases.filter((c) => c.name === name);
      await t.step(`${name} may do its job and nothing else`, async () => {
        const got = await runProbes(sets[name] as Deno.PermissionOptionsObject, mine.map((c) => c.probe));
        const describe = (c: (typeof mine)[number], r: string) => `${JSON.stringify(c.probe)} -> ${r}`;
        assert.deepEqual(got.map((r, i) => describe(mine[i], r)), mine.map((c) => describe(c, c.expect)));
      });
    }
  } finally {
    open.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with a log directory each worker may write its own log file and no other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-perm-log-" });
  try {
    const logs = join(dir, "log");
    await Deno.mkdir(logs);
    await Deno.writeTextFile(join(dir, "mailertable"), "");
    await Deno.writeTextFile(join(dir, "access"), "");
    const text = testConfigText(dir, freePort(), ["127.0.0.1:5353"]) + `log { directory = "${logs}"; }\n`;
    const sets = await computePermissions(parseConfig(text, "test.conf"));
    sets.qmgr.sys = false; // not what this test is about
    const cases: { name: ComponentName; file: string; expect: string }[] = [
      { name: "smar", file: "smar.log", expect: "ok" },
      { name: "smar", file: "qmgr.log", expect: "NotCapable" },
      { name: "smtps", file: "smtps.log", expect: "ok" },
      { name: "smtps", file: "mcp.log", expect: "NotCapable" },
      { name: "smtpc", file: "smtpc.log", expect: "ok" },
      { name: "qmgr", file: "qmgr.log", expect: "ok" },
      { name: "qmgr", file: "other.txt", expect: "NotCapable" },
    ];
    for (const c of cases) {
      const [got] = await runProbes(sets[c.name] as Deno.PermissionOptionsObject, [{
        op: "write",
        path: join(logs, c.file),
      }]);
      assert.equal(got, c.expect, `${c.name} writing ${c.file}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smar's UDP bind entry is the one net right Deno cannot narrow: a listener on an ephemeral port", async () => {
  // Deno's net permission names host:port only, never UDP or TCP, connect or bind or listen. smar's UDP
  // sockets must bind `<bind address>:0`, so that entry also lets it listen on TCP at a port the kernel
  // picks (never a port it chooses), on that address only: 127.0.0.1 for loopback nameservers, every
  // address for others. Nothing else: no fixed port, no other address, no other destination.
  const dir = await Deno.makeTempDir({ prefix: "smx-perm-smar-" });
  const open = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const other = (open.addr as Deno.NetAddr).port;
  try {
    await Deno.writeTextFile(join(dir, "mailertable"), "");
    await Deno.writeTextFile(join(dir, "access"), "");
    const fixed = freePort();
    const cases: { label: string; nameserver: string; probes: [Probe, string][] }[] = [
      {
        label: "a loopback nameserver",
        nameserver: "127.0.0.1:5353",
        probes: [
          [{ op: "query_net", host: "127.0.0.1:5353" }, "granted"], // UDP and TCP queries
          [{ op: "listen", hostname: "127.0.0.1", port: 0 }, "ok"], // what remains
          [{ op: "listen", hostname: "127.0.0.1", port: fixed }, "NotCapable"],
          [{ op: "query_net", host: "0.0.0.0:0" }, "prompt"],
          [{ op: "connect", hostname: "127.0.0.1", port: other }, "NotCapable"],
        ],
      },
      {
        label: "a nameserver elsewhere",
        nameserver: "192.0.2.53",
        probes: [
          [{ op: "query_net", host: "192.0.2.53:53" }, "granted"],
          [{ op: "query_net", host: "0.0.0.0:0" }, "granted"], // what remains: any address, ephemeral port
          [{ op: "query_net", host: `0.0.0.0:${fixed}` }, "prompt"],
          [{ op: "listen", hostname: "127.0.0.1", port: 0 }, "NotCapable"],
          [{ op: "listen", hostname: "127.0.0.1", port: fixed }, "NotCapable"],
          [{ op: "query_net", host: "192.0.2.54:53" }, "prompt"],
        ],
      },
    ];
    for (const c of cases) {
      const sets = await computePermissions(
        parseConfig(testConfigText(dir, freePort(), [c.nameserver]), "t.conf"),
      );
      const got = await runProbes(sets.smar as Deno.PermissionOptionsObject, c.probes.map(([p]) => p));
      const describe = (p: Probe, r: string) => `${c.label}: ${JSON.stringify(p)} -> ${r}`;
      assert.deepEqual(
        got.map((r, i) => describe(c.probes[i][0], r)),
        c.probes.map(([p, r]) => describe(p, r)),
      );
    }
  } finally {
    open.close();
    await Deno.remove(dir, { recursive: true });
  }
});
