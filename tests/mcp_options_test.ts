// The MCP's per-component options as the configuration gives them (config/service.ts): log_level,
// restart_dependencies and start_action in each component's section, several smtps sections merged into
// the one worker, the log file of each component, and the errors for values a worker cannot honour.

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config/mod.ts";
import { logFile, serviceOptions } from "../config/service.ts";

const parse = (text: string) => parseConfig(text, "test.conf");

Deno.test("serviceOptions() reads each component's section, with defaults", () => {
  const c = parse(`
    mcp { log_level = 3; }
    qmgr { restart_dependencies = { smtps, smtpc, smar }; }
    smar { log_level = 12; restart_dependencies = { smtps, qmgr, smar }; start_action = wait; }
    smtps A { listen_socket { address = 127.0.0.1; port = 2525; } log_level = 4; restart_dependencies = { qmgr }; }
    smtps B { listen_socket { address = 127.0.0.1; port = 2526; } log_level = 11; start_action = PASS; restart_dependencies = { smar }; }
  `);
  const cases: [string, unknown][] = [
    ["mcp", { log_level: 3, restart_dependencies: [], start_action: "wait" }],
    ["qmgr", { log_level: 9, restart_dependencies: ["smtps", "smtpc", "smar"], start_action: "wait" }],
    // A component never depends on itself.
    ["smar", { log_level: 12, restart_dependencies: ["smtps", "qmgr"], start_action: "wait" }],
    ["smtpc", { log_level: 9, restart_dependencies: [], start_action: "wait" }],
    // One worker serves both smtps sections: the most verbose level, the union of the dependencies.
    ["smtps", { log_level: 11, restart_dependencies: ["qmgr", "smar"], start_action: "wait" }],
    ["lda", { log_level: 9, restart_dependencies: [], start_action: "wait" }],
  ];
  for (const [name, want] of cases) assert.deepEqual(serviceOptions(c, name), want, name);
  assert.equal(c.smtps[1].start_action, "pass");
});

Deno.test("logFile() puts each component's file in the log directory, or none for stderr", () => {
  assert.equal(logFile(parse(""), "qmgr"), undefined);
  const c = parse(`log { directory = "/var/log/smx"; }`);
  assert.deepEqual(["mcp", "smtps"].map((n) => logFile(c, n)), [
    "/var/log/smx/mcp.log",
    "/var/log/smx/smtps.log",
  ]);
});

Deno.test("parseConfig() refuses MCP options a worker cannot honour, at the offending token", () => {
  const cases: [string, string, string][] = [
    [
      "smar { start_action = fork; }",
      "1:23",
      "unsupported start action fork for start_action, expected one of wait, pass, accept, nostartaccept",
    ],
    [
      "qmgr { restart_dependencies = { smtps, postfix }; }",
      "1:40",
      "unknown component postfix for restart_dependencies",
    ],
    ["smtpc { log_level = verbose; }", "1:21", 'bad value "verbose" for log_level'],
    ["log { directory = 5s; file = x; }", "1:23", "unknown option file in section log"],
  ];
  for (const [text, at, fragment] of cases) {
    const err = (() => {
      try {
        parse(text);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error(`${text} parsed`);
    })();
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(`${err.line}:${err.col}`, at, err.message);
    assert.ok(err.message.includes(fragment), err.message);
  }
});
