// Syslog output: the target syntax of `log { syslog_server }`, the permissions it needs, the RFC 3164
// message a component sends over UDP (facility and severity in <PRI>, the same line as the log file),
// and the configuration errors a bad facility or server gives.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  logFacilities,
  logOptions,
  parseSyslogTarget,
  syslogNetPermissions,
} from "../config/log_settings.ts";
import { parseConfig } from "../config/mod.ts";
import { log, logIdentity } from "../components/util/log.ts";

Deno.test("parseSyslogTarget() reads udp: and tcp: targets and refuses the rest", () => {
  const cases: [string, unknown][] = [
    ["udp:127.0.0.1:514", { transport: "udp", host: "127.0.0.1", port: 514 }],
    ["tcp:logs.example:6514", { transport: "tcp", host: "logs.example", port: 6514 }],
    ["udp:[::1]", { transport: "udp", host: "::1", port: 514 }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseSyslogTarget(text), want, text);
  for (const bad of ["/dev/log", "udp:", "tls:1.2.3.4:514", "udp:1.2.3.4:70000"]) {
    assert.throws(() => parseSyslogTarget(bad), RangeError, bad);
  }
  assert.deepEqual(syslogNetPermissions(parseSyslogTarget("udp:127.0.0.1:5514")), [
    "127.0.0.1:5514",
    "0.0.0.0:0",
  ]);
  assert.deepEqual(syslogNetPermissions(parseSyslogTarget("tcp:[::1]:514")), ["[::1]:514"]);
});

Deno.test("a bad facility or syslog server is a configuration error naming the log section", () => {
  assert.throws(
    () => parseConfig("log { facility = mial; }", "smx.conf"),
    /smx\.conf:1:\d+: unknown syslog facility mial/,
  );
  assert.throws(
    () => parseConfig('log { syslog_server = "/dev/log"; }', "smx.conf"),
    /smx\.conf:1:\d+: syslog server must be/,
  );
  const c = parseConfig('log { facility = local3; syslog_server = "udp:127.0.0.1:514"; }', "smx.conf");
  assert.deepEqual(c.log, { facility: "local3", syslog_server: "udp:127.0.0.1:514" });
});

Deno.test("log sends each line as an RFC 3164 message over UDP with the facility and severity", async () => {
  const server = dgram.createSocket("udp4");
  const got: string[] = [];
  const arrived = new Promise<void>((resolve) =>
    server.on("message", (m) => {
      got.push(String(m));
      if (got.length === 2) resolve();
    })
  );
  await new Promise<void>((resolve) => server.bind(0, "127.0.0.1", resolve));
  const before = log.level;
  const lines: string[] = [];
  try {
    log.setIdentity({ host: "mx.example", facility: "local3", idents: { smar: "smx-resolver" } });
    log.setSink((l) => lines.push(l));
    log.toSyslog({ transport: "udp", host: "127.0.0.1", port: server.address().port });
    log.setLevel("info");
    log.warn("smtps", "host[1.2.3.4]: SASL LOGIN authentication failed: x");
    log.info("smar", "an event");
    await log.flushSyslog();
    await arrived;
    const tag = (t: string) => `${t}[${Deno.pid}]`;
    assert.match(got[0], new RegExp(`^<156>[A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d mx\\.example `));
    assert.ok(
      got[0].endsWith(` ${tag("smx/smtpd")}: warning: host[1.2.3.4]: SASL LOGIN authentication failed: x`),
    );
    assert.ok(got[1].startsWith("<158>") && got[1].endsWith(` ${tag("smx-resolver")}: an event`), got[1]);
    assert.deepEqual(got.map((g) => g.replace(/^<\d+>/, "")), lines, "the same line as the log file's");
  } finally {
    log.toSyslog(undefined);
    log.setSink(undefined);
    log.setLevel(before);
    log.setIdentity({ host: "localhost", facility: "mail", idents: { smar: "smx/smar" } });
    server.close();
  }
});

Deno.test("a component's log { facility; options; } sets its PRI and whether its tag has the pid", async () => {
  const server = dgram.createSocket("udp4");
  const got: string[] = [];
  const arrived = new Promise<void>((resolve) =>
    server.on("message", (m) => {
      got.push(String(m));
      if (got.length === 2) resolve();
    })
  );
  await new Promise<void>((resolve) => server.bind(0, "127.0.0.1", resolve));
  const before = log.level;
  const config = parseConfig(
    `log { facility = local3; }
     qmgr { log { facility = daemon; ident = "smX-qmgr"; options = { ndelay }; } }
     smtpc { log { options = { pid, perror }; } }`,
    "smx.conf",
  );
  const file = await Deno.makeTempFile();
  const stderr: string[] = [];
  const consoleError = console.error;
  try {
    assert.deepEqual(logFacilities(config), { qmgr: "daemon" });
    assert.deepEqual(logOptions(config), { qmgr: ["ndelay"], smtpc: ["pid", "perror"] });
    log.setIdentity(logIdentity(config));
    log.toSyslog({ transport: "udp", host: "127.0.0.1", port: server.address().port });
    log.setLevel("info");
    log.info("qmgr", "an event");
    log.info("smtps", "another");
    await log.flushSyslog();
    await arrived;
    // daemon (3) * 8 + info (6); without `pid` among its options the tag has no [PID], as openlog(3)'s.
    assert.ok(got[0].startsWith("<30>") && got[0].endsWith(" smX-qmgr: an event"), got[0]);
    assert.ok(got[1].startsWith("<158>") && got[1].endsWith(` smx/smtpd[${Deno.pid}]: another`), got[1]);

    // perror: a component logging to a file also copies its lines to stderr.
    console.error = (t: string) => stderr.push(t);
    log.toFile(file);
    log.info("smtpc", "to both");
    log.info("smar", "to the file only");
    log.toFile(undefined);
    console.error = consoleError;
    assert.equal(stderr.length, 1);
    assert.ok(stderr[0].endsWith(`smx/smtpc[${Deno.pid}]: to both`), stderr[0]);
    assert.equal((await Deno.readTextFile(file)).trim().split("\n").length, 2);
  } finally {
    console.error = consoleError;
    log.toFile(undefined);
    log.toSyslog(undefined);
    log.setLevel(before);
    log.setIdentity({
      host: "localhost",
      facility: "mail",
      idents: { qmgr: "smx/qmgr" },
      facilities: {},
      options: {},
    });
    server.close();
    await Deno.remove(file);
  }
});
