// Routing from smar to smtpc: MX records served by an in-test DNS server become a route (smar's
// resolveRoute), and smtpc tries its hosts in that order, moving on when a host refuses the connection,
// greets with 421, never greets, or refuses EHLO. MX targets always listen on port 25, which a test does
// not bind, so the route's port is replaced by the test's (the hosts are 127.0.0.2-4, loopback aliases).
// End to end, a mailertable host list with a port^ goes to its second host when the first is down.

import { relayText, replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import type { RouteResult } from "../components/protocol/messages.ts";
import { Resolver } from "../components/smar/dns/resolver.ts";
import { parseNameserver } from "../components/smar/dns/nameservers.ts";
import { resolveRoute } from "../components/smar/routes.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type Sink, type SinkOptions, startSink } from "./helpers/smtp_sink.ts";
import { statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const RECORDS = [
  { name: "dest.test", type: "MX" as const, data: { preference: 20, exchange: "mx2.dest.test" } },
  { name: "dest.test", type: "MX" as const, data: { preference: 10, exchange: "mx1.dest.test" } },
  { name: "dest.test", type: "MX" as const, data: { preference: 30, exchange: "mx3.dest.test" } },
  { name: "mx1.dest.test", type: "A" as const, data: "127.0.0.2" },
  { name: "mx2.dest.test", type: "A" as const, data: "127.0.0.3" },
  { name: "mx3.dest.test", type: "A" as const, data: "127.0.0.4" },
  { name: "equal.test", type: "MX" as const, data: { preference: 10, exchange: "a.equal.test" } },
  { name: "equal.test", type: "MX" as const, data: { preference: 10, exchange: "b.equal.test" } },
  { name: "a.equal.test", type: "A" as const, data: "127.0.0.2" },
  { name: "b.equal.test", type: "A" as const, data: "127.0.0.3" },
];

type Ok = Extract<RouteResult, { status: "ok" }>;

/** What each of mx1, mx2, mx3 does in one case: absent (nothing listens) or a sink with these options. */
type Hosts = [SinkOptions | "absent", SinkOptions | "absent", SinkOptions | "absent"];

Deno.test("smtpc tries MX hosts by preference and moves on from one that will not talk", async (t) => {
  const dns = await startDnsServer(RECORDS);
  const resolver = new Resolver({ nameservers: [parseNameserver(dns.address)], timeoutMs: 1000, rounds: 1 });
  const port = freePort();
  const adjust = (c: { smtpc: { connection_cache_time_limit: number } }) =>
    c.smtpc.connection_cache_time_limit = 0;
  try {
    const mx = await resolveRoute("dest.test", { resolver });
    assert.equal(mx.status, "ok");
    const route = { ...(mx as Ok), port };
    assert.deepEqual(route.hosts.map((h) => h.name), ["mx1.dest.test", "mx2.dest.test", "mx3.dest.test"]);
    await withSmtpc({ ports: [port], ioTimeout: 600, adjust }, async ({ deliver }) => {
      const cases: [string, Hosts, string, RegExp][] = [
        ["the first host takes it when it can", [{}, {}, {}], "0:sent", /^mx1\.dest\.test\[127\.0\.0\.2\]/],
        ["nothing listening on the first: the second", ["absent", {}, {}], "0:sent", /^mx2\.dest\.test/],
        ["a 421 greeting: the next", [{ greeting: "421 4.3.2 Busy" }, {}, {}], "0:sent", /^mx2\.dest\.test/],
        ["a greeting that never comes: the next", [{ greeting: null }, {}, {}], "0:sent", /^mx2\.dest\.test/],
        [
          "a 421 to EHLO on two hosts: the third",
          [{ ehloReply: "421 4.3.2 Bye" }, { ehloReply: "421 4.3.2 Bye" }, {}],
          "0:sent",
          /^mx3\.dest\.test/,
        ],
        [
          "every host refusing: temp with the last one's reason",
          [{ greeting: "554 5.3.2 No" }, "absent", { greeting: "421 4.3.2 Busy" }],
          "0:temp",
          /^host mx3\.dest\.test\[127\.0\.0\.4\]:\d+ refused to talk to me: 421 4\.3\.2 Busy$/,
        ],
      ];
      for (const [label, hosts, status, want] of cases) {
        await t.step(label, async () => {
          const sinks: Sink[] = [];
          try {
            for (const [i, h] of hosts.entries()) {
              if (h !== "absent") sinks.push(await startSink({ ...h, hostname: `127.0.0.${i + 2}`, port }));
            }
            const r = await deliver("Subject: mx\r\n\r\nx\r\n", { route });
            assert.deepEqual(statuses(r), [status], JSON.stringify(r));
            assert.match(status === "0:sent" ? relayText(r.relay) : replyLine(r.results[0].reply), want);
            assert.equal(sinks.reduce((n, s) => n + s.count, 0), status === "0:sent" ? 1 : 0);
          } finally {
            for (const s of sinks) await s.close();
          }
        });
      }
      await t.step("equal preferences come in either order, and the first listed gets the mail", async () => {
        const sinks = [
          await startSink({ hostname: "127.0.0.2", port }),
          await startSink({ hostname: "127.0.0.3", port }),
        ];
        try {
          const firsts: string[] = [];
          for (const random of [() => 0, () => 0.99]) {
            const r = await resolveRoute("equal.test", { resolver, random });
            const route = { ...(r as Ok), port };
            firsts.push(route.hosts[0].name);
            const res = await deliver("x\r\n", { route });
            assert.match(relayText(res.relay), new RegExp(`^${route.hosts[0].name.replaceAll(".", "\\.")}`));
          }
          assert.deepEqual(firsts.sort(), ["a.equal.test", "b.equal.test"]);
          assert.deepEqual(sinks.map((s) => s.count), [1, 1]);
        } finally {
          for (const s of sinks) await s.close();
        }
      });
    });
  } finally {
    resolver.close();
    await dns.close();
  }
});

Deno.test("a mailertable host list with port^ reaches its second host when the first is down", async () => {
  const port = freePort();
  const sink = await startSink({ hostname: "127.0.0.3", port });
  const mta = await startTestMta({ mailertable: `dest.test\t${port}^esmtp:[127.0.0.2] [127.0.0.3]\n` });
  try {
    const reply = await smtpSend(mta.port, {
      from: "a@origin.test",
      to: ["b@dest.test"],
      body: "Subject: second host\r\n\r\nx\r\n",
    });
    assert.match(reply, /^250 /);
    await sink.waitFor(1, 15_000);
    assert.deepEqual(sink.messages[0].recipients, ["b@dest.test"]);
  } finally {
    await mta.stop();
    await sink.close();
  }
});
