// computePermissions() gives each component exactly what its job needs (listen sockets, queue and CDB
// directories, the ports the mailertable routes to, the nameservers, the map files), and the main
// process's flags and missing-permission list follow from them.

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import {
  computePermissions,
  mainProcessFlags,
  missingPermissions,
  type PermissionSets,
} from "../components/mcp/permissions.ts";

const NONE = { env: false, sys: false, run: false, ffi: false, import: false } as const;

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "smx-perms-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sampleText(dir: string, smar: string): string {
  return `
CDB_base_directory = "var/cdb";
map mt { type = hash; file = "${dir}/mailertable"; }
map acc { type = hash; file = "${dir}/access"; }
qmgr { IBDB { base_directory = "var/ibdb"; } DEFEDB { base_directory = "spool/defedb"; } }
smtps MTA {
  listen_socket { type = inet; address = 127.0.0.1; port = 2525; }
  listen_socket { type = inet; address = ::1; port = 2525; }
}
smtps MSA { listen_socket { type = inet; address = 0.0.0.0; port = 2587; } }
smar { mailertable = mt; access_map = acc; ${smar} }
`;
}

Deno.test("computePermissions() gives each component exactly its own set", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      join(dir, "mailertable"),
      "a.test\t2526^esmtp:[127.0.0.1]\nb.test\tlmtp:[10.0.0.9]\nc.test\t[10.0.0.8]\n",
    );
    await Deno.writeTextFile(join(dir, "access"), "cltaddr:127.0.0.1\trelay\n");
    const config = parseConfig(sampleText(dir, "nameserver = { 10.0.0.53, 10.0.0.54:5353, ::1 };"), "t.conf");
    assert.deepEqual(await computePermissions(config), {
      smtps: {
        ...NONE,
        read: ["var/cdb"],
        write: ["var/cdb"],
        net: ["127.0.0.1:2525", "[::1]:2525", "0.0.0.0:2587"],
        sys: ["statfs"], // its own disk checks before each message
      },
      qmgr: {
        ...NONE,
        read: ["var/ibdb", "spool/defedb", "var/cdb"],
        write: ["var/ibdb", "spool/defedb", "var/cdb"],
        // its control socket (inside var/ibdb) and the disk guard's statfs
        net: [`unix:${join(Deno.cwd(), "var/ibdb/qmgr.sock")}`],
        sys: ["statfs"],
      },
      smtpc: {
        ...NONE,
        read: ["var/cdb"],
        write: false,
        net: ["0.0.0.0/0:24", "0.0.0.0/0:25", "0.0.0.0/0:2526"],
      },
      smar: {
        ...NONE,
        read: [`${dir}/mailertable`, `${dir}/access`],
        write: false,
        // the nameservers, and the local UDP bind (`<address>:0`) of each address family
        net: ["10.0.0.53:53", "10.0.0.54:5353", "[::1]:53", "0.0.0.0:0", "[::1]:0"],
      },
    });
  });
});

Deno.test("computePermissions() without nameservers lets smar read resolv.conf and reach its servers", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "mailertable"), "");
    await Deno.writeTextFile(join(dir, "access"), "");
    const resolvConf = join(dir, "resolv.conf");
    await Deno.writeTextFile(
      resolvConf,
      "# test\nsearch example\nnameserver 192.0.2.1\n  nameserver fe80::1%eth0\n",
    );
    const config = parseConfig(sampleText(dir, ""), "t.conf");
    const sets = await computePermissions(config, { resolvConf });
    assert.deepEqual(sets.smar.read, [`${dir}/mailertable`, `${dir}/access`, resolvConf]);
    // a zoned IPv6 entry cannot be reached by a plain UDP socket and is skipped
    assert.deepEqual(sets.smar.net, ["192.0.2.1:53", "0.0.0.0:0"]);
    assert.deepEqual(sets.smtpc.net, ["0.0.0.0/0:25"]);
    const sketch = await computePermissions(config, { resolvConf, readFiles: false });
    assert.deepEqual(sketch.smar.net, false);
    assert.deepEqual(sketch.smar.read, sets.smar.read);
  });
});

Deno.test("computePermissions() gives smar its aliases, users, socket maps and greylisting database", async () => {
  const config = parseConfig(
    `map local { type = hash; file = "etc/access"; }
    map remote { type = socket; address = 127.0.0.1; port = 7777; }
    map unixmap { type = socket; path = "var/smap.sock"; }
    map access { type = sequence; maps = { local, remote, unixmap }; }
    map users { type = passwd; }
    smar {
      nameserver = 127.0.0.1;
      access_map = access;
      aliases { type = hash; file = "etc/aliases"; }
      local_user_map = users;
      greylisting { main_DB_name = "var/grey.db"; }
    }`,
    "t.conf",
  );
  const sets = await computePermissions(config, { readFiles: false });
  assert.deepEqual(sets.smar, {
    ...NONE,
    read: ["etc/access", "var/smap.sock", "etc/aliases", "/etc/passwd", "var/grey.db"],
    write: ["var/smap.sock", "var/grey.db"],
    net: ["127.0.0.1:53", "127.0.0.1:0", "127.0.0.1:7777", `unix:${join(Deno.cwd(), "var/smap.sock")}`],
  });
});

Deno.test("computePermissions() lets smtpc read its TLS files and reach its LMTP socket, nothing more", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const mt = join(dir, "mt");
    await Deno.writeTextFile(mt, "local.test lmtp:\n");
    const smtpc = `smtpc {
      LMTP_socket = "var/lmtp.sock";
      tls { CAcert_file = "etc/ca.pem"; CAcert_directory = "/etc/ssl/certs"; cert_file = "etc/c.pem"; key_file = "etc/c.key"; }
    }`;
    const config = parseConfig(
      `${smtpc} smar { nameserver = 127.0.0.1; mailertable { file = ${JSON.stringify(mt)}; } }`,
      "t.conf",
    );
    const sets = await computePermissions(config);
    assert.deepEqual(sets.smtpc, {
      ...NONE,
      read: ["var/cdb", "etc/ca.pem", "/etc/ssl/certs", "etc/c.pem", "etc/c.key", "var/lmtp.sock"],
      write: ["var/lmtp.sock"],
      net: ["0.0.0.0/0:24", "0.0.0.0/0:25", `unix:${join(Deno.cwd(), "var/lmtp.sock")}`],
    });
    // The default socket (lmtpsock) only when a route uses it.
    const unused = await computePermissions(parseConfig("", "t.conf"), { resolvConf: "/etc/resolv.conf" });
    assert.deepEqual(unused.smtpc.write, false);
    const plain = await computePermissions(parseConfig("", "t.conf"), { readFiles: false });
    assert.deepEqual(plain.smtpc, { ...NONE, read: ["var/cdb"], write: false, net: ["0.0.0.0/0:25"] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("computePermissions() gives qmgr its control socket, its conf map and statfs only when needed", async () => {
  const config = parseConfig(
    `map qc { type = hash; file = "etc/qmgr_conf"; }
     qmgr { conf = qc; control_socket = "/run/smx/ctl.sock"; min_disk_space = 0; }`,
    "t.conf",
  );
  const sets = await computePermissions(config, { readFiles: false });
  assert.deepEqual(sets.qmgr, {
    ...NONE,
    read: ["var/ibdb", "var/defedb", "var/cdb", "/run/smx/ctl.sock", "etc/qmgr_conf"],
    write: ["var/ibdb", "var/defedb", "var/cdb", "/run/smx/ctl.sock"],
    net: ["unix:/run/smx/ctl.sock"],
    sys: false,
  });
  assert.equal(sets.smtps.sys, false, "min_disk_space 0: smtps needs no statfs either");
  const guarded: PermissionSets = { ...sets, qmgr: { ...sets.qmgr, sys: ["statfs"] } };
  assert.equal(mainProcessFlags(guarded).at(-1), "--allow-sys=statfs");
  const query = (d: Deno.PermissionDescriptor) => ({ state: d.name === "sys" ? "prompt" : "granted" });
  assert.deepEqual(missingPermissions(guarded, { query }), [
    "sys statfs",
  ]);
});

/** A sample of computed sets, as computePermissions() would give them for the built-in configuration. */
function sample(): PermissionSets {
  return {
    smtps: { ...NONE, read: ["var/cdb"], write: ["var/cdb"], net: ["127.0.0.1:2525"] },
    qmgr: {
      ...NONE,
      read: ["var/ibdb", "var/defedb", "var/cdb"],
      write: ["var/ibdb", "var/defedb", "var/cdb"],
      net: false,
    },
    smtpc: { ...NONE, read: ["var/cdb"], write: false, net: ["0.0.0.0/0:25"] },
    smar: {
      ...NONE,
      read: ["config/default/mailertable", "/etc/resolv.conf"],
      write: false,
      net: ["10.0.0.53:53"],
    },
  };
}

Deno.test("mainProcessFlags() asks for the union, the sources, and any host once smtpc has a CIDR", () => {
  assert.deepEqual(mainProcessFlags(sample(), { configFile: "smx.conf" }), [
    "--unstable-worker-options",
    "--allow-read=components,config,smx.conf,var/cdb,var/ibdb,var/defedb,/etc/resolv.conf",
    "--allow-write=var/cdb,var/ibdb,var/defedb",
    "--allow-net",
  ]);
  const noCidr = sample();
  noCidr.smtpc.net = ["10.1.1.1:25"];
  assert.equal(
    mainProcessFlags(noCidr).at(-1),
    "--allow-net=127.0.0.1:2525,10.1.1.1:25,10.0.0.53:53",
  );
});

Deno.test("missingPermissions() names each permission the process lacks", () => {
  const granted = new Set(["read components", "read config", "read var/cdb", "write var/cdb"]);
  const query = (d: Deno.PermissionDescriptor) => {
    const key = d.name === "net" ? `net ${d.host ?? "*"}` : `${d.name} ${"path" in d ? d.path : ""}`;
    return { state: granted.has(key) ? "granted" : "prompt" };
  };
  assert.deepEqual(missingPermissions(sample(), { query, configFile: "smx.conf" }), [
    "read smx.conf",
    "read var/ibdb",
    "read var/defedb",
    "read /etc/resolv.conf",
    "write var/ibdb",
    "write var/defedb",
    "net (any host)",
  ]);
  granted.add("net *");
  for (const p of ["smx.conf", "var/ibdb", "var/defedb", "/etc/resolv.conf"]) granted.add(`read ${p}`);
  for (const p of ["var/ibdb", "var/defedb"]) granted.add(`write ${p}`);
  assert.deepEqual(missingPermissions(sample(), { query, configFile: "smx.conf" }), []);
});

Deno.test("computePermissions() lets smtps read each section's TLS files and AUTH map, nothing more", async () => {
  const config = parseConfig(
    `smtps MTA { listen_socket { address = 127.0.0.1; port = 25; }
       tls { cert_file = "etc/s.pem"; key_file = "etc/s.key"; CAcert_file = "etc/ca.pem"; CAcert_directory = "etc/ca.d"; } }
     smtps MSA { listen_socket { address = 127.0.0.1; port = 587; }
       tls { cert_file = "etc/s.pem"; key_file = "etc/s.key"; } auth { map_file = "etc/auth.db"; } }`,
    "t.conf",
  );
  const sets = await computePermissions(config, { readFiles: false });
  assert.deepEqual(sets.smtps, {
    ...NONE,
    read: ["var/cdb", "etc/s.pem", "etc/s.key", "etc/ca.pem", "etc/ca.d", "etc/auth.db"],
    write: ["var/cdb"],
    net: ["127.0.0.1:25", "127.0.0.1:587"],
    sys: ["statfs"],
  });
});
