// IPv6 delivery (issue 18 item 3): smar's routes carry AAAA addresses before A addresses per host only
// with `smtpc { flags = { ipv6 }; }`, and defer an IPv6-only destination with the reason when the flag is
// off; the flag gives smtpc an unrestricted net permission (Deno cannot name "any IPv6 host on port 25"),
// while a mailertable IPv6 literal is named exactly without it. The real smtpc worker, with the set the
// MCP computes, delivers to a sink listening on [::1] that nothing else can reach, falls back to the same
// host's IPv4 address when its IPv6 address refuses, and is refused [::1] without the flag. End to end, a
// mail exchanger (MX routes moved to the sink's port by the testing option MTA_STS.MX_port) and a
// mailertable host with only an AAAA record get their mail with the flag (qmgr's log line names
// `relay=host[::1]:port`) and are deferred, saying why, without it. qmgr's destination state is per
// [IPv6]:port; and a check that Deno still refuses IPv6 CIDRs (the reason for the flag's trade-off).

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { ConfigError } from "../config/error.ts";
import type { Config } from "../config/types.ts";
import { computePermissions, mainProcessFlags } from "../components/mcp/permissions.ts";
import { addressOfKey, destinationKey, relayText, replyLine } from "../components/mail/result.ts";
import { Occ } from "../components/qmgr/occ.ts";
import type { RouteResult } from "../components/protocol/messages.ts";
import { parseNameserver } from "../components/smar/dns/nameservers.ts";
import { Resolver } from "../components/smar/dns/resolver.ts";
import { resolveRoute } from "../components/smar/routes.ts";
import { Mailertable, parseMailertableRhs } from "../components/smar/mailertable.ts";
import { type DnsRecord, startDnsServer } from "./helpers/dns_server.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { runProbes } from "./helpers/probe.ts";
import { statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const RECORDS: DnsRecord[] = [
  // Reachable only over IPv6: the MX host has an AAAA record and no A record.
  { name: "v6.test", type: "MX", data: { preference: 10, exchange: "mx6.v6.test" } },
  { name: "mx6.v6.test", type: "AAAA", data: "::1" },
  // Two MX hosts with both families: each host's IPv6 address first, then its IPv4 address.
  { name: "dual.test", type: "MX", data: { preference: 20, exchange: "b.dual.test" } },
  { name: "dual.test", type: "MX", data: { preference: 10, exchange: "a.dual.test" } },
  { name: "a.dual.test", type: "AAAA", data: "2001:db8::a" },
  { name: "a.dual.test", type: "A", data: "192.0.2.10" },
  { name: "b.dual.test", type: "A", data: "192.0.2.20" },
  { name: "b.dual.test", type: "AAAA", data: "2001:db8::b" },
  // No MX: the domain's own addresses (implicit MX), here only an AAAA record.
  { name: "bare6.test", type: "AAAA", data: "2001:db8::6" },
  { name: "host6.test", type: "AAAA", data: "::1" },
  // Both families on loopback: the IPv6 address first (nothing listens there), then the IPv4 one.
  { name: "both.test", type: "AAAA", data: "::1" },
  { name: "both.test", type: "A", data: "127.0.0.1" },
];

type Ok = Extract<RouteResult, { status: "ok" }>;

const IPV6_OFF = /IPv6 delivery is off \(smtpc flags = \{ ipv6 \}\)/;

Deno.test("smar routes AAAA before A per host with ipv6 on, A only with it off", async (t) => {
  const dns = await startDnsServer(RECORDS);
  const resolver = new Resolver({ nameservers: [parseNameserver(dns.address)], timeoutMs: 1000, rounds: 1 });
  const addresses = (r: RouteResult) => (r as Ok).hosts.map((h) => `${h.name}=${h.address}`);
  try {
    await t.step("ipv6 on: each MX host's IPv6 address, then its IPv4 one, in MX order", async () => {
      const r = await resolveRoute("dual.test", { resolver, ipv6: true });
      assert.equal(r.status, "ok");
      assert.deepEqual(addresses(r), [
        "a.dual.test=2001:db8::a",
        "a.dual.test=192.0.2.10",
        "b.dual.test=2001:db8::b",
        "b.dual.test=192.0.2.20",
      ]);
      assert.deepEqual(addresses(await resolveRoute("v6.test", { resolver, ipv6: true })), [
        "mx6.v6.test=::1",
      ]);
      assert.deepEqual(addresses(await resolveRoute("bare6.test", { resolver, ipv6: true })), [
        "bare6.test=2001:db8::6",
      ]);
    });
    await t.step("ipv6 off: A records only, and no AAAA question while an A record answers", async () => {
      dns.queries.length = 0;
      const fresh = new Resolver({ nameservers: [parseNameserver(dns.address)], timeoutMs: 1000, rounds: 1 });
      const r = await resolveRoute("dual.test", { resolver: fresh });
      fresh.close();
      assert.deepEqual(addresses(r), ["a.dual.test=192.0.2.10", "b.dual.test=192.0.2.20"]);
      assert.ok(!dns.queries.some((q) => q.type === "AAAA"), JSON.stringify(dns.queries));
    });
    await t.step("ipv6 off: an IPv6-only destination is deferred with the reason, not bounced", async () => {
      const mx = await resolveRoute("v6.test", { resolver });
      assert.equal(mx.status, "temp");
      assert.match((mx as { text: string }).text, /^Mail exchanger mx6\.v6\.test has only IPv6 addresses: /);
      assert.match((mx as { text: string }).text, IPV6_OFF);
      const bare = await resolveRoute("bare6.test", { resolver });
      assert.equal(bare.status, "temp");
      assert.match((bare as { text: string }).text, IPV6_OFF);
      const literal = await resolveRoute("[IPv6:2001:db8::1]", { resolver });
      assert.equal(literal.status, "temp");
      assert.match(
        (literal as { text: string }).text,
        /^Cannot deliver to \[ipv6:2001:db8::1\]: IPv6 delivery/,
      );
    });
    await t.step("a domain literal [IPv6:...] is routed as it is with ipv6 on", async () => {
      const r = await resolveRoute("[IPv6:2001:DB8:0::1]", { resolver, ipv6: true });
      assert.deepEqual(addresses(r), ["2001:db8::1=2001:db8::1"]);
    });
    await t.step(
      "the mailertable: [IPv6:...] literals always, host names by AAAA then A with ipv6",
      async () => {
        const rhs = parseMailertableRhs("2526^[IPv6:2001:db8::25], host6.test");
        assert.deepEqual(rhs.hosts, [
          { kind: "literal", address: "2001:db8::25" },
          { kind: "name", name: "host6.test" },
        ]);
        const entries = new Map([["mt.test", "2526^[IPv6:2001:db8::25], host6.test"], [
          "only6.test",
          "host6.test",
        ]]);
        const mailertable = new Mailertable({
          name: "mailertable",
          file: "mailertable",
          lookup: (k: string) => entries.get(k),
          entries: () => entries.entries(),
          close: () => {},
        });
        const on = await resolveRoute("mt.test", { resolver, mailertable, ipv6: true });
        assert.deepEqual(addresses(on), ["2001:db8::25=2001:db8::25", "host6.test=::1"]);
        assert.equal((on as Ok).port, 2526);
        const off = await resolveRoute("mt.test", { resolver, mailertable });
        assert.deepEqual(addresses(off), ["2001:db8::25=2001:db8::25"]);
        const only6 = await resolveRoute("only6.test", { resolver, mailertable });
        assert.equal(only6.status, "temp");
        assert.match(
          (only6 as { text: string }).text,
          /^host6\.test has only IPv6 addresses: IPv6 delivery is off/,
        );
      },
    );
  } finally {
    resolver.close();
    await dns.close();
  }
});

Deno.test("Deno still refuses an IPv6 CIDR in a worker's net permission (why ipv6 needs net: true)", async () => {
  // When this fails, Deno has learnt IPv6 CIDRs: smtpc's ipv6 flag can then become `[::]/0:<port>` entries.
  const url = new URL("data:application/javascript,self.postMessage('up')");
  for (const entry of ["[::]/0:25", "::/0", "[::/0]:25", "[::]/0"]) {
    assert.throws(
      () =>
        new Worker(url, {
          type: "module",
          deno: {
            permissions: {
              net: [entry],
              read: false,
              write: false,
              env: false,
              sys: false,
              run: false,
              ffi: false,
              import: false,
            },
          },
        }),
      /invalid/,
      entry,
    );
  }
  // A single bracketed address with a port is accepted: what the mailertable's IPv6 literals get.
  const w = new Worker(url, {
    type: "module",
    deno: {
      permissions: {
        net: ["[2001:db8::25]:25"],
        read: false,
        write: false,
        env: false,
        sys: false,
        run: false,
        ffi: false,
        import: false,
      },
    },
  });
  await new Promise((resolve) => w.onmessage = resolve);
  w.terminate();
});

Deno.test("qmgr keeps destination state per [IPv6]:port as per IPv4:port", () => {
  const v6 = destinationKey("2001:db8::1", 25);
  assert.equal(v6, "[2001:db8::1]:25");
  assert.equal(destinationKey("192.0.2.1", 25), "192.0.2.1:25");
  assert.equal(addressOfKey(v6), "2001:db8::1");
  // Per-address limits (qmgr_conf) are asked with the bare address; the ports are destinations of their own.
  const asked: string[] = [];
  const occ = new Occ({ get: (_tag, ip) => (asked.push(ip), 4) }, { maxEntries: 10, now: () => 0 });
  occ.failure(v6, "connect to mx[2001:db8::1]:25: Connection refused");
  assert.equal(occ.state(v6), "down");
  assert.equal(occ.state(destinationKey("2001:db8::1", 587)), "up");
  assert.equal(occ.state(destinationKey("192.0.2.1", 25)), "up");
  assert.ok(asked.length > 0 && asked.every((ip) => ip === "2001:db8::1"), JSON.stringify(asked));
  assert.deepEqual(occ.view().map((e) => `${e.address} ${e.state}`), ["[2001:db8::1]:25 down"]);
});

/** A configuration with a mailertable file in `dir` and smtpc's flags as given. */
async function configWith(dir: string, mailertable: string, smtpcText: string): Promise<Config> {
  await Deno.writeTextFile(join(dir, "mailertable"), mailertable);
  return parseConfig(
    `map mailertable { type = hash; file = ${JSON.stringify(join(dir, "mailertable"))}; }
smar { mailertable = mailertable; nameserver = { 127.0.0.1 }; }
${smtpcText}`,
    join(dir, "smx.conf"),
  );
}

Deno.test("smtpc's net permission: IPv4 ports and the mailertable's IPv6 literals, or unrestricted with ipv6", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-ipv6-" });
  try {
    const mt = "lit6.test\t2526^[IPv6:2001:DB8::25]\nlit4.test\t[192.0.2.1]\n";
    const off = await computePermissions(await configWith(dir, mt, ""));
    assert.deepEqual(off.smtpc.net, ["0.0.0.0/0:25", "0.0.0.0/0:2526", "[2001:db8::25]:2526"]);
    const config = await configWith(dir, mt, "smtpc { flags = { IPv6 }; }");
    assert.deepEqual(config.smtpc.flags, ["ipv6"]);
    const on = await computePermissions(config);
    assert.equal(on.smtpc.net, true);
    // The other workers keep their own narrow sets; the main process needs a plain --allow-net anyway.
    assert.deepEqual(on.smar.net, off.smar.net);
    assert.deepEqual(on.qmgr.net, off.qmgr.net);
    assert.ok(mainProcessFlags(on).includes("--allow-net"));
    assert.throws(
      () => parseConfig("smtpc { flags = { ipv4 }; }", "x.conf"),
      (err: unknown) =>
        err instanceof ConfigError && /unknown value ipv4 .*flags among ipv6/.test(err.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("what smtpc's set lets it do: an IPv6 literal exactly without the flag, any port with it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-ipv6-probe-" });
  const open6 = Deno.listen({ hostname: "::1", port: 0 });
  const other6 = Deno.listen({ hostname: "::1", port: 0 });
  const port = (open6.addr as Deno.NetAddr).port;
  const other = (other6.addr as Deno.NetAddr).port;
  try {
    const mt = `lit6.test\t${port}^[IPv6:::1]\n`;
    const connect = (p: number) => ({ op: "connect" as const, hostname: "::1", port: p });
    const listen = { op: "listen" as const, hostname: "::1", port: 0 };
    const off = await computePermissions(await configWith(dir, mt, ""));
    assert.deepEqual(
      await runProbes(off.smtpc as Deno.PermissionOptionsObject, [connect(port), connect(other), listen]),
      ["ok", "NotCapable", "NotCapable"],
    );
    // The trade-off of the flag, shown: any port, and listening too; the files stay as narrow as before.
    const on = await computePermissions(await configWith(dir, mt, "smtpc { flags = { ipv6 }; }"));
    const ibdb = join(dir, "var/ibdb/ibdb.sqlite");
    await Deno.mkdir(join(dir, "var/ibdb"), { recursive: true });
    await Deno.writeTextFile(ibdb, "");
    assert.deepEqual(
      await runProbes(on.smtpc as Deno.PermissionOptionsObject, [
        connect(port),
        connect(other),
        listen,
        { op: "read", path: ibdb },
        { op: "env", key: "HOME" },
      ]),
      ["ok", "ok", "ok", "NotCapable", "NotCapable"],
    );
  } finally {
    open6.close();
    other6.close();
    await Deno.remove(dir, { recursive: true });
  }
});

const ipv6On = (c: Config) => {
  c.smtpc.flags = ["ipv6"];
  c.smtpc.connection_cache_time_limit = 0;
};

Deno.test("smtpc delivers to a sink on [::1] only with ipv6, and falls back to IPv4 when IPv6 refuses", async (t) => {
  const dns = await startDnsServer(RECORDS);
  const resolver = new Resolver({ nameservers: [parseNameserver(dns.address)], timeoutMs: 1000, rounds: 1 });
  const sink6 = await startSink({ hostname: "::1" });
  const port = sink6.port;
  try {
    // MX targets listen on port 25, which a test does not bind: the route's port is the sink's.
    const mx = await resolveRoute("v6.test", { resolver, ipv6: true });
    const route = { ...(mx as Ok), port };
    await t.step("ipv6 on: the MX host reachable only over IPv6 gets the message", async () => {
      await withSmtpc({ ports: [port], adjust: ipv6On }, async ({ deliver }) => {
        const r = await deliver("Subject: v6\r\n\r\nover IPv6\r\n", { route });
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(relayText(r.relay), `mx6.v6.test[::1]:${port}`);
        assert.equal(sink6.count, 1);
      });
    });
    await t.step("ipv6 on: a route to a port smtpc was not given is refused by smtpc itself", async () => {
      await withSmtpc({ ports: [port], adjust: ipv6On }, async ({ deliver }) => {
        const r = await deliver("Subject: v6\r\n\r\nx\r\n", { route: { ...route, port: freePort() } });
        assert.deepEqual(statuses(r), ["0:temp"]);
        assert.match(
          replyLine(r.results[0].reply),
          /^invalid route: port \d+ is not one smtpc may connect to/,
        );
      });
    });
    await t.step("ipv6 off: smtpc's permission refuses [::1]; the reason says why", async () => {
      await withSmtpc({ ports: [port] }, async ({ deliver }) => {
        const r = await deliver("Subject: v6\r\n\r\nx\r\n", { route });
        assert.deepEqual(statuses(r), ["0:temp"]);
        assert.match(
          replyLine(r.results[0].reply),
          /^connect to mx6\.v6\.test\[::1\]:\d+: Connection not permitted: IPv6 delivery is off/,
        );
        assert.equal(sink6.count, 1);
      });
    });
  } finally {
    await sink6.close();
  }
  await t.step("the IPv6 address refuses: the same host's IPv4 address takes it", async () => {
    // Nothing listens on [::1]:port once the v4 sink has it on 127.0.0.1 only.
    const sink4 = await startSink({ hostname: "127.0.0.1" });
    const dual = [{ name: "mxd.test", address: "::1" }, { name: "mxd.test", address: "127.0.0.1" }];
    try {
      await withSmtpc({ ports: [sink4.port], adjust: ipv6On }, async ({ deliver }) => {
        const r = await deliver("Subject: v4\r\n\r\nfallback\r\n", {
          route: { protocol: "esmtp", port: sink4.port, hosts: dual },
        });
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(relayText(r.relay), `mxd.test[127.0.0.1]:${sink4.port}`);
        assert.equal(r.failedHosts?.[0]?.address, "::1");
        assert.match(
          r.failedHosts?.[0]?.reason ?? "",
          /^connect to mxd\.test\[::1\]:\d+: Connection refused/,
        );
        assert.equal(sink4.count, 1);
      });
    } finally {
      await sink4.close();
    }
  });
  resolver.close();
  await dns.close();
});

/** Waits until the qmgr log in `dir` has a line matching `re`; returns it. */
async function logLine(dir: string, re: RegExp, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const text = await Deno.readTextFile(join(dir, "log", "qmgr.log")).catch(() => "");
    const line = text.split("\n").find((l) => re.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`No qmgr log line matching ${re} in:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("end to end: an MX host and a mailertable host with only an AAAA record get mail with ipv6, and wait without it", async (t) => {
  const sink6 = await startSink({ hostname: "::1" });
  const dns = await startDnsServer(RECORDS);
  try {
    await t.step("ipv6 on: delivered over IPv6, logged as relay=host6.test[::1]:port", async () => {
      const dir = await Deno.makeTempDir({ prefix: "smx-ipv6-e2e-" });
      const sink4 = await startSink({ hostname: "127.0.0.1" });
      const mta = await startTestMta({
        dir,
        mailertable: `only6.test\t${sink6.port}^host6.test\nfallback.test\t${sink4.port}^both.test\n`,
        nameservers: [dns.address],
        adjust: (c) => {
          c.smtpc.flags = ["ipv6"];
          // No reuse: a cached link to [::1]:port would carry the next domain's mail under the first's name.
          c.smtpc.connection_cache_time_limit = 0;
          c.log = { ...c.log, directory: join(dir, "log") };
          // MX routes to the sink's port (MTA_STS's testing option MX_port; no policy exists for v6.test).
          c.smar.MTA_STS = {
            cache_file: join(dir, "mta_sts.db"),
            timeout: 1000,
            refresh_interval: 3_600_000,
            HTTPS_port: freePort(),
            MX_port: sink6.port,
          };
        },
      });
      try {
        // By MX: v6.test's only mail exchanger has an AAAA record (::1) and no A record.
        assert.match(
          await smtpSend(mta.port, { from: "s@sender.test", to: ["u@v6.test"], body: "\r\nmx\r\n" }),
          /^250 /,
        );
        const mx = await logLine(dir, /to=<u@v6\.test>.*status=sent/);
        assert.match(mx, new RegExp(`relay=mx6\\.v6\\.test\\[::1\\]:${sink6.port}, `));
        assert.match(
          await smtpSend(mta.port, { from: "s@sender.test", to: ["u@only6.test"], body: "\r\nv6\r\n" }),
          /^250 /,
        );
        await sink6.waitFor(2, 15_000);
        const line = await logLine(dir, /to=<u@only6\.test>.*status=sent/);
        assert.match(line, new RegExp(`relay=host6\\.test\\[::1\\]:${sink6.port}, `));
        // A host with both: its IPv6 address refuses, its IPv4 address takes the message.
        assert.match(
          await smtpSend(mta.port, { from: "s@sender.test", to: ["u@fallback.test"], body: "\r\nv4\r\n" }),
          /^250 /,
        );
        await sink4.waitFor(1, 15_000);
        const fallback = await logLine(dir, /to=<u@fallback\.test>.*status=sent/);
        assert.match(fallback, new RegExp(`relay=both\\.test\\[127\\.0\\.0\\.1\\]:${sink4.port}, `));
      } finally {
        await mta.stop();
        await sink4.close();
        await Deno.remove(dir, { recursive: true });
      }
    });
    await t.step("ipv6 off: deferred, the log line says IPv6 delivery is off", async () => {
      const dir = await Deno.makeTempDir({ prefix: "smx-ipv6-e2e-" });
      const mta = await startTestMta({
        dir,
        mailertable: `only6.test\t${sink6.port}^host6.test\n`,
        nameservers: [dns.address],
        adjust: (c) => c.log = { ...c.log, directory: join(dir, "log") },
      });
      try {
        assert.match(
          await smtpSend(mta.port, { from: "s@sender.test", to: ["u@only6.test"], body: "\r\nv6\r\n" }),
          /^250 /,
        );
        const line = await logLine(dir, /to=<u@only6\.test>.*status=deferred/);
        assert.match(line, /host6\.test has only IPv6 addresses: IPv6 delivery is off/);
        assert.match(
          await smtpSend(mta.port, { from: "s@sender.test", to: ["u@v6.test"], body: "\r\nmx\r\n" }),
          /^250 /,
        );
        const mx = await logLine(dir, /to=<u@v6\.test>.*status=deferred/);
        assert.match(mx, /Mail exchanger mx6\.v6\.test has only IPv6 addresses: IPv6 delivery is off/);
        // smtps takes an IPv6 domain literal; without the flag it waits, saying why.
        assert.match(
          await smtpSend(mta.port, {
            from: "s@sender.test",
            to: ["u@[IPv6:2001:db8::1]"],
            body: "\r\nlit\r\n",
          }),
          /^250 /,
        );
        const literal = await logLine(dir, /to=<u@\[IPv6:2001:db8::1\]>.*status=deferred/i);
        assert.match(literal, /Cannot deliver to \[ipv6:2001:db8::1\]: IPv6 delivery is off/);
        assert.equal(sink6.count, 2);
      } finally {
        await mta.stop();
        await Deno.remove(dir, { recursive: true });
      }
    });
  } finally {
    await dns.close();
    await sink6.close();
  }
});
