// Tests of the filter sections of smtps (config/build_filters.ts): policy_milter with an inet or a unix
// socket, its timeout, flags and default action, several milters in order; policy_service with its
// socket, timeout, default_action and stages; the errors of each at their line and column; and both
// printed back by formatConfig(). Pure: no files, no sockets.

import assert from "node:assert/strict";
import { ConfigError, formatConfig, parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";

function caught(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("Expected a ConfigError: nothing was thrown");
}

const TWO_MILTERS = `smtps MTA {
  listen_socket { type = inet; address = 127.0.0.1; port = 2525; }
  policy_milter {
    socket { type = inet; address = 127.0.0.1; port = 8891; }
    timeout = 10s;
    flags = { abort };
  }
  policy_milter {
    socket { type = unix; path = "/run/milter/clamav.sock"; }
    flags = { accept_but_reconnect };
    default_action = accept;
  }
  policy_service {
    socket { type = inet; address = 127.0.0.1; port = 10023; };
    timeout = 10s;
    default_action = "DUNNO";
    stages = { rcpt, end_of_data };
  }
}
`;

Deno.test("parseConfig() reads policy_milter and policy_service sections in order", () => {
  const server = parseConfig(TWO_MILTERS, "smx.conf").smtps[0];
  assert.deepEqual(server.policy_milter, [
    {
      socket: { type: "inet", address: "127.0.0.1", port: 8891 },
      timeout: 10_000,
      flags: ["abort"],
      default_action: "tempfail",
    },
    {
      socket: { type: "unix", path: "/run/milter/clamav.sock" },
      timeout: 30_000,
      flags: ["accept_but_reconnect"],
      default_action: "accept",
    },
  ]);
  assert.deepEqual(server.policy_service, [{
    socket: { type: "inet", address: "127.0.0.1", port: 10023 },
    timeout: 10_000,
    default_action: "DUNNO",
    stages: ["rcpt", "end_of_data"],
  }]);
});

Deno.test("parseConfig() gives a policy milter without flags the defaults", () => {
  const server = parseConfig(
    "smtps { policy_milter { socket { type = inet; address = 127.0.0.1; port = 8891; } } }",
    "smx.conf",
  ).smtps[0];
  assert.deepEqual(server.policy_milter, [{
    socket: { type: "inet", address: "127.0.0.1", port: 8891 },
    timeout: 30_000,
    flags: [],
    default_action: "tempfail",
  }]);
  assert.equal(server.policy_service, undefined);
});

Deno.test("formatConfig() prints the filters so that they parse back the same", () => {
  const config = parseConfig(TWO_MILTERS, "smx.conf");
  assert.deepEqual(parseConfig(formatConfig(config), "smx.conf"), config);
});

Deno.test("parseConfig() reports bad filter sections at the offending token", async (t) => {
  const cases: [string, string, string, string][] = [
    [
      "a milter without a socket",
      "smtps {\n  policy_milter { timeout = 5s; }\n}",
      "2:3",
      "missing section socket in section smtps.policy_milter",
    ],
    [
      "an inet socket without a port",
      "smtps {\n  policy_milter {\n    socket { type = inet; address = 127.0.0.1; }\n  }\n}",
      "3:5",
      "missing option port in section smtps.policy_milter.socket",
    ],
    [
      "a unix socket without a path",
      "smtps {\n  policy_milter {\n    socket { type = unix; }\n  }\n}",
      "3:5",
      "missing option path",
    ],
    [
      "an unknown socket type",
      "smtps {\n  policy_milter {\n    socket { type = tcp; address = 127.0.0.1; port = 1; }\n  }\n}",
      "3:21",
      "unknown value tcp for type, expected one of inet, unix",
    ],
    [
      "an unknown milter flag",
      "smtps {\n  policy_milter {\n    socket { type = unix; path = /x; }\n    flags = { abrot };\n  }\n}",
      "4:15",
      "unknown value abrot for flags, expected flags among abort, accept_but_reconnect",
    ],
    [
      "both milter flags",
      "smtps {\n  policy_milter {\n    socket { type = unix; path = /x; }\n    flags = { abort, accept_but_reconnect };\n  }\n}",
      "4:5",
      "conflicting flags abort and accept_but_reconnect",
    ],
    [
      "a bad policy default_action",
      'smtps {\n  policy_service {\n    socket { type = unix; path = /x; }\n    default_action = "MAYBE";\n  }\n}',
      "4:5",
      'bad default_action "MAYBE"',
    ],
    [
      "an unknown policy stage",
      "smtps {\n  policy_service {\n    socket { type = unix; path = /x; }\n    stages = { helo };\n  }\n}",
      "4:16",
      "unknown value helo for stages, expected stages among rcpt, data, end_of_data",
    ],
  ];
  for (const [label, text, at, message] of cases) {
    await t.step(label, () => {
      const err = caught(() => parseConfig(text, "smx.conf"));
      assert.ok(err.message.includes(`smx.conf:${at}`), `${err.message} is not at ${at}`);
      assert.ok(err.message.includes(message), `${err.message} does not say ${message}`);
    });
  }
});

Deno.test("computePermissions() lets smtps reach its milters and policy services, and no other address", async () => {
  const config = parseConfig(TWO_MILTERS, "smx.conf");
  const sets = await computePermissions(config, { readFiles: false });
  const clamav = "/run/milter/clamav.sock";
  assert.deepEqual(sets.smtps, {
    env: false,
    sys: ["statfs"], // its own disk checks (min_disk_space)
    run: false,
    ffi: false,
    import: false,
    read: [config.CDB_base_directory, clamav],
    write: [config.CDB_base_directory, clamav],
    net: ["127.0.0.1:2525", "127.0.0.1:8891", `unix:${clamav}`, "127.0.0.1:10023"],
  });
});
