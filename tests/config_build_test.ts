// Tests of what smx.conf text maps to (config/build.ts, read.ts): every section and option lands in the
// typed Config in ms and bytes, what a text leaves out keeps its default, the built-in default parses, and
// loadConfig() reads files (in a temp dir) and names them in errors.

import assert from "node:assert/strict";
import { ConfigError, DEFAULT_CONF, defaultConfig, loadConfig, parseConfig } from "../config/mod.ts";
import type { Config } from "../config/types.ts";

const parse = (text: string): Config => parseConfig(text, "test.conf");

Deno.test("parseConfig() of an empty text gives the defaults", () => {
  assert.deepEqual(parse(""), { ...defaultConfig(), source: "test.conf" });
});

Deno.test("parseConfig() maps every section to the typed config", async (t) => {
  const text = `
    hostname = mx.example.org;
    CDB_base_directory = "q/cdb";
    mcp { heartbeat_interval = 250ms; log_level = 12; }
    log { directory = "/var/log/smx"; }
    map routes { type = hash; file = "etc/mailertable"; }
    qmgr {
      IBDB { base_directory = "q/ibdb"; max_commit_delay = 20000; max_open_TAs = 7; size = 8MB; }
      DEFEDB { base_directory = "q/defedb"; }
      IQDB { max_entries = 64; }
      DSN_handling { merge_delay_max = 30s; flags = { HEADER_ONLY }; }
      max_errors_per_DSN = 20; min_disk_space = 0; ok_disk_space = 1GB; OCC_max_entries = 50;
      wait_for_client = 3s; wait_for_server = 4s; control_socket = "/run/smx/qmgr.sock"; conf = routes;
      retry_min_delay = 1m; retry_max_delay = 2h; queue_return_timeout = 3d; queue_delay_timeout = 6h;
      AQ_max_entries = 500;
      smtpc { initial_connections = 1; max_connections = 9; smtp_max_rcpts_per_transaction = 50;
              lmtp_max_rcpts_per_transaction = 10; }
      smtps { max_connections = 30; max_connection_rate = 5; }
    }
    smtps MTA {
      listen_socket { type = inet; address = 127.0.0.1; port = 25; }
      listen_socket { address = [::1]; port = 25; }
      id = 3; io_timeout = 2m; max_message_size = 20MB; max_threads = 10;
      max_recipients_per_transaction = 5; max_recipients_per_session = 50;
      max_bad_commands_per_session = 0; max_hops = 30; start_action = pass;
      flags = { 8BITMIME, delay_greylisting_error_until_DATA, lmtp_does_not_imply_relaying, strict_ehlo_checks };
    }
    smtps MSA { hostname = "msa.example.org"; listen_socket { address = 0.0.0.0; port = 587; } }
    smtpc { io_timeout = 90; log_level = 11; restart_dependencies = { smar, QMGR };
      LMTP_socket = "var/lmtp.sock"; connection_cache_time_limit = 5s; connection_reuse_count_limit = 1;
      tls { security_level = Verify; CAcert_file = "etc/ca.pem"; } }
    smar {
      nameserver = { 127.0.0.1, 10.0.0.1:5353, ::1, [::1]:53 };
      DNS_timeout = 3s;
      mailertable = ROUTES;
      access_map { type = hash; file = "etc/access"; }
    }`;
  const c = parse(text);
  const cases: [string, unknown, unknown][] = [
    ["hostname", c.hostname, "mx.example.org"],
    ["CDB_base_directory", c.CDB_base_directory, "q/cdb"],
    ["mcp", c.mcp, { heartbeat_interval: 250, log_level: 12 }],
    ["log", c.log, { directory: "/var/log/smx" }],
    ["qmgr.IBDB", c.qmgr.IBDB, {
      base_directory: "q/ibdb",
      max_commit_delay: 20,
      max_open_TAs: 7,
      size: 8 * 1024 * 1024,
    }],
    ["qmgr.DEFEDB", c.qmgr.DEFEDB, { base_directory: "q/defedb" }],
    ["qmgr.IQDB", c.qmgr.IQDB, { max_entries: 64 }],
    ["qmgr.DSN_handling", c.qmgr.DSN_handling, {
      merge_delay_max: 30_000,
      flags: { header_only: true, MIME_Format: false },
    }],
    ["qmgr.conf (declared map)", c.qmgr.conf, { name: "routes", type: "hash", file: "etc/mailertable" }],
    ["qmgr limits, disk space, waits and control socket", [
      c.qmgr.max_errors_per_DSN,
      c.qmgr.min_disk_space,
      c.qmgr.ok_disk_space,
      c.qmgr.OCC_max_entries,
      c.qmgr.wait_for_client,
      c.qmgr.wait_for_server,
      c.qmgr.control_socket,
    ], [20, 0, 1024 ** 3, 50, 3000, 4000, "/run/smx/qmgr.sock"]],
    ["qmgr times", [
      c.qmgr.retry_min_delay,
      c.qmgr.retry_max_delay,
      c.qmgr.queue_return_timeout,
      c.qmgr.queue_delay_timeout,
    ], [
      60_000,
      7_200_000,
      259_200_000,
      21_600_000,
    ]],
    ["qmgr.AQ_max_entries", c.qmgr.AQ_max_entries, 500],
    ["qmgr.smtpc", c.qmgr.smtpc, {
      initial_connections: 1,
      max_connections: 9,
      smtp_max_rcpts_per_transaction: 50,
      lmtp_max_rcpts_per_transaction: 10,
    }],
    ["qmgr.smtps", c.qmgr.smtps, { max_connections: 30, max_connection_rate: 5 }],
    ["smtps MTA", c.smtps[0], {
      name: "MTA",
      id: 3,
      listen_socket: [{ type: "inet", address: "127.0.0.1", port: 25 }, {
        type: "inet",
        address: "::1",
        port: 25,
      }],
      hostname: "mx.example.org",
      io_timeout: 120_000,
      max_message_size: 20 * 1024 * 1024,
      max_threads: 10,
      max_recipients_per_transaction: 5,
      max_recipients_per_session: 50,
      max_bad_commands_per_session: 0,
      max_hops: 30,
      flags: [
        "8bitmime",
        "delay_greylisting_error_until_data",
        "lmtp_does_not_imply_relaying",
        "strict_ehlo_checks",
      ],
      max_bad_commands_per_transaction: 10,
      max_invalid_addresses_per_session: 50,
      max_invalid_addresses_per_transaction: 20,
      max_nop_commands_between_transactions: 50,
      max_nop_commands_in_transaction: 20,
      max_transactions: 0,
      bare_newline_clients: [],
      stress_threshold: 80,
      stress_timeout: 10_000,
      stress_client_share: 10,
      log_level: 9,
      restart_dependencies: [],
      start_action: "pass",
    }],
    ["smtps MSA name and hostname", [c.smtps[1].name, c.smtps[1].hostname], ["MSA", "msa.example.org"]],
    ["smtps MSA listen_socket", c.smtps[1].listen_socket, [{ type: "inet", address: "0.0.0.0", port: 587 }]],
    ["smtps MSA defaults", [c.smtps[1].io_timeout, c.smtps[1].flags], [300_000, ["8bitmime"]]],
    ["smtpc", c.smtpc, {
      io_timeout: 90_000,
      ports: [25],
      log_level: 11,
      restart_dependencies: ["smar", "qmgr"],
      start_action: "wait",
      LMTP_socket: "var/lmtp.sock",
      connection_cache_time_limit: 5000,
      connection_reuse_time_limit: 300_000,
      connection_reuse_count_limit: 1,
      flags: [],
      tls: { security_level: "verify", CAcert_file: "etc/ca.pem" },
    }],
    ["smar.nameserver", c.smar.nameserver, ["127.0.0.1", "10.0.0.1:5353", "::1", "[::1]:53"]],
    ["smar.DNS_timeout", c.smar.DNS_timeout, 3000],
    ["smar.mailertable (declared)", c.smar.mailertable, {
      name: "routes",
      type: "hash",
      file: "etc/mailertable",
    }],
    ["smar.access_map (inline)", c.smar.access_map, { name: "access_map", type: "hash", file: "etc/access" }],
  ];
  for (const [label, got, want] of cases) await t.step(label, () => assert.deepEqual(got, want));
});

Deno.test("parseConfig() fills in what smtps sections leave out", async (t) => {
  await t.step("no smtps section gives one default server named after the global hostname", () => {
    const c = parse("hostname = mx.example;");
    assert.deepEqual(c.smtps.map((s) => [s.name, s.hostname, s.listen_socket]), [
      ["smtps", "mx.example", [{ type: "inet", address: "127.0.0.1", port: 2525 }]],
    ]);
  });
  await t.step("a server takes the global hostname even when it is set later", () => {
    assert.equal(parse("smtps { } hostname = late.example;").smtps[0].hostname, "late.example");
  });
  await t.step("an inline mailertable is named mailertable", () => {
    assert.equal(
      parse("smar { mailertable { type = HASH; file = m; } }").smar.mailertable?.name,
      "mailertable",
    );
  });
});

Deno.test("loadConfig() without a path parses the built-in default", async () => {
  const c = await loadConfig();
  assert.equal(c.source, "<built-in>");
  assert.deepEqual(c.smtps.map((s) => [s.name, s.listen_socket]), [["MTA", [{
    type: "inet",
    address: "127.0.0.1",
    port: 2525,
  }]]]);
  assert.deepEqual(c.smar.access_map, { name: "access_map", type: "hash", file: "config/default/access" });
  assert.deepEqual(c.smar.mailertable, {
    name: "mailertable",
    type: "hash",
    file: "config/default/mailertable",
  });
  assert.deepEqual([c.qmgr.IBDB.base_directory, c.qmgr.DEFEDB.base_directory, c.CDB_base_directory], [
    "var/ibdb",
    "var/defedb",
    "var/cdb",
  ]);
  assert.deepEqual(c, parseConfig(DEFAULT_CONF, "<built-in>"));
  for (const file of [c.smar.access_map!.file, c.smar.mailertable!.file]) {
    assert.ok((await Deno.stat(new URL(`../${file}`, import.meta.url))).isFile, file);
  }
});

Deno.test("loadConfig() reads a file and names it in errors", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("a good file", async () => {
      const path = `${dir}/smx.conf`;
      await Deno.writeTextFile(path, "hostname = file.example;\n");
      const c = await loadConfig(path);
      assert.deepEqual([c.source, c.hostname], [path, "file.example"]);
    });
    await t.step("a bad file", async () => {
      const path = `${dir}/bad.conf`;
      await Deno.writeTextFile(path, "hostname = a;\nbogus = 1;\n");
      await assert.rejects(loadConfig(path), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(
          err.message,
          `${path}:2:1: unknown option bogus at the top level, expected one of hostname, CDB_base_directory, SMAR_socket, SMTPC_socket, SMTPS_socket`,
        );
        return true;
      });
    });
    await t.step("a missing file is an error at 0:0", async () => {
      const path = `${dir}/missing.conf`;
      await assert.rejects(loadConfig(path), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual([err.file, err.line, err.col], [path, 0, 0]);
        assert.ok(err.message.startsWith(`${path}:0:0: cannot read the configuration file: `), err.message);
        return true;
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
