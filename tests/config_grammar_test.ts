// Tests of the smx.conf language (config/lexer.ts, parser.ts, values.ts) through parseConfig(): every
// value form (numbers, booleans, times, sizes, strings), comments, case-insensitivity, named sections,
// lists, and every syntax error with its exact line and column. Pure: no files, no sockets.

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config/mod.ts";
import type { Config } from "../config/types.ts";
import { parseBoolean } from "../config/values.ts";

const parse = (text: string): Config => parseConfig(text, "test.conf");

/** Asserts that `text` fails at `at` ("LINE:COL") with a message containing `fragment`. */
function assertFails(text: string, at: string, fragment: string): void {
  let err: unknown;
  try {
    parse(text);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
  assert.equal(`${err.line}:${err.col}`, at, err.message);
  assert.equal(err.file, "test.conf");
  assert.ok(err.message.startsWith(`test.conf:${at}: `), err.message);
  assert.ok(err.detail.includes(fragment), `${JSON.stringify(err.detail)} lacks ${JSON.stringify(fragment)}`);
  assert.match(err.detail, /, expected /);
}

Deno.test("parseConfig() reads numbers in decimal, hex and octal", async (t) => {
  const cases: [string, number][] = [["100", 100], ["0x1F", 31], ["0X10", 16], ["017", 15], ["+7", 7], [
    "0",
    0,
  ]];
  for (const [text, want] of cases) {
    await t.step(text, () => {
      assert.equal(
        parse(`qmgr { smtps { max_connection_rate = ${text}; } }`).qmgr.smtps.max_connection_rate,
        want,
      );
    });
  }
});

Deno.test("parseBoolean() reads every boolean word in any case", async (t) => {
  const cases: [string, boolean | undefined][] = [
    ["0", false],
    ["false", false],
    ["Off", false],
    ["NO", false],
    ["1", true],
    ["true", true],
    ["ON", true],
    ["yes", true],
    ["2", undefined],
    ["maybe", undefined],
  ];
  for (const [text, want] of cases) await t.step(text, () => assert.equal(parseBoolean(text), want));
});

Deno.test("parseConfig() reads times with units, sequences and plain seconds", async (t) => {
  const cases: [string, number][] = [
    ["30", 30_000],
    ["0x3c", 60_000],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    ["2w", 1_209_600_000],
    ["1h 5m 12s", 3_912_000],
    ["1h5m12s", 3_912_000],
    ["1H 30M", 5_400_000],
    ["250ms", 250],
    ['"5m"', 300_000],
  ];
  for (const [text, want] of cases) {
    await t.step(text, () => assert.equal(parse(`smtpc { io_timeout = ${text}; }`).smtpc.io_timeout, want));
  }
});

Deno.test("parseConfig() reads max_commit_delay with a plain number as microseconds (README 3.8)", async (t) => {
  const cases: [string, number][] = [
    ["10000", 10],
    ["500", 0.5],
    ["0", 0],
    ["1s", 1000],
    ["1s 5ms", 1005],
    ["250us", 0.25],
    ["10ms", 10],
  ];
  for (const [text, want] of cases) {
    await t.step(text, () => {
      assert.equal(parse(`qmgr { IBDB { max_commit_delay = ${text}; } }`).qmgr.IBDB.max_commit_delay, want);
    });
  }
});

Deno.test("parseConfig() reads max_message_size in KB when plain (README 3.10) and with units", async (t) => {
  const cases: [string, number][] = [
    ["1000", 1_024_000],
    ["1000B", 1000],
    ["100B", 100],
    ["64KB", 65_536],
    ["64K", 65_536],
    ["10MB", 10_485_760],
    ["10 MB", 10_485_760],
    ["10m", 10_485_760],
    ["2GB", 2_147_483_648],
    ["1G", 1_073_741_824],
  ];
  for (const [text, want] of cases) {
    await t.step(
      text,
      () => assert.equal(parse(`smtps { max_message_size = ${text}; }`).smtps[0].max_message_size, want),
    );
  }
});

Deno.test("parseConfig() reads strings, escapes, concatenation and words", async (t) => {
  const cases: [string, string][] = [
    ["mx.example.com", "mx.example.com"],
    ['"mx.example.com"', "mx.example.com"],
    ['"mx" ".example" ".com"', "mx.example.com"],
    ['"mx"\n  ".example.com"', "mx.example.com"],
    ['"a\\"b\\\\c\\nd\\te"', 'a"b\\c\nd\te'],
    ['"a#b; c{}"', "a#b; c{}"],
    ['"h\u00e9"', "h\u00e9"],
  ];
  for (const [text, want] of cases) {
    await t.step(text, () => assert.equal(parse(`hostname = ${text};`).hostname, want));
  }
});

Deno.test("parseConfig() skips comments and blanks", () => {
  const config = parse("# a comment\n\thostname = a; # trailing { } ;\r\n# last line without newline");
  assert.equal(config.hostname, "a");
});

Deno.test("parseConfig() matches keywords and option names in any case", () => {
  const config = parse(
    `QMGR { ibdb { MAX_OPEN_TAS = 5; } } SMTPS Mta { FLAGS = { 8BITMIME, Delay_Checks }; }`,
  );
  assert.equal(config.qmgr.IBDB.max_open_TAs, 5);
  assert.equal(config.smtps[0].name, "Mta");
  assert.deepEqual(config.smtps[0].flags, ["8bitmime", "delay_checks"]);
});

Deno.test("parseConfig() reads named sections, lists and optional semicolons", async (t) => {
  const cases: [string, string, (c: Config) => unknown, unknown][] = [
    ["a named section", "smtps MTA { }", (c) => c.smtps[0].name, "MTA"],
    ["a quoted section name", 'smtps "my server" { }', (c) => c.smtps[0].name, "my server"],
    ["an unnamed section", "smtps { }", (c) => c.smtps[0].name, "smtps"],
    ["a semicolon after }", "mcp { heartbeat_interval = 2s; };", (c) => c.mcp.heartbeat_interval, 2000],
    ["a list", "smtps { flags = { access, soft_bounce }; }", (c) => c.smtps[0].flags, [
      "access",
      "soft_bounce",
    ]],
    ["a trailing comma", "smtps { flags = { access, greylisting, }; }", (c) => c.smtps[0].flags, [
      "access",
      "greylisting",
    ]],
    ["a list without =", "smtps { flags { access, greylisting } }", (c) => c.smtps[0].flags, [
      "access",
      "greylisting",
    ]],
    ["an empty list", "smtps { flags = { }; }", (c) => c.smtps[0].flags, []],
    ["an empty list without =", "smtps { flags { } }", (c) => c.smtps[0].flags, []],
    ["a single value as a list", "smtps { flags = access; }", (c) => c.smtps[0].flags, ["access"]],
    ["a repeated list item", "smtps { flags = { access, ACCESS }; }", (c) => c.smtps[0].flags, ["access"]],
    ["quoted list items", 'smar { nameserver { "127.0.0.1", "10.0.0.1:53" } }', (c) => c.smar.nameserver, [
      "127.0.0.1",
      "10.0.0.1:53",
    ]],
    ["a byte order mark", "\uFEFFhostname = x;", (c) => c.hostname, "x"],
  ];
  for (const [label, text, get, want] of cases) {
    await t.step(label, () => assert.deepEqual(get(parse(text)), want));
  }
});

Deno.test("parseConfig() reports syntax errors at the offending token", async (t) => {
  const cases: [string, string, string, string][] = [
    ["an unterminated string", 'hostname = "abc', "1:12", "unterminated string"],
    ["a string across lines", 'hostname = "ab\ncd";', "1:12", "unterminated string"],
    ["an unknown escape", 'hostname = "a\\qb";', "1:14", "unknown escape \\q"],
    ["an unexpected character", "hostname = a;\n \u0001", "2:2", "unexpected character U+0001"],
    [
      "end of file in a section",
      "qmgr {\n  AQ_max_entries = 5;\n",
      "3:1",
      "unexpected end of file, expected } to close qmgr opened at 1:1",
    ],
    ["end of file in a named section", "mcp { }\nsmtps MTA {", "2:12", "to close smtps MTA opened at 2:1"],
    ["end of file after =", "hostname =", "1:11", "unexpected end of file, expected a value for hostname"],
    [
      "end of file after a value",
      "hostname = a",
      "1:13",
      "unexpected end of file after the value of hostname",
    ],
    [
      "a missing ; before the next option",
      "hostname = a\nCDB_base_directory = b;",
      "2:1",
      "unexpected word CDB_base_directory after the value of hostname, expected ;",
    ],
    [
      "a missing ; before a section",
      "hostname = a\nmcp { }",
      "2:1",
      "unexpected word mcp after the value of hostname",
    ],
    [
      "a missing ; before }",
      "mcp { heartbeat_interval = 1s }",
      "1:31",
      "unexpected } after the value of heartbeat_interval",
    ],
    ["two words for a string", "hostname = a b;", "1:14", "unexpected word b after the value of hostname"],
    ["an unbalanced }", "mcp { }\n}", "2:1", "unbalanced }"],
    [
      "a missing =",
      "hostname localhost;",
      "1:10",
      "unexpected word localhost after hostname, expected = or {",
    ],
    ["a stray =", "= 5;", "1:1", "unexpected =, expected an option or a section"],
    ["a stray ;", "hostname = a;;", "1:14", "unexpected ;, expected an option or a section"],
    ["a missing value", "hostname = ;", "1:12", "unexpected ;, expected a value for hostname"],
    [
      "a missing comma",
      "smtps { flags = { access greylisting }; }",
      "1:26",
      "unexpected word greylisting in a list, expected , or }",
    ],
    [
      "a leading comma",
      "smtps { flags = { , access }; }",
      "1:19",
      "unexpected , in a list, expected a value or }",
    ],
    ["an unclosed list", "smtps { flags = { access,", "1:26", "expected } to close the list opened at 1:17"],
  ];
  for (const [label, text, at, fragment] of cases) await t.step(label, () => assertFails(text, at, fragment));
});

Deno.test("parseConfig() reports malformed values at the value", async (t) => {
  const cases: [string, string, string, string][] = [
    [
      "a bad octal number",
      "qmgr { AQ_max_entries = 08; }",
      "1:25",
      'bad value "08" for AQ_max_entries, expected a number',
    ],
    ["a bare 0x", "qmgr { AQ_max_entries = 0x; }", "1:25", 'bad value "0x"'],
    ["a decimal fraction", "qmgr { AQ_max_entries = 1.5; }", "1:25", 'bad value "1.5"'],
    ["a number with letters", "qmgr { AQ_max_entries = 12abc; }", "1:25", 'bad value "12abc"'],
    [
      "an unknown time unit",
      "smtpc { io_timeout = 5x; }",
      "1:22",
      'bad value "5x" for io_timeout, expected a time like',
    ],
    ["a unit-less part in a time", "smtpc { io_timeout = 1h 5; }", "1:22", 'bad value "1h5"'],
    ["an unknown size unit", "smtps { max_message_size = 10TB; }", "1:28", "expected a size like 10MB"],
    ["a list for a single value", "smtpc { io_timeout = { 5m }; }", "1:22", "unexpected list for io_timeout"],
    ["an empty string", 'hostname = "";', "1:12", 'bad value "" for hostname, expected a non-empty string'],
  ];
  for (const [label, text, at, fragment] of cases) await t.step(label, () => assertFails(text, at, fragment));
});
