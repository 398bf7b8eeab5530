// Least privilege for smtpc: with the set smtpc's worker.ts asks for ({net: ["0.0.0.0/0:<port>"], read:
// [CDB dir]}), a worker may connect to the destination port and read the CDB, and nothing else: listening,
// other ports and writing are refused with NotCapable. A probe worker (tests/helpers/probe_worker.ts)
// holds exactly that set, since no code can be run inside the real smtpc worker from a test. A second test
// takes the set computePermissions() gives smtpc with TLS files and an LMTP socket: those files and that
// socket are reachable, their neighbours are not; a third, with an authinfo map: the map and the secret
// files it names are readable, another file beside them is not.
// Known limit: Deno's net permission does not tell connect from listen, so the set would let a worker
// listen on the destination port itself (e.g. 25 on any address); only other ports are refused.

import assert from "node:assert/strict";
import { join } from "node:path";
import { NO_PERMISSIONS } from "./helpers/harness.ts";
import { type Probe, runProbes } from "./helpers/probe.ts";
import { parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";

Deno.test("smtpc's permission set lets it connect out and read the CDB, and nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_perm_" });
  const allowed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (allowed.addr as Deno.NetAddr).port;
  const otherPort = (other.addr as Deno.NetAddr).port;
  const accepting = (async () => {
    for await (const c of allowed) c.close();
  })().catch(() => {});
  try {
    const cdb = join(dir, "A1");
    await Deno.writeTextFile(cdb, "Subject: x\r\n\r\nbody\r\n");
    const permissions = { ...NO_PERMISSIONS, net: [`0.0.0.0/0:${port}`], read: [dir] };
    const cases: [string, Probe, string][] = [
      ["connects to the destination port", { op: "connect", hostname: "127.0.0.1", port }, "ok"],
      ["reads a CDB file", { op: "read", path: cdb }, "ok"],
      ["cannot listen", { op: "listen", hostname: "127.0.0.1", port: 0 }, "NotCapable"],
      [
        "cannot listen on another port",
        { op: "listen", hostname: "127.0.0.1", port: otherPort },
        "NotCapable",
      ],
      [
        "cannot connect to another port",
        { op: "connect", hostname: "127.0.0.1", port: otherPort },
        "NotCapable",
      ],
      ["cannot write into the CDB", { op: "write", path: join(dir, "B2") }, "NotCapable"],
      ["cannot read outside the CDB", { op: "read", path: "/etc/hostname" }, "NotCapable"],
    ];
    const results = await runProbes(permissions as Deno.PermissionOptionsObject, cases.map((c) => c[1]));
    assert.deepEqual(
      cases.map((c, i) => `${c[0]}: ${results[i]}`),
      cases.map((c) => `${c[0]}: ${c[2]}`),
    );
  } finally {
    allowed.close();
    other.close();
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtpc's computed set with TLS files and an LMTP socket reaches them and nothing beside them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_perm_lmtp_" });
  const socket = join(dir, "lmtp.sock");
  const other = join(dir, "other.sock");
  const listeners = [socket, other].map((path) => Deno.listen({ transport: "unix", path }));
  const accepting = listeners.map((l) =>
    (async () => {
      for await (const c of l) c.close();
    })().catch(() => {})
  );
  try {
    const fixtures = new URL("./fixtures/tls_client/", import.meta.url).pathname;
    const config = parseConfig(
      `CDB_base_directory = "${dir}/cdb";
       smtpc { LMTP_socket = "${socket}"; tls { CAcert_file = "${fixtures}ca.pem"; } }`,
      "t.conf",
    );
    const sets = await computePermissions(config, { readFiles: false });
    const cases: [string, Probe, string][] = [
      ["connects to the LMTP socket", { op: "connect_unix", path: socket }, "ok"],
      ["reads the CA file", { op: "read", path: `${fixtures}ca.pem` }, "ok"],
      ["cannot read the key beside it", { op: "read", path: `${fixtures}server.key` }, "NotCapable"],
      ["cannot connect to another socket", { op: "connect_unix", path: other }, "NotCapable"],
      ["cannot write beside the socket", { op: "write", path: join(dir, "x") }, "NotCapable"],
    ];
    const results = await runProbes(sets.smtpc as Deno.PermissionOptionsObject, cases.map((c) => c[1]));
    assert.deepEqual(
      cases.map((c, i) => `${c[0]}: ${results[i]}`),
      cases.map((c) => `${c[0]}: ${c[2]}`),
    );
  } finally {
    for (const l of listeners) l.close();
    await Promise.all(accepting);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtpc's computed set with an authinfo map reads the map and its secret files, nothing beside them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_perm_authinfo_" });
  try {
    const map = join(dir, "authinfo");
    await Deno.writeTextFile(map, "[relay.test] smx relay.secret\n[other.test] smx:inline\n");
    await Deno.chmod(map, 0o600);
    await Deno.writeTextFile(join(dir, "relay.secret"), "s3cret\n");
    await Deno.writeTextFile(join(dir, "unlisted.secret"), "other\n");
    const config = parseConfig(
      `CDB_base_directory = "${dir}/cdb";
       smar { nameserver = 127.0.0.1; }
       smtpc { authinfo { file = "${map}"; } }`,
      "t.conf",
    );
    const sets = await computePermissions(config);
    const cases: [string, Probe, string][] = [
      ["reads the authinfo map", { op: "read", path: map }, "ok"],
      ["reads the secret file it names", { op: "read", path: join(dir, "relay.secret") }, "ok"],
      [
        "cannot read a secret file it does not name",
        { op: "read", path: join(dir, "unlisted.secret") },
        "NotCapable",
      ],
      ["cannot write the secret file", { op: "write", path: join(dir, "relay.secret") }, "NotCapable"],
    ];
    const results = await runProbes(sets.smtpc as Deno.PermissionOptionsObject, cases.map((c) => c[1]));
    assert.deepEqual(
      cases.map((c, i) => `${c[0]}: ${results[i]}`),
      cases.map((c) => `${c[0]}: ${c[2]}`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
