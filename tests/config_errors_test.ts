// Tests of the semantic errors of smx.conf (config/read.ts, config/build.ts): unknown and misplaced
// sections and options, wrong value types, values out of range, undeclared maps, duplicates and clashing
// listen sockets, each reported at its exact line and column. Pure: no files, no sockets.

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config/mod.ts";

function caught(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("Expected a ConfigError: nothing was thrown");
}

Deno.test("parseConfig() reports semantic errors at the offending token", async (t) => {
  const cases: [string, string, string, string][] = [
    [
      "an unknown top-level section",
      "hostname = a;\nqueue { }",
      "2:1",
      "unknown section queue at the top level, expected one of map, mcp, qmgr",
    ],
    [
      "an unknown nested section",
      "qmgr {\n  IBDX { }\n}",
      "2:3",
      "unknown section IBDX in section qmgr, expected one of IBDB, log, DEFEDB, IQDB, DSN_handling, smtpc, smtps",
    ],
    ["an unknown top-level option", "hostnme = a;", "1:1", "unknown option hostnme at the top level"],
    [
      "an unknown option names its section",
      "smtps MTA {\n  max_thread = 5;\n}",
      "2:3",
      "unknown option max_thread in section smtps MTA",
    ],
    [
      "an unknown nested option",
      "qmgr { smtpc { max_conn = 1; } }",
      "1:16",
      "unknown option max_conn in section qmgr.smtpc",
    ],
    ["a section used as an option", "qmgr = 5;", "1:1", "qmgr is a section, expected qmgr { ... }"],
    [
      "an option used as a section",
      "mcp { heartbeat_interval { x = 1; } }",
      "1:7",
      "heartbeat_interval is an option",
    ],
    [
      "a name on an unnamed section",
      "qmgr main { }",
      "1:6",
      "unexpected name main for section qmgr, expected {",
    ],
    [
      "a map without a name",
      "map { type = hash; file = a; }",
      "1:1",
      "missing name for section map, expected map NAME",
    ],
    [
      "a time of the wrong type",
      "smtpc { io_timeout = soon; }",
      "1:22",
      "expected a time like 30s, 5m or 1h 30m",
    ],
    [
      "an unknown TLS security level",
      "smtpc { tls { security_level = maybe; } }",
      "1:32",
      "unknown security level maybe for security_level, expected one of none, may, encrypt, verify",
    ],
    [
      "a negative count",
      "smtps { max_bad_commands_per_session = -1; }",
      "1:40",
      "value -1 of max_bad_commands_per_session out of range, expected a number of 0 or more",
    ],
    [
      "a zero positive count",
      "qmgr { AQ_max_entries = 0; }",
      "1:25",
      "out of range, expected a number of 1 or more",
    ],
    [
      "a zero time",
      "mcp { heartbeat_interval = 0s; }",
      "1:28",
      "out of range, expected a time longer than 0s",
    ],
    ["a negative time", "smar { DNS_timeout = -5s; }", "1:22", "value -5s of DNS_timeout out of range"],
    [
      "a zero size",
      "smtps { max_message_size = 0; }",
      "1:28",
      "out of range, expected a size of 1 byte or more",
    ],
    ["a too large number", "qmgr { AQ_max_entries = 99999999999999999999; }", "1:25", "out of range"],
    [
      "a zero port",
      "smtps { listen_socket { address = 127.0.0.1; port = 0; } }",
      "1:53",
      "value 0 of port out of range, expected a port from 1 to 65535",
    ],
    [
      "a too large port",
      "smtps { listen_socket { address = 127.0.0.1; port = 65536; } }",
      "1:53",
      "expected a port from 1 to 65535",
    ],
    [
      "a bad listen address",
      "smtps { listen_socket { address = localhost; port = 25; } }",
      "1:35",
      "expected an IPv4 or IPv6 address",
    ],
    [
      "a bad socket type",
      "smtps { listen_socket { type = udp; address = ::1; port = 25; } }",
      "1:32",
      "unknown socket type udp for type, expected inet or unix",
    ],
    [
      "a listen_socket without a port",
      "smtps {\n  listen_socket { address = 127.0.0.1; }\n}",
      "2:3",
      "missing option port in section smtps.listen_socket",
    ],
    [
      "a unix listen_socket without a path",
      "smtps { listen_socket { type = unix; umask = 077; } }",
      "1:9",
      "missing option path in section smtps.listen_socket",
    ],
    ["an unknown flag", "smtps { flags = { 8bitmime, turbo }; }", "1:29", "unknown flag turbo for flags"],
    [
      "a bad nameserver",
      "smar { nameserver = { 127.0.0.1, 10.0.0.300 }; }",
      "1:34",
      'bad value "10.0.0.300" for nameserver',
    ],
    ["a nameserver with port 0", "smar { nameserver = 10.0.0.1:0; }", "1:21", 'bad value "10.0.0.1:0"'],
    [
      "an undeclared map",
      "smar {\n  mailertable = routes;\n}",
      "2:17",
      "undeclared map routes for mailertable",
    ],
    [
      "an unknown map type",
      "map m { type = btree; file = x; }",
      "1:16",
      "unknown map type btree for type, expected one of hash, sequence, socket, passwd",
    ],
    ["a map without a file", "map m { type = hash; }", "1:1", "missing option file in section map m"],
    [
      "a map without a type",
      "map a { file = a; }",
      "1:1",
      "missing option type in section map a",
    ],
    [
      "a duplicate map",
      "map m { type = hash; file = a; }\nmap M { type = hash; file = b; }",
      "2:5",
      "duplicate map M",
    ],
    [
      "a duplicate option",
      "smtps {\n  io_timeout = 1m;\n  IO_TIMEOUT = 2m;\n}",
      "3:3",
      "duplicate option io_timeout in section smtps",
    ],
    [
      "a map given twice",
      "map m { type = hash; file = a; } smar { mailertable = m; mailertable { type = hash; file = b; } }",
      "1:58",
      "duplicate section mailertable in section smar",
    ],
    ["a duplicate section", "qmgr { }\nqmgr { }", "2:1", "duplicate section qmgr in the top level"],
    [
      "a duplicate smtps name",
      "smtps A { listen_socket { address = 127.0.0.1; port = 25; } }\nsmtps a { listen_socket { address = 127.0.0.1; port = 26; } }",
      "2:7",
      "duplicate smtps section a",
    ],
    [
      "two unnamed smtps",
      "smtps { listen_socket { address = ::1; port = 25; } }\nsmtps { }",
      "2:1",
      "duplicate smtps section smtps",
    ],
    [
      "two servers on one address and port",
      "smtps A { listen_socket { address = 127.0.0.1; port = 25; } }\nsmtps B {\n  listen_socket { address = 127.0.0.1; port = 25; }\n}",
      "3:3",
      "listen socket 127.0.0.1:25 of smtps B is already used by smtps A",
    ],
    [
      "a wildcard clash",
      "smtps A { listen_socket { address = 127.0.0.1; port = 25; } listen_socket { address = 0.0.0.0; port = 25; } }",
      "1:61",
      "already used by smtps A",
    ],
  ];
  for (const [label, text, at, fragment] of cases) {
    await t.step(label, () => {
      const err = caught(() => parseConfig(text, "test.conf"));
      assert.equal(`${err.line}:${err.col}`, at, err.message);
      assert.ok(err.message.startsWith(`test.conf:${at}: `), err.message);
      assert.ok(
        err.detail.includes(fragment),
        `${JSON.stringify(err.detail)} lacks ${JSON.stringify(fragment)}`,
      );
      assert.match(err.detail, /, expected /);
    });
  }
});
