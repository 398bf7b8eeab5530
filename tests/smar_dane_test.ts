// DANE through smar's own resolver (RFC 7672): the in-test DNS server answers MX, A and TLSA with or
// without the AD bit; smar's route carries the TLSA records only when the answers were validated by a
// nameserver the configuration marks as validating (DNSSEC_validating_nameserver); smtpc then
// authenticates the MX host by them against test sinks (a self-signed certificate that DANE-EE vouches
// for). TLSA without AD is as if there were none, a TLSA lookup that fails defers, a record that matches
// nothing defers with 4.7.5, DANE beats MTA-STS. MX targets listen on port 25, which a test does not bind,
// so the route's port is replaced by the test's (as smtpc_routing_test does).

import assert from "node:assert/strict";
import type { RouteResult } from "../components/protocol/messages.ts";
import type { MtaStsSource } from "../components/mail/tls_policy.ts";
import { Resolver } from "../components/smar/dns/resolver.ts";
import { markValidating, parseNameserver } from "../components/smar/dns/nameservers.ts";
import { resolveRoute } from "../components/smar/routes.ts";
import { tlsaLookup } from "../components/smar/tlsa.ts";
import { type DnsRecord, type DnsServerOptions, startDnsServer } from "./helpers/dns_server.ts";
import { freePort } from "./helpers/harness.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const FIXTURES = new URL("./fixtures/tls_policy/", import.meta.url).pathname;
const pem = (name: string) => Deno.readTextFileSync(`${FIXTURES}${name}`);
const SELF = { key: pem("self.key"), cert: pem("self.pem") };
const tlsa = (name: string) => {
  const line = pem("tlsa.txt").split("\n").find((l) => l.startsWith(`${name} `))!;
  const [, usage, selector, matchingType, hex] = line.split(" ");
  return { usage: +usage, selector: +selector, matchingType: +matchingType, hex };
};

type Ok = Extract<RouteResult, { status: "ok" }>;

function records(tlsaName: string): DnsRecord[] {
  return [
    { name: "secure.test", type: "MX", data: { preference: 10, exchange: "mx.secure.test" } },
    { name: "mx.secure.test", type: "A", data: "127.0.0.1" },
    { name: "_25._tcp.mx.secure.test", type: "TLSA", data: tlsa(tlsaName) },
  ];
}

/** The route smar gives for secure.test with these DNS answers; `validating`: the nameserver is trusted. */
async function routeFor(
  recs: DnsRecord[],
  opts: DnsServerOptions,
  validating = true,
  mtaSts?: MtaStsSource,
): Promise<{ route: Ok; queries: { name: string; type: string; ad?: boolean }[] }> {
  const dns = await startDnsServer(recs, opts);
  try {
    const servers = markValidating([parseNameserver(dns.address)], validating ? [dns.address] : []);
    const resolver = new Resolver({ nameservers: servers, timeoutMs: 1000, rounds: 1 });
    const r = await resolveRoute("secure.test", { resolver, tls: { dane: tlsaLookup(resolver), mtaSts } });
    resolver.close();
    assert.equal(r.status, "ok", JSON.stringify(r));
    return { route: r as Ok, queries: dns.queries };
  } finally {
    await dns.close();
  }
}

Deno.test("smar trusts TLSA records only with the AD bit from a validating nameserver", async (t) => {
  await t.step("validated: the records, asked for with the AD bit", async () => {
    const { route, queries } = await routeFor(records("self-ee-spki-sha256"), { authenticated: true });
    assert.deepEqual(route.tls?.dane, {
      "mx.secure.test": {
        status: "secure",
        records: [{ usage: 3, selector: 1, matchingType: 1, data: tlsa("self-ee-spki-sha256").hex }],
      },
    });
    assert.ok(queries.some((q) => q.name === "_25._tcp.mx.secure.test" && q.type === "TLSA" && q.ad));
  });
  await t.step("TLSA without AD: insecure, as if there were none", async () => {
    const { route } = await routeFor(records("self-ee-spki-sha256"), {
      authenticated: ["secure.test", "mx.secure.test"],
    });
    assert.deepEqual(route.tls?.dane, { "mx.secure.test": { status: "insecure" } });
  });
  await t.step("AD from a nameserver not marked validating proves nothing: no DANE", async () => {
    const { route, queries } = await routeFor(records("self-ee-spki-sha256"), { authenticated: true }, false);
    assert.equal(route.tls, undefined);
    assert.ok(!queries.some((q) => q.ad), "AD is asked for only from a validating nameserver");
  });
  await t.step("an MX answer without AD: DANE does not apply, no TLSA lookup", async () => {
    const { route, queries } = await routeFor(records("self-ee-spki-sha256"), {
      authenticated: ["mx.secure.test", "_25._tcp.mx.secure.test"],
    });
    assert.equal(route.tls, undefined);
    assert.ok(!queries.some((q) => q.type === "TLSA"));
  });
  await t.step("a TLSA lookup that fails: temp", async () => {
    const { route } = await routeFor(records("self-ee-spki-sha256"), {
      authenticated: true,
      servfail: ["_25._tcp.mx.secure.test"],
    });
    assert.equal(route.tls?.dane?.["mx.secure.test"].status, "temp");
  });
  await t.step("markValidating() refuses a validating nameserver smar does not ask", () => {
    assert.throws(
      () => markValidating([parseNameserver("127.0.0.1:53")], ["127.0.0.2"]),
      /DNSSEC_validating_nameserver 127\.0\.0\.2 is not one of the nameservers/,
    );
  });
});

Deno.test("smtpc delivers by DANE what smar's validated TLSA records allow, and defers otherwise", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port] }, async ({ deliver }) => {
    const send = async (route: Ok) => {
      const sink = await startSink({ port, tls: SELF });
      try {
        const r = await deliver("Subject: dane\r\n\r\nx\r\n", { route: { ...route, port } });
        return { r, sink, mails: sink.commands.filter((c) => /^MAIL /i.test(c)).length };
      } finally {
        await sink.close();
      }
    };
    await t.step("DANE-EE matches the self-signed certificate: sent", async () => {
      const { route } = await routeFor(records("self-ee-spki-sha256"), { authenticated: true });
      const { r, sink } = await send(route);
      assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
      assert.equal(sink.messages[0].tls, true);
      assert.equal(r.tlsPolicy?.level, "dane");
      assert.equal(r.tlsPolicy?.rule, "DANE TLSA _25._tcp.mx.secure.test");
    });
    await t.step("a TLSA record that matches nothing: deferred 4.7.5, no MAIL", async () => {
      const { route } = await routeFor(records("other-ee-spki-sha256"), { authenticated: true });
      const { r, mails } = await send(route);
      assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
      assert.equal(r.results[0].reply.enhanced, "4.7.5");
      assert.equal(mails, 0);
    });
    await t.step("the same record without AD: no DANE, opportunistic TLS delivers", async () => {
      const { route } = await routeFor(records("other-ee-spki-sha256"), {
        authenticated: ["secure.test", "mx.secure.test"],
      });
      const { r } = await send(route);
      assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
      assert.equal(r.tlsPolicy?.source, "security_level");
    });
    await t.step("a TLSA lookup that failed: deferred without a connection", async () => {
      const { route } = await routeFor(records("self-ee-spki-sha256"), {
        authenticated: true,
        servfail: ["_25._tcp.mx.secure.test"],
      });
      const { r, sink } = await send(route);
      assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
      assert.equal(sink.connections, 0);
    });
    await t.step("DANE takes precedence over an MTA-STS policy that does not list the MX host", async () => {
      const mtaSts: MtaStsSource = {
        lookup: () =>
          Promise.resolve({ status: "policy", policy: { mode: "enforce", mx: ["elsewhere.test"] } }),
      };
      const { route } = await routeFor(records("self-ee-spki-sha256"), { authenticated: true }, true, mtaSts);
      assert.equal(route.tls?.mtaSts?.status, "policy");
      const { r } = await send(route);
      assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
      assert.equal(r.tlsPolicy?.level, "dane");
    });
  });
});
