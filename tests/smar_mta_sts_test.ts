// MTA-STS in smar (RFC 8461), against a real HTTPS policy host (Deno.serve with TLS, a certificate of the
// in-test CA) and the in-test DNS server: the TXT record, the fetch and its limits (no redirects, 64 KB,
// text/plain, a trusted certificate for the policy host name), the durable cache (used when the fetch
// fails, kept across a restart, replaced when the TXT id changes), and what a route becomes under each
// mode (enforce drops MX hosts the policy does not name, defers with 4.7.5 when none is left).

import assert from "node:assert/strict";
import { join } from "node:path";
import { Resolver } from "../components/smar/dns/resolver.ts";
import { PolicyCache } from "../components/smar/mta_sts/cache.ts";
import { MtaStsPolicies } from "../components/smar/mta_sts/policies.ts";
import { resolveRoute } from "../components/smar/routes.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { parseConfig } from "../config/mod.ts";
import { decideTls, mtaStsMatches } from "../components/mail/tls_policy.ts";
import { mtaStsSource } from "../components/smar/mta_sts/start.ts";
import { type DnsRecord, startDnsServer } from "./helpers/dns_server.ts";
import { FIXTURES, policyText, startPolicyServer } from "./helpers/mta_sts_server.ts";

const txt = (domain: string, id: string): DnsRecord => ({
  name: `_mta-sts.${domain}`,
  type: "TXT",
  data: `v=STSv1; id=${id};`,
  ttl: 0,
});
const a = (name: string, ip = "127.0.0.1"): DnsRecord => ({ name, type: "A", data: ip });
const mx = (domain: string, pref: number, host: string): DnsRecord => ({
  name: domain,
  type: "MX",
  data: { preference: pref, exchange: host },
});

const DOMAINS = [
  "sts.test",
  "testing.test",
  "none.test",
  "bad.test",
  "redirect.test",
  "big.test",
  "html.test",
];

async function setUp() {
  const records: DnsRecord[] = [
    ...DOMAINS.flatMap((d) => [txt(d, "1"), a(`mta-sts.${d}`)]),
    mx("sts.test", 10, "mx1.sts.test"),
    mx("sts.test", 20, "mx3.sts.test"),
    a("mx1.sts.test", "127.0.0.2"),
    a("mx3.sts.test", "127.0.0.3"),
    mx("testing.test", 10, "mx.testing.test"),
    mx("testing.test", 20, "other.example"),
    a("mx.testing.test", "127.0.0.4"),
    a("other.example", "127.0.0.5"),
    mx("none.test", 10, "mx.none.test"),
    a("mx.none.test", "127.0.0.6"),
    // A domain whose policy names no MX host it has.
    txt("nomatch.test", "1"),
    a("mta-sts.nomatch.test"),
    mx("nomatch.test", 10, "mx.nomatch.test"),
    a("mx.nomatch.test", "127.0.0.7"),
  ];
  const dns = await startDnsServer(records);
  const http = await startPolicyServer({
    "mta-sts.sts.test": { body: policyText("enforce", ["mx1.sts.test", "*.backup.sts.test"]) },
    "mta-sts.testing.test": { body: policyText("testing", ["mx.testing.test"]) },
    "mta-sts.none.test": { body: policyText("none", []) },
    "mta-sts.bad.test": { body: "version: STSv1\r\nmode: sometimes\r\nmax_age: 100\r\n" },
    "mta-sts.redirect.test": { status: 302, headers: { location: "https://elsewhere.test/" } },
    "mta-sts.big.test": { body: policyText("enforce", ["mx.big.test"]) + "x".repeat(70 * 1024) },
    "mta-sts.html.test": { type: "text/html", body: policyText("enforce", ["mx.html.test"]) },
    "mta-sts.nomatch.test": { body: policyText("enforce", ["mx.elsewhere.test"]) },
  });
  const dir = await Deno.makeTempDir({ prefix: "smx-mta-sts-" });
  const resolver = new Resolver({
    nameservers: [{ ip: "127.0.0.1", port: dns.port, family: 4 }],
    timeoutMs: 500,
  });
  const ca = await Deno.readTextFile(FIXTURES + "ca.pem");
  const caches: PolicyCache[] = [];
  const policies = (caCerts = [ca]) => {
    const cache = new PolicyCache(join(dir, "mta_sts.db"));
    caches.push(cache);
    return new MtaStsPolicies({
      resolver,
      cache,
      port: http.port,
      timeoutMs: 2000,
      caCerts,
      failureBackoffMs: 0,
    });
  };
  return {
    records,
    dns,
    http,
    resolver,
    policies,
    async close() {
      caches.forEach((c) => c.close());
      resolver.close();
      await http.close();
      await dns.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("mtaStsMatches() follows RFC 8461 4.1: exact names, and *. for exactly one left-most label", () => {
  const cases: [string, string[], boolean][] = [
    ["mx1.example.com", ["mx1.example.com"], true],
    ["MX1.Example.COM.", ["mx1.example.com"], true],
    ["mx2.example.com", ["mx1.example.com"], false],
    ["mx.example.com", ["*.example.com"], true],
    ["a.b.example.com", ["*.example.com"], false],
    ["example.com", ["*.example.com"], false],
    ["mx.example.org", ["*.example.com", "mx.example.org"], true],
  ];
  for (const [host, patterns, want] of cases) {
    assert.equal(patterns.some((p) => mtaStsMatches(p, host)), want, `${host} ${patterns}`);
  }
});

Deno.test("MTA-STS policies: fetched over HTTPS, cached durably, fetched again only when the TXT id changes", async () => {
  const t = await setUp();
  try {
    const p = t.policies();
    const first = await p.lookup("sts.test");
    assert.equal(first.policy?.mode, "enforce");
    assert.deepEqual(first.policy?.mx, ["mx1.sts.test", "*.backup.sts.test"]);
    assert.equal(first.policy?.maxAge, 86400);
    assert.equal(t.http.fetches("mta-sts.sts.test"), 1);
    await p.lookup("sts.test");
    assert.equal(t.http.fetches("mta-sts.sts.test"), 1, "the cached policy serves while the id is the same");

    // A restart (a new cache object on the same file) with the policy host gone: the cache serves.
    await t.http.close();
    const after = await t.policies().lookup("sts.test");
    assert.equal(after.policy?.id, "1");
    assert.equal(after.policy?.mode, "enforce");

    // The id changes while the policy host is down: the cached policy still applies, the failure is kept.
    t.records.splice(t.records.findIndex((r) => r.name === "_mta-sts.sts.test"), 1, txt("sts.test", "2"));
    const down = await t.policies().lookup("sts.test");
    assert.equal(down.policy?.id, "1", "the cached policy applies when the fetch fails");
    assert.equal(down.failure?.type, "sts-policy-fetch-error");
  } finally {
    await t.close();
  }
});

Deno.test("MTA-STS policies: a new TXT id fetches the new policy and replaces the cached one", async () => {
  const t = await setUp();
  try {
    const p = t.policies();
    assert.equal((await p.lookup("sts.test")).policy?.mode, "enforce");
    t.http.replies.set("mta-sts.sts.test", { body: policyText("testing", ["mx1.sts.test"], 600) });
    t.records.splice(t.records.findIndex((r) => r.name === "_mta-sts.sts.test"), 1, txt("sts.test", "2"));
    const next = await p.lookup("sts.test");
    assert.equal(next.policy?.id, "2");
    assert.equal(next.policy?.mode, "testing");
    assert.equal(next.policy?.maxAge, 600);
    assert.equal(t.http.fetches("mta-sts.sts.test"), 2);
    // The record removed: the cached policy still applies until it expires (RFC 8461 3.1).
    t.records.splice(t.records.findIndex((r) => r.name === "_mta-sts.sts.test"), 1);
    assert.equal((await p.lookup("sts.test")).policy?.id, "2");
  } finally {
    await t.close();
  }
});

Deno.test("MTA-STS policies: bad policies and policy hosts are no policy, each for its RFC reason", async () => {
  const t = await setUp();
  try {
    const p = t.policies();
    const cases: [string, string, RegExp][] = [
      ["bad.test", "sts-policy-invalid", /does not parse/],
      [
        "redirect.test",
        "sts-policy-fetch-error",
        /HTTP 302 redirect to https:\/\/elsewhere.test\/ not followed/,
      ],
      ["big.test", "sts-policy-fetch-error", /larger than 65536 bytes/],
      ["html.test", "sts-policy-fetch-error", /media type text\/html, expected text\/plain/],
      ["nowhere.test", "", /./],
    ];
    for (const [domain, type, reason] of cases) {
      const got = await p.lookup(domain);
      assert.equal(got.policy, undefined, domain);
      if (type) {
        assert.equal(got.failure?.type, type, domain);
        assert.match(got.failure!.reason, reason, domain);
      } else assert.equal(got.failure, undefined, `${domain} has no TXT record: nothing to fetch`);
    }
    assert.equal(t.http.fetches("mta-sts.redirect.test"), 1);
    assert.equal(
      t.http.requests.filter((r) => r.host === "elsewhere.test").length,
      0,
      "the redirect is not followed",
    );

    // Without the in-test CA the policy host's certificate is not trusted.
    const untrusted = await t.policies([]).lookup("none.test");
    assert.equal(untrusted.policy, undefined);
    assert.equal(untrusted.failure?.type, "sts-webpki-invalid", untrusted.failure?.reason);
  } finally {
    await t.close();
  }
});

Deno.test("MTA-STS routes: the policy goes with MX routes into the TLS decision, enforce refuses hosts it does not name", async () => {
  const t = await setUp();
  try {
    const source = mtaStsSource(t.policies());
    const deps = { resolver: t.resolver, tls: { mtaSts: source }, mxPort: 2525 };
    const enforce = await resolveRoute("sts.test", deps);
    assert.equal(enforce.status, "ok");
    if (enforce.status !== "ok") return;
    assert.equal(enforce.port, 2525, "the testing option MX_port");
    assert.deepEqual(enforce.tls?.mtaSts, {
      status: "policy",
      policy: { mode: "enforce", mx: ["mx1.sts.test", "*.backup.sts.test"], id: "1", maxAge: 86400 },
    });
    const mx1 = decideTls(enforce.tls, { name: "mx1.sts.test" }, "may");
    assert.equal(mx1.level, "mta-sts");
    assert.equal(mx1.unmet, undefined);
    const mx3 = decideTls(enforce.tls, { name: "mx3.sts.test" }, "may");
    assert.match(mx3.unmet ?? "", /MX host mx3.sts.test is not in the MTA-STS policy of sts.test/);
    assert.equal(mx3.status, "4.7.5");

    const testing = await resolveRoute("testing.test", deps);
    assert.equal(testing.status === "ok" && testing.tls?.mtaSts?.status, "policy");
    if (testing.status !== "ok") return;
    assert.equal(decideTls(testing.tls, { name: "other.example" }, "may").level, "may", "testing: as usual");

    const none = await resolveRoute("none.test", deps);
    assert.equal(
      none.status === "ok" && decideTls(none.tls, { name: "mx.none.test" }, "may").source,
      "security_level",
    );

    // No MX host of the domain is in the policy: every one is refused (the delivery defers, 4.7.5).
    const nomatch = await resolveRoute("nomatch.test", deps);
    assert.equal(nomatch.status, "ok");
    if (nomatch.status !== "ok") return;
    assert.match(decideTls(nomatch.tls, nomatch.hosts[0], "may").unmet ?? "", /not in the MTA-STS policy/);

    // A fetch failure with nothing cached: no policy, and the failure is kept once for TLS-RPT.
    assert.deepEqual(await source.lookup("redirect.test"), { status: "none" });
    assert.equal(source.takeFailure("redirect.test")?.result, "sts-policy-fetch-error");
    assert.equal(source.takeFailure("redirect.test"), undefined);
  } finally {
    await t.close();
  }
});

Deno.test("MTA-STS policies: refreshDue() fetches again the policies close to their max_age", async () => {
  const t = await setUp();
  try {
    const p = t.policies();
    await p.lookup("sts.test");
    assert.equal(t.http.fetches("mta-sts.sts.test"), 1);
    await p.refreshDue(1000);
    assert.equal(t.http.fetches("mta-sts.sts.test"), 1, "a day of max_age left: not yet");
    await p.refreshDue(2 * 86_400_000);
    assert.equal(t.http.fetches("mta-sts.sts.test"), 2, "within the window: fetched again");
  } finally {
    await t.close();
  }
});

Deno.test("with MTA_STS and TLS_RPT, smar may reach the HTTPS port of any IPv4 host and its cache, no more", async () => {
  const text =
    `smar { nameserver = 127.0.0.1; MTA_STS { cache_file = "/tmp/x/mta_sts.db"; CAcert_file = "/tmp/x/ca.pem"; } }
qmgr { TLS_RPT { report_interval = 1h; } }`;
  const sets = await computePermissions(parseConfig(text, "t.conf"), { readFiles: false });
  const net = sets.smar.net as string[];
  assert.ok(net.includes("0.0.0.0/0:443"), JSON.stringify(net));
  assert.ok(!net.some((n) => /:(25|80)$/.test(n)), JSON.stringify(net));
  assert.ok((sets.smar.write as string[]).includes("/tmp/x/mta_sts.db"));
  assert.ok((sets.smar.read as string[]).includes("/tmp/x/ca.pem"));
  assert.equal(
    sets.qmgr.net && (sets.qmgr.net as string[]).some((n) => !n.startsWith("unix:")),
    false,
    "qmgr: no network",
  );
  const plain = await computePermissions(parseConfig("smar { nameserver = 127.0.0.1; }", "t.conf"), {
    readFiles: false,
  });
  assert.ok(!(plain.smar.net as string[]).includes("0.0.0.0/0:443"), "without them: no HTTPS");
});
