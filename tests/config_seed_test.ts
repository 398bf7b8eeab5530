// The sendmail X README's own configurations (tests/fixtures/seed/*.conf, transcribed verbatim from
// /work/shared/seed/sendmail-x-README.txt) parse, and `-V` prints them as smx understands them: each
// option for running Unix processes accepted and reported as mapped or without effect; the README's map
// subsections, qmgr and smtps subsections; its units (plain KB, microseconds, seconds) and defaults; a
// plain number implausible in its unit warned about; what the README does not allow still exits 78 with
// file:line:col.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../config/mod.ts";
import type { Config, InetListenSocket } from "../config/types.ts";
import { runMain } from "../components/mcp/cli.ts";

const FIXTURES = fileURLToPath(new URL("./fixtures/seed/", import.meta.url));
const parse = (text: string): Config => parseConfig(text, "seed.conf");

/** `-V` of a configuration file: its exit code and output. */
async function dashV(path: string, ...more: string[]) {
  let out = "";
  let err = "";
  const code = await runMain(["-f", path, "-V", ...more], {
    out: (t) => out += t,
    err: (t) => err += t,
    resolvConf: "/nonexistent/resolv.conf",
  });
  return { code, out, err };
}

const fixture = (name: string) => Deno.readTextFile(`${FIXTURES}${name}`);

Deno.test("every configuration example of the sendmail X README parses with -V", async (t) => {
  const names: string[] = [];
  for await (const e of Deno.readDir(FIXTURES)) if (e.name.endsWith(".conf")) names.push(e.name);
  assert.ok(names.length >= 6, `the README's examples are all there: ${names}`);
  for (const name of names.sort()) {
    await t.step(name, async () => {
      const v = await dashV(`${FIXTURES}${name}`);
      assert.equal(v.code, 0, v.err);
      assert.match(v.out, /^# Effective configuration from /);
      // What -V prints parses back (it is smx.conf text).
      parseConfig(v.out, "printed");
    });
  }
});

Deno.test("the README's Example Configuration File means what the README says", async () => {
  const c = parseConfig(await fixture("example_configuration_file.conf"), "example.conf");
  assert.equal(c.CDB_base_directory, "/var/spool/smx/");
  assert.equal(c.qmgr.AQ_max_entries, 8192);
  assert.deepEqual(c.qmgr.smtpc, { ...c.qmgr.smtpc, initial_connections: 19, max_connections: 101 });
  assert.deepEqual(c.qmgr.smtps, { max_connections: 5, max_connection_rate: 160 });
  assert.equal(c.qmgr.max_errors_per_DSN, 16);
  assert.equal(c.qmgr.wait_for_server, 4000, "a plain time is seconds");
  assert.deepEqual(c.qmgr.restart_dependencies, ["smtps", "smtpc", "smar"]);
  assert.deepEqual(c.smtps[0].listen_socket, [{ type: "inet", address: "0.0.0.0", port: 25 }]);
  assert.equal(c.smtps[0].io_timeout, 303_000, "5m3s");
  assert.deepEqual(c.smtps[0].flags, ["8bitmime"]);
  assert.equal(c.smtpc.log_level, 12);
  assert.equal(c.smtpc.io_timeout, 360_000);
  assert.equal(c.smtpc.wait_for_server, 4000);
  assert.deepEqual(c.smar.nameserver, ["10.10.10.9", "127.0.0.1"]);
  assert.equal(c.smar.DNS_timeout, 6000);
  const warned = (c.warnings ?? []).filter((w) => w.level === "warning").map((w) => w.message);
  for (
    const want of [
      /example\.conf:9:\d+: user in qmgr has no effect: .*Deno permissions/,
      /path in qmgr has no effect/,
      /arguments in qmgr has no effect/,
      /CDB_gid in smtps has no effect/,
      /pass_fd_socket in smtps has no effect/,
      /user in smar has no effect/,
    ]
  ) {
    assert.ok(warned.some((m) => want.test(m)), `${want} among\n${warned.join("\n")}`);
  }
  const notes = (c.warnings ?? []).filter((w) => w.level === "note").map((w) => w.message);
  assert.ok(notes.some((m) => /start_action pass in smtps means wait here/.test(m)), notes.join("\n"));
  assert.ok(notes.some((m) => /wait_for_server in smtpc/.test(m)), notes.join("\n"));
});

Deno.test("-V shows which sendmail X options smx maps and which have no effect", async () => {
  const v = await dashV(`${FIXTURES}mta_msa.conf`);
  assert.equal(v.code, 0, v.err);
  assert.match(v.out, /# {3}warning: .*mta_msa\.conf:3:\d+: pass_fd_socket in smtps MTA has no effect/);
  assert.match(v.out, /# {3}note: .*mta_msa\.conf:3:3: start_action pass in smtps MTA means wait here/);
  assert.match(v.out, /# {3}warning: .*auth in smtps MSA names no map_file: AUTH is not offered/);
  assert.match(v.out, /log \{\n {4}facility = mail;\n {4}ident = "?smX-MSA"?;/);
  assert.match(v.out, /trusted_mechs = \{ cram-md5, digest-md5 \};/);
  assert.match(
    v.out,
    /warning: .*trusted_mechs DIGEST-MD5 in smtps MSA: smtps does not offer DIGEST-MD5 \(historic, RFC 6331\)/,
  );
  assert.match(v.out, /note: .*log ident smX-MSA of smtps MSA: one smtps worker serves every smtps section/);
});

Deno.test("the README's MTA/MSA example: two servers, their log idents, auth flags and mechanisms", async () => {
  const c = parseConfig(await fixture("mta_msa.conf"), "mta_msa.conf");
  const [mta, msa] = c.smtps;
  assert.equal(mta.name, "MTA");
  assert.deepEqual(mta.listen_socket, [{ type: "inet", address: "0.0.0.0", port: 25 }]);
  assert.deepEqual(mta.log, { facility: "mail", ident: "smX-MTA" });
  assert.deepEqual((msa.listen_socket[0] as InetListenSocket).port, 587);
  assert.deepEqual(msa.log, { facility: "mail", ident: "smX-MSA" });
  assert.deepEqual(msa.auth?.trusted_mechs, ["cram-md5", "digest-md5"]);
  assert.deepEqual(msa.auth?.flags, ["noplaintext"]);
  assert.equal(msa.auth?.map_file, "", "no map_file: AUTH is not offered");
  assert.equal(mta.pass_fd_socket, "smtps/mtafd");
  assert.equal(mta.user, "smxs");
});

Deno.test("the README's log, pass_id, map declaration and dnsbl snippets", async () => {
  const log = parseConfig(await fixture("log_section.conf"), "log.conf");
  assert.deepEqual(log.qmgr.log, { facility: "daemon", ident: "smX-qmgr" });
  assert.deepEqual(log.smtps[0].log, { facility: "mail", ident: "smX-MTA" });

  const procs = parseConfig(await fixture("pass_id.conf"), "pass_id.conf");
  assert.equal(procs.smtpc.pass_id, "-i");
  assert.equal(procs.smtpc.min_processes, 4);
  const warned = (procs.warnings ?? []).map((w) => w.message);
  assert.ok(
    warned.some((m) => /max_processes = 4 in smtpc has no effect yet: smx starts one smtpc worker/.test(m)),
  );

  const maps = await fixture("map_declarations.conf");
  for (const text of [maps, `smar {\n${maps}\n  local_user_map { name = seq1; } }`]) {
    const c = parse(text);
    assert.equal(c.source, "seed.conf");
  }
  const inSmar = parse(`smar {\n${maps}\n  local_user_map { name = seq1; } }`);
  assert.deepEqual(inSmar.smar.local_user_map?.maps?.map((m) => m.file), [
    "/etc/smx/localusr.db",
    "/etc/smx/otherusr.db",
  ]);

  const bl = parseConfig(await fixture("dnsbl.conf"), "dnsbl.conf");
  assert.deepEqual(bl.smar.dnsbl, [{ domain: "dnsbl.tld", tag: "dnsbltld" }]);
});

Deno.test("parseConfig() reads the README's smar map subsections", async (t) => {
  const cases: [string, string, (c: Config) => unknown, unknown][] = [
    ["mailertable { file }", `smar { mailertable { file = "mt"; } }`, (c) => c.smar.mailertable, {
      name: "mailertable",
      type: "hash",
      file: "mt",
    }],
    ["mailertable { } defaults to mt", `smar { mailertable { } }`, (c) => c.smar.mailertable?.file, "mt"],
    [
      "mailertable { name } of a map declared in smar",
      `smar { map mt { type = hash; file = "/etc/smx/mt.db"; } mailertable { name = mt; } }`,
      (c) => c.smar.mailertable,
      { name: "mt", type: "hash", file: "/etc/smx/mt.db" },
    ],
    [
      "access_map { file }",
      `smar { access_map { file = "access"; } }`,
      (c) => c.smar.access_map?.file,
      "access",
    ],
    [
      "access_map { } defaults to access.db",
      `smar { access_map { } }`,
      (c) => c.smar.access_map?.file,
      "access.db",
    ],
    [
      "aliases { file; flags }",
      `smar { aliases { file = "aliases"; flags = { localpart }; } }`,
      (c) => [c.smar.aliases?.file, c.smar.alias_flags],
      ["aliases", ["localpart"]],
    ],
    [
      "aliases with every flag",
      `smar { aliases { flags = { localpart, local_domains, all_domains, implicitly_match_detail, replace_macros,
        preserve_domain }; } }`,
      (c) => [c.smar.aliases?.file, c.smar.alias_flags.length],
      ["aliases.db", 6],
    ],
    [
      "local_user_map { name; flags }",
      `map users { type = passwd; }
       smar { local_user_map { name = users; flags = { implicitly_match_detail }; } }`,
      (c) => [c.smar.local_user_map?.type, c.smar.local_user_flags],
      ["passwd", ["implicitly_match_detail"]],
    ],
    [
      "smx's forms stay",
      `map a { type = hash; file = "a"; } smar { access_map = a; alias_flags = { all_domains }; }`,
      (c) => [c.smar.access_map?.file, c.smar.alias_flags],
      ["a", ["all_domains"]],
    ],
  ];
  for (const [label, text, get, want] of cases) {
    await t.step(label, () => assert.deepEqual(get(parse(text)), want));
  }
});

Deno.test("parseConfig() reads the README's qmgr, smtps and smtpc subsections", async (t) => {
  const cases: [string, string, (c: Config) => unknown, unknown][] = [
    [
      "IQDB { max_cache_entries; hash_table_entries }",
      `qmgr { IQDB { max_cache_entries = 2000; hash_table_entries = 4001; } }`,
      (c) => c.qmgr.IQDB,
      { max_entries: 2000, hash_table_entries: 4001 },
    ],
    [
      "DSN_handling { max_errors_per_DSN }",
      `qmgr { DSN_handling { max_errors_per_DSN = 7; merge_delay_max = 30; } }`,
      (c) => [c.qmgr.max_errors_per_DSN, c.qmgr.DSN_handling.merge_delay_max],
      [7, 30_000],
    ],
    [
      "DEFEDB { log_directory }",
      `qmgr { DEFEDB { base_directory = "q/d"; log_directory = "/disk2/defedb"; } }`,
      (c) => c.qmgr.DEFEDB,
      { base_directory: "q/d", log_directory: "/disk2/defedb" },
    ],
    [
      "auth { flags (Cyrus SASL's); trusted_mechs (every README name) }",
      `smtps { auth { map_file = "a.db"; flags = { noplaintext, noactive, nodictionary, forward_secrecy,
         noanonymous, pass_credentials, mutual_auth }; trusted_mechs = { PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5,
         SCRAM-SHA-1, SCRAM-SHA-256 }; } }`,
      (c) => [c.smtps[0].auth?.flags.length, c.smtps[0].auth?.trusted_mechs],
      [7, ["plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256"]],
    ],
    [
      "protected_recipients { allow_by { sender; client_ip; } match_type { generic_lookup; } } in smtps",
      `smtps { protected_recipients { allow_by { sender; client_ip; } match_type { generic_lookup;
         implicitly_match_detail; } } }`,
      (c) => [c.smtps[0].protected_recipients, c.smar.protected_recipients],
      [
        { allow_by: ["sender", "client_ip"], match_type: ["generic_lookup", "implicitly_match_detail"] },
        { allow_by: ["sender", "client_ip"], match_type: ["generic_lookup", "implicitly_match_detail"] },
      ],
    ],
    [
      "protected_recipients with the 3.10.2 flag names",
      `smtps { protected_recipients { flags = { allow_by_sender, generic_lookup }; } }`,
      (c) => c.smar.protected_recipients,
      { allow_by: ["sender"], match_type: ["generic_lookup"] },
    ],
    [
      "protected_recipients { allow_by = { allow_by_client_ip }; }",
      `smar { protected_recipients { allow_by = { allow_by_client_ip }; } }`,
      (c) => c.smar.protected_recipients,
      { allow_by: ["client_ip"], match_type: [] },
    ],
    [
      "processes and start actions",
      `smtps { processes = 1; start_action = nostartaccept; } smar { start_action = accept; }`,
      (c) => [c.smtps[0].processes, c.smtps[0].start_action, c.smar.start_action],
      [1, "nostartaccept", "accept"],
    ],
    [
      "listen_socket without address: every local IPv4 address",
      `smtps { listen_socket { type = inet; port = 2525; } }`,
      (c) => c.smtps[0].listen_socket,
      [{ type: "inet", address: "0.0.0.0", port: 2525 }],
    ],
    [
      "listen_socket { type = unix; path; umask; user; group; }",
      `smtps { listen_socket { type = unix; path = "smtps.sock"; umask = 007; user = smxs; group = smxq; } }`,
      (c) => c.smtps[0].listen_socket,
      [{ type: "unix", path: "smtps.sock", umask: 0o7, user: "smxs", group: "smxq" }],
    ],
    [
      "log { facility; ident; options; } in every component",
      `qmgr { log { facility = local3; ident = q; options = { pid, ndelay }; } } smtpc { log { ident = c; } }
       smar { log { ident = r; } } lda { log { ident = l; } }`,
      (c) => [c.qmgr.log, c.smtpc.log, c.smar.log, c.lda?.log],
      [{ facility: "local3", ident: "q", options: ["pid", "ndelay"] }, { ident: "c" }, { ident: "r" }, {
        ident: "l",
      }],
    ],
  ];
  for (const [label, text, get, want] of cases) {
    await t.step(label, () => assert.deepEqual(get(parse(text)), want));
  }
});

Deno.test("parseConfig() reads plain numbers in the README's units; explicit units work everywhere", async (t) => {
  const cases: [string, string, (c: Config) => unknown, unknown][] = [
    [
      "max_message_size plain is KB",
      `smtps { max_message_size = 10240; }`,
      (c) => c.smtps[0].max_message_size,
      10 * 1024 * 1024,
    ],
    [
      "max_message_size with a unit",
      `smtps { max_message_size = 10MB; }`,
      (c) => c.smtps[0].max_message_size,
      10 * 1024 * 1024,
    ],
    [
      "min_disk_space plain is KB",
      `qmgr { min_disk_space = 65536; }`,
      (c) => c.qmgr.min_disk_space,
      64 * 1024 * 1024,
    ],
    ["ok_disk_space in bytes", `qmgr { ok_disk_space = 1000B; }`, (c) => c.qmgr.ok_disk_space, 1000],
    [
      "max_commit_delay plain is µs",
      `qmgr { IBDB { max_commit_delay = 5000; } }`,
      (c) => c.qmgr.IBDB.max_commit_delay,
      5,
    ],
    [
      "max_commit_delay in µs",
      `qmgr { IBDB { max_commit_delay = 250µs; } }`,
      (c) => c.qmgr.IBDB.max_commit_delay,
      0.25,
    ],
    [
      "merge_delay_max plain is s",
      `qmgr { DSN_handling { merge_delay_max = 90; } }`,
      (c) => c.qmgr.DSN_handling.merge_delay_max,
      90_000,
    ],
    [
      "merge_delay_max 0",
      `qmgr { DSN_handling { merge_delay_max = 0; } }`,
      (c) => c.qmgr.DSN_handling.merge_delay_max,
      0,
    ],
    [
      "queue timeouts plain are s",
      `qmgr { queue_return_timeout = 432000; }`,
      (c) => c.qmgr.queue_return_timeout,
      432_000_000,
    ],
    [
      "a sequence of units",
      `qmgr { queue_delay_timeout = 1h 5m 12s; }`,
      (c) => c.qmgr.queue_delay_timeout,
      3_912_000,
    ],
    ["an IBDB size in bytes", `qmgr { IBDB { size = 1048576; } }`, (c) => c.qmgr.IBDB.size, 1_048_576],
  ];
  for (const [label, text, get, want] of cases) {
    await t.step(label, () => assert.equal(get(parse(text)), want));
  }
  await t.step("-V prints each value with its unit", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const file = `${dir}/units.conf`;
      await Deno.writeTextFile(
        file,
        `qmgr { IBDB { max_commit_delay = 500; } min_disk_space = 65536; DSN_handling { merge_delay_max = 90; } }
         smtps { max_message_size = 1000; }`,
      );
      const v = await dashV(file);
      assert.equal(v.code, 0, v.err);
      for (
        const want of ["max_commit_delay = 500us;", "min_disk_space = 64MB;", "merge_delay_max = 1m 30s;"]
      ) {
        assert.ok(v.out.includes(want), want);
      }
      assert.ok(v.out.includes("max_message_size = 1000KB;"), v.out);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("parseConfig() warns when a plain number is implausible in its unit (an old smx byte count)", async (t) => {
  const cases: [string, string, RegExp | undefined][] = [
    [
      "max_message_size = 10000000 (old bytes, now 9.5 GB)",
      `smtps { max_message_size = 10000000; }`,
      /seed\.conf:1:28: plain number 10000000 for max_message_size is read in KB \(.*\), which looks implausible; write the unit/,
    ],
    [
      "min_disk_space = 67108864 (64 GB)",
      `qmgr { min_disk_space = 67108864; }`,
      /min_disk_space is read in KB/,
    ],
    [
      "merge_delay_max = 300000 (old ms, now 3.5 days)",
      `qmgr { DSN_handling { merge_delay_max = 300000; } }`,
      /merge_delay_max is read in seconds/,
    ],
    [
      "max_commit_delay = 10 (old ms, now 10 µs)",
      `qmgr { IBDB { max_commit_delay = 10; } }`,
      /max_commit_delay is read in microseconds \(10us\)/,
    ],
    ["a plausible size", `smtps { max_message_size = 20480; }`, undefined],
    ["a big size with its unit", `smtps { max_message_size = 20GB; }`, undefined],
  ];
  for (const [label, text, want] of cases) {
    await t.step(label, () => {
      const warnings = (parse(text).warnings ?? []).map((w) => w.message);
      if (want === undefined) assert.deepEqual(warnings.filter((m) => /plain number/.test(m)), []);
      else assert.ok(warnings.some((m) => want.test(m)), warnings.join("\n"));
    });
  }
});

Deno.test("the defaults are the README's", () => {
  const c = parse("smar { greylisting { main_DB_name = g.db; } }");
  assert.equal(c.qmgr.smtpc.initial_connections, 10);
  assert.equal(c.qmgr.smtpc.max_connections, 100);
  assert.equal(c.qmgr.smtps.max_connections, 100);
  assert.equal(c.smar.greylisting?.netmask, 32, "the whole address");
  assert.equal(c.smtpc.LMTP_socket, "lmtpsock");
  assert.equal(c.smar.address_delimiter, "+");
});

Deno.test("a configuration the README does not allow exits 78 with file:line:col", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string, RegExp][] = [
      [
        "a port on a unix socket",
        `smtps { listen_socket { type = unix; path = s; port = 25; } }`,
        /:1:\d+: option port does not apply to a unix socket .*expected path/,
      ],
      [
        "an unknown start action",
        `smar { start_action = fork; }`,
        /:1:23: unsupported start action fork .*expected one of wait, pass, accept, nostartaccept/,
      ],
      [
        "an unknown auth flag",
        `smtps { auth { flags = { noplain }; } }`,
        /:1:26: unknown value noplain for flags, expected flags among/,
      ],
      [
        "an unknown mechanism",
        `smtps { auth { trusted_mechs = { GSSAPI }; } }`,
        /unknown value GSSAPI for trusted_mechs/,
      ],
      [
        "a word that is no flag",
        `smtps { protected_recipients { allow_by { anyone; } } }`,
        /:1:43: unknown value anyone for allow_by/,
      ],
      ["a flag where an option belongs", `qmgr { verbose; }`, /:1:8: unknown option verbose in section qmgr/],
      [
        "name and file in a map subsection",
        `map m { type = hash; file = x; } smar { mailertable { name = m; file = y; } }`,
        /both name and file/,
      ],
      [
        "an unknown syslog facility",
        `qmgr { log { facility = mial; } }`,
        /unknown syslog facility mial for facility, expected one of kern,/,
      ],
      [
        "a bad umask",
        `smtps { listen_socket { type = unix; path = s; umask = 0888; } }`,
        /bad value "0888" for umask/,
      ],
    ];
    for (const [label, text, want] of cases) {
      await t.step(label, async () => {
        const file = `${dir}/bad.conf`;
        await Deno.writeTextFile(file, text);
        const v = await dashV(file);
        assert.equal(v.code, 78, v.out);
        assert.match(v.err, want);
        assert.ok(v.err.startsWith(`smx: ${file}:`), v.err);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
