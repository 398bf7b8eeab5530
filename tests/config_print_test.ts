// Tests of formatConfig() (config/print.ts): the effective configuration is printed with every option,
// times and sizes with units, and parses back to the same Config. Pure: no files, no sockets.

import assert from "node:assert/strict";
import { defaultConfig, formatConfig, loadConfig, parseConfig } from "../config/mod.ts";
import type { Config } from "../config/types.ts";

const parse = (text: string): Config => parseConfig(text, "test.conf");

/** A copy of `value` with every number raised by one and every string changed (not ports or names). */
function perturb<T>(value: T, key = ""): T {
  if (typeof value === "number") return (value + 1) as T;
  if (
    typeof value === "string" && key !== "address" && key !== "type" && key !== "name" &&
    key !== "start_action" && key !== "security_level"
  ) {
    return `${value}x` as T;
  }
  if (Array.isArray(value)) return value.map((v) => perturb(v, key)) as T;
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, perturb(v, k)])) as T;
  }
  return value;
}

Deno.test("formatConfig() prints every option so that it parses back to the same config", async (t) => {
  const custom = structuredClone(defaultConfig());
  custom.source = "custom.conf";
  custom.hostname = 'odd "host"\tname\\';
  custom.qmgr.IBDB.max_commit_delay = 0;
  custom.qmgr.retry_max_delay = 5_400_000;
  custom.qmgr.queue_return_timeout = 1_209_600_000 + 1500;
  const server = custom.smtps[0];
  custom.smtps = [
    { ...server, name: "my server", io_timeout: 250, max_message_size: 1000, flags: [] },
    {
      ...server,
      name: "smtps",
      listen_socket: [{ type: "inet", address: "::1", port: 25 }],
      max_message_size: 3072,
    },
  ];
  custom.smar = {
    ...custom.smar,
    nameserver: ["127.0.0.1", "10.0.0.1:5353"],
    DNS_timeout: 100,
    mailertable: { name: "same", type: "hash", file: "m" },
    access_map: { name: "access_map", type: "hash", file: "a b.txt" },
  };
  // Every option differs from its default, so an option the printer leaves out breaks the round trip.
  const changed = perturb(await loadConfig());
  changed.smtps[0].flags = ["access", "soft_bounce"];
  changed.smtpc.ports = [25];
  changed.qmgr.restart_dependencies = ["smtps", "smar"];
  changed.smar.start_action = "pass";
  changed.smar.address_delimiter = "-"; // one character, so not perturbed
  changed.smar.alias_flags = ["all_domains"]; // words of a list, so not perturbed
  changed.log = { directory: "var/log" };
  const cases: [string, Config][] = [
    ["the built-in default", await loadConfig()],
    ["the defaults", parse("")],
    ["a config with every option changed", changed],
    ["a config with odd strings, names and units", custom],
  ];
  for (const [label, config] of cases) {
    // Notes about the printed text (e.g. start_action pass) name its lines: they are not the configuration.
    const { warnings: _, ...back } = parseConfig(formatConfig(config), config.source);
    const { warnings: __, ...want } = config;
    await t.step(label, () => assert.deepEqual(back, want));
  }
  await t.step("times and sizes are printed with units", () => {
    const text = formatConfig(custom);
    const wants = [
      "retry_max_delay = 1h 30m;",
      "retry_min_delay = 5m;",
      "queue_return_timeout = 2w 1s 500ms;",
      "io_timeout = 250ms;",
      "max_message_size = 1000B;",
      "max_message_size = 3KB;",
      "max_commit_delay = 0s;",
    ];
    for (const want of wants) assert.ok(text.includes(want), want);
  });
});
