// The connect stage's DNS checks against the in-test DNS server: the client's PTR name confirmed by its
// A record (cltresolve: ok, no, tempptr, tempa; cltname:), and DNS blacklists asked at once and judged
// in order, a SERVFAIL (tag:temp) told from an NXDOMAIN (tag:perm).

import assert from "node:assert/strict";
import { Resolver } from "../components/smar/dns/resolver.ts";
import { listing, resolveClient, reverseName } from "../components/smar/client_dns.ts";
import { listingKeys } from "../components/smar/stage_connect.ts";
import { type DnsRecord, startDnsServer } from "./helpers/dns_server.ts";
import { policyOf, show } from "./helpers/smar_policy.ts";
import { parseNameserver } from "../components/smar/dns/nameservers.ts";

const RECORDS: DnsRecord[] = [
  { name: "1.2.0.192.in-addr.arpa", type: "PTR", data: "mail.good.example" },
  { name: "mail.good.example", type: "A", data: "192.0.2.1" },
  { name: "2.2.0.192.in-addr.arpa", type: "PTR", data: "forged.example" },
  { name: "forged.example", type: "A", data: "198.51.100.1" },
  { name: "5.2.0.192.in-addr.arpa", type: "PTR", data: "broken-a.example" },
  { name: "9.2.0.192.in-addr.arpa", type: "PTR", data: "host.dialup.example" },
  { name: "host.dialup.example", type: "A", data: "192.0.2.9" },
  // 192.0.2.66 is listed by both lists, 192.0.2.67 by the second only.
  { name: "66.2.0.192.bl.example", type: "A", data: "127.0.0.2" },
  { name: "66.2.0.192.bl2.example", type: "A", data: "127.0.0.4" },
  { name: "67.2.0.192.bl2.example", type: "A", data: "127.0.0.3" },
  { name: "67.2.0.192.bl2.example", type: "A", data: "127.0.0.10" },
  // Names that exist, so the lists' zones are not empty.
  { name: "bl.example", type: "A", data: "192.0.2.250" },
  { name: "bl2.example", type: "A", data: "192.0.2.251" },
];
const SERVFAIL = ["3.2.0.192.in-addr.arpa", "broken-a.example", "68.2.0.192.bl.example"];

async function withDns(fn: (resolver: Resolver) => Promise<void>): Promise<void> {
  const dns = await startDnsServer(RECORDS, { servfail: SERVFAIL });
  const resolver = new Resolver({ nameservers: [parseNameserver(dns.address)], timeoutMs: 500, rounds: 1 });
  try {
    await fn(resolver);
  } finally {
    resolver.close();
    await dns.close();
  }
}

Deno.test("reverseName() reverses IPv4 by octets and IPv6 by nibbles", () => {
  assert.equal(reverseName("192.0.2.1", "in-addr.arpa"), "1.2.0.192.in-addr.arpa");
  assert.equal(reverseName("::ffff:192.0.2.1", "bl.example"), "1.2.0.192.bl.example");
  assert.equal(
    reverseName("2001:db8::1", "ip6.arpa"),
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
  );
  assert.equal(reverseName("not an address", "x"), undefined);
});

Deno.test("resolveClient() confirms a PTR name by its A record", async (t) => {
  await withDns(async (resolver) => {
    const cases: [string, string, { state: string; name?: string }][] = [
      ["a confirmed name", "192.0.2.1", { state: "ok", name: "mail.good.example" }],
      ["a PTR whose A record names another address", "192.0.2.2", { state: "no" }],
      ["a PTR lookup that fails (SERVFAIL)", "192.0.2.3", { state: "tempptr" }],
      ["no PTR record (NXDOMAIN)", "192.0.2.4", { state: "no" }],
      ["an A lookup that fails (SERVFAIL)", "192.0.2.5", { state: "tempa" }],
    ];
    for (const [label, ip, want] of cases) {
      await t.step(label, async () => assert.deepEqual(await resolveClient(resolver, ip), want));
    }
  });
});

Deno.test("listing() tells a listing, a temporary failure and no listing apart", async (t) => {
  await withDns(async (resolver) => {
    const cases: [string, string, string, object, string[]][] = [
      ["listed", "192.0.2.66", "bl.example", { kind: "listed", addresses: ["127.0.0.2"] }, [
        "bl:127.0.0.2",
        "bl:127.0.0",
        "bl:127.0",
        "bl:127",
      ]],
      ["SERVFAIL: temporary", "192.0.2.68", "bl.example", { kind: "temp" }, ["bl:temp"]],
      ["NXDOMAIN: not listed", "192.0.2.69", "bl.example", { kind: "perm" }, ["bl:perm"]],
    ];
    for (const [label, ip, domain, want, keys] of cases) {
      await t.step(label, async () => {
        const r = await listing(resolver, ip, domain);
        assert.deepEqual(r, want);
        assert.deepEqual(listingKeys("bl", r), keys);
      });
    }
  });
});

const ACCESS = `
cltaddr:192.0.2.70	ok
cltname:.dialup.example	error:554 5.7.1 Dialup clients use your provider's server
cltresolve:tempptr	error:451 4.7.1 Cannot look your name up now
bl:127.0.0.2	error:554 5.7.1 Listed by bl.example
bl:temp	error:451 4.7.1 bl.example cannot be asked now
bl2:127.0.0.3	error:554 5.7.1 Listed by bl2.example
bl2:127.0.0.4	ok
`;

Deno.test("the connect stage over DNS: client names, then every blacklist in order", async (t) => {
  await withDns(async (resolver) => {
    const p = policyOf({
      access: ACCESS,
      more: {
        resolver,
        dnsbl: [{ domain: "bl.example", tag: "bl" }, { domain: "bl2.example", tag: "bl2" }],
      },
    });
    const flags = ["access"];
    const cases: [string, string, string[], string][] = [
      ["a confirmed, unlisted client", "192.0.2.1", flags, "accept"],
      [
        "a client name in a refused domain",
        "192.0.2.9",
        flags,
        "reject 554 5.7.1 Dialup clients use your provider's server",
      ],
      ["a PTR lookup that fails", "192.0.2.3", flags, "tempfail 451 4.7.1 Cannot look your name up now"],
      ["listed by the first list", "192.0.2.66", flags, "reject 554 5.7.1 Listed by bl.example"],
      [
        "listed by the second, one of two answers has an entry",
        "192.0.2.67",
        flags,
        "reject 554 5.7.1 Listed by bl2.example",
      ],
      [
        "the first list cannot be asked",
        "192.0.2.68",
        flags,
        "tempfail 451 4.7.1 bl.example cannot be asked now",
      ],
      ["a client with ok is not looked up", "192.0.2.70", flags, "accept"],
      ["held back by delay_checks", "192.0.2.66", [...flags, "delay_checks"], "accept"],
      ["no blacklist without the access flag", "192.0.2.66", [], "accept"],
    ];
    for (const [label, ip, f, want] of cases) {
      await t.step(label, async () => assert.equal(show(await p.checkConnect(ip, { flags: f })), want));
    }
  });
});
