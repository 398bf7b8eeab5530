// smar's DNS stub resolver and DNS routing against the in-test DNS server (tests/helpers/dns_server.ts):
// what each kind of answer becomes, MX ordering, implicit and null MX, TCP fallback, caching by TTL.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import dnsPacket from "dns-packet";
import { type DnsRecord, type DnsServer, startDnsServer } from "./helpers/dns_server.ts";
import { Resolver } from "../components/smar/dns/resolver.ts";
import {
  type Nameserver,
  nameserverNetPermissions,
  parseNameserver,
  parseResolvConf,
} from "../components/smar/dns/nameservers.ts";
import { resolveRoute } from "../components/smar/routes.ts";

const RECORDS: DnsRecord[] = [
  { name: "example.com", type: "MX", data: { preference: 20, exchange: "mx2.example.com" }, ttl: 60 },
  { name: "example.com", type: "MX", data: { preference: 10, exchange: "mx1a.example.com" }, ttl: 60 },
  { name: "example.com", type: "MX", data: { preference: 10, exchange: "mx1b.example.com" }, ttl: 60 },
  { name: "mx1a.example.com", type: "A", data: "192.0.2.11" },
  { name: "mx1b.example.com", type: "A", data: "192.0.2.12" },
  { name: "mx2.example.com", type: "A", data: "192.0.2.20" },
  { name: "mx2.example.com", type: "A", data: "192.0.2.21" },
  { name: "plain.test", type: "A", data: "192.0.2.30" },
  { name: "nomail.test", type: "MX", data: { preference: 0, exchange: "." } },
  { name: "nomail.test", type: "A", data: "192.0.2.40" },
  { name: "dangling.test", type: "MX", data: { preference: 10, exchange: "gone.invalid" } },
  { name: "alias.test", type: "CNAME", data: "plain.test" },
  { name: "text.test", type: "TXT", data: "v=spf1 -all" },
];

const ns = (server: DnsServer): Nameserver => parseNameserver(server.address);

async function withServer(
  opts: Parameters<typeof startDnsServer>[1],
  fn: (server: DnsServer) => Promise<void>,
): Promise<void> {
  const server = await startDnsServer(RECORDS, opts);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

Deno.test("parseNameserver() reads ip, ip:port and [ipv6]:port", async (t) => {
  const cases: [string, Nameserver | "error"][] = [
    ["192.0.2.1", { ip: "192.0.2.1", port: 53, family: 4 }],
    ["127.0.0.1:5353", { ip: "127.0.0.1", port: 5353, family: 4 }],
    ["::1", { ip: "::1", port: 53, family: 6 }],
    ["[2001:db8::1]:5300", { ip: "2001:db8::1", port: 5300, family: 6 }],
    ["ns.example.com", "error"],
    ["127.0.0.1:0", "error"],
    ["127.0.0.1:70000", "error"],
  ];
  for (const [entry, want] of cases) {
    await t.step(entry, () => {
      if (want === "error") assert.throws(() => parseNameserver(entry), RangeError);
      else assert.deepEqual(parseNameserver(entry), want);
    });
  }
});

Deno.test("parseResolvConf() takes the nameserver lines it can use", () => {
  const text = "# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n" +
    "nameserver 2001:db8::53\n  nameserver   127.0.0.53  \nnameserver bogus\n";
  assert.deepEqual(parseResolvConf(text).map((n) => `${n.ip}:${n.port}`), [
    "10.0.0.53:53",
    "2001:db8::53:53",
    "127.0.0.53:53",
  ]);
});

Deno.test("nameserverNetPermissions() names each server and the address its UDP socket binds", () => {
  const servers = ["127.0.0.1:5353", "10.0.0.53", "[2001:db8::53]:53"].map(parseNameserver);
  assert.deepEqual(nameserverNetPermissions(servers), [
    "127.0.0.1:5353",
    "10.0.0.53:53",
    "[2001:db8::53]:53",
    "127.0.0.1:0",
    "0.0.0.0:0",
    "[::]:0",
  ]);
});

Deno.test("Resolver.query() tells answers, NODATA, NXDOMAIN and failures apart", async (t) => {
  await withServer({ servfail: ["broken.test"], drop: ["silent.test"] }, async (server) => {
    const resolver = new Resolver({ nameservers: [ns(server)], timeoutMs: 200, rounds: 1 });
    try {
      const cases: [string, string, "A" | "MX" | "TXT", string][] = [
        ["an A record", "plain.test", "A", "answer 192.0.2.30"],
        ["a name asked in upper case", "PLAIN.TEST", "A", "answer 192.0.2.30"],
        ["a CNAME followed to its A record", "alias.test", "A", "answer 192.0.2.30"],
        ["a TXT record", "text.test", "TXT", "answer v=spf1 -all"],
        ["a name without the type asked", "plain.test", "MX", "nodata"],
        ["a name that does not exist", "nowhere.invalid", "A", "nxdomain"],
        ["a name that cannot exist", "bad..name", "A", "nxdomain"],
        ["a SERVFAIL", "broken.test", "A", "temp"],
        ["a server that never answers", "silent.test", "A", "temp"],
      ];
      for (const [label, name, type, want] of cases) {
        await t.step(label, async () => {
          const r = await resolver.query(name, type);
          const got = r.kind !== "answer"
            ? r.kind
            : `answer ${
              r.records.map((x) => x.type === "A" ? x.address : x.type === "TXT" ? x.text : "?").join(" ")
            }`;
          assert.equal(got, want);
        });
      }
      await t.step("temporary failures say what went wrong", async () => {
        const sf = await resolver.query("broken.test", "A");
        assert.equal(sf.kind, "temp");
        assert.match(sf.kind === "temp" ? sf.reason : "", /SERVFAIL/);
        const to = await resolver.query("silent.test", "A");
        assert.match(to.kind === "temp" ? to.reason : "", /no answer from 127\.0\.0\.1:\d+ within 200 ms/);
      });
    } finally {
      resolver.close();
    }
  });
});

Deno.test("Resolver.query() answers temp when no nameserver is reachable", async () => {
  // A port with nothing behind it: the query times out.
  const server = await startDnsServer([]);
  const dead = ns(server);
  await server.close();
  const resolver = new Resolver({ nameservers: [dead], timeoutMs: 100, rounds: 2 });
  try {
    const r = await resolver.query("example.com", "MX");
    assert.equal(r.kind, "temp");
  } finally {
    resolver.close();
  }
});

Deno.test("Resolver.query() asks the next nameserver when one fails", async () => {
  const bad = await startDnsServer(RECORDS, { servfail: ["plain.test"] });
  const good = await startDnsServer(RECORDS);
  const resolver = new Resolver({ nameservers: [ns(bad), ns(good)], timeoutMs: 500, rounds: 1 });
  try {
    const r = await resolver.query("plain.test", "A");
    assert.equal(r.kind, "answer");
    assert.equal(bad.queries.length, 1);
    assert.equal(good.queries.length, 1);
  } finally {
    resolver.close();
    await bad.close();
    await good.close();
  }
});

Deno.test("Resolver.query() retries over TCP when the UDP answer is truncated", async () => {
  await withServer({ truncate: true }, async (server) => {
    const resolver = new Resolver({ nameservers: [ns(server)], timeoutMs: 1000 });
    try {
      const r = await resolver.query("mx2.example.com", "A");
      assert.deepEqual(r.kind === "answer" ? r.records.map((x) => x.type === "A" && x.address) : r, [
        "192.0.2.20",
        "192.0.2.21",
      ]);
      // once over UDP (truncated), once over TCP
      assert.deepEqual(server.queries, [
        { name: "mx2.example.com", type: "A" },
        { name: "mx2.example.com", type: "A" },
      ]);
    } finally {
      resolver.close();
    }
  });
});

Deno.test("Resolver.query() caches answers for their TTL, and never temporary failures", async () => {
  let now = 1_000_000;
  await withServer({ servfail: ["broken.test"] }, async (server) => {
    const resolver = new Resolver({ nameservers: [ns(server)], timeoutMs: 500, rounds: 1, now: () => now });
    try {
      await resolver.query("example.com", "MX"); // TTL 60
      await resolver.query("example.com", "MX");
      assert.equal(server.queries.length, 1);
      now += 59_000;
      await resolver.query("EXAMPLE.com.", "MX");
      assert.equal(server.queries.length, 1);
      now += 2_000;
      await resolver.query("example.com", "MX");
      assert.equal(server.queries.length, 2);

      await resolver.query("broken.test", "A");
      await resolver.query("broken.test", "A");
      assert.equal(server.queries.length, 4);
    } finally {
      resolver.close();
    }
  });
});

Deno.test("Resolver.query() ignores answers whose id or question do not match", async () => {
  // A server that first sends a forged answer (wrong id), then one for another name, then the real one.
  const sock = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
  sock.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
    const q = dnsPacket.decode(msg);
    const answer = (id: number, name: string, address: string) =>
      dnsPacket.encode({
        type: "response",
        id,
        flags: 0,
        questions: [{ name, type: "A" }],
        answers: [{ name, type: "A", ttl: 60, data: address }],
      });
    const question = q.questions[0].name;
    sock.send(answer((q.id + 1) & 0xffff, question, "198.51.100.1"), rinfo.port, rinfo.address);
    sock.send(answer(q.id, "other.test", "198.51.100.2"), rinfo.port, rinfo.address);
    sock.send(answer(q.id, question, "192.0.2.99"), rinfo.port, rinfo.address);
  });
  const resolver = new Resolver({
    nameservers: [{ ip: "127.0.0.1", port: sock.address().port, family: 4 }],
    timeoutMs: 1000,
  });
  try {
    const r = await resolver.query("real.test", "A");
    assert.deepEqual(r.kind === "answer" ? r.records.map((x) => x.type === "A" && x.address) : r, [
      "192.0.2.99",
    ]);
  } finally {
    resolver.close();
    await new Promise<void>((resolve) => sock.close(() => resolve()));
  }
});

Deno.test("resolveRoute() routes by MX, A and domain literals", async (t) => {
  await withServer({ servfail: ["broken.test"], drop: ["silent.test"] }, async (server) => {
    const resolver = new Resolver({ nameservers: [ns(server)], timeoutMs: 200, rounds: 1 });
    // random() = 0 turns the shuffle into a fixed rotation, so the order is predictable.
    const deps = { resolver, random: () => 0 };
    const show = (r: Awaited<ReturnType<typeof resolveRoute>>) =>
      r.status === "ok"
        ? `ok ${r.protocol}:${r.port} ${r.hosts.map((h) => `${h.name}[${h.address}]`).join(" ")}`
        : `${r.status} ${r.text}`;
    try {
      const cases: [string, string, string | RegExp][] = [
        [
          "MX hosts by preference, each with its addresses in order",
          "example.com",
          "ok esmtp:25 mx1b.example.com[192.0.2.12] mx1a.example.com[192.0.2.11] " +
          "mx2.example.com[192.0.2.20] mx2.example.com[192.0.2.21]",
        ],
        ["the domain's own A record when it has no MX", "plain.test", "ok esmtp:25 plain.test[192.0.2.30]"],
        ["a null MX refuses mail", "nomail.test", "perm Domain does not accept mail (null MX)"],
        ["a domain that does not exist bounces", "nowhere.invalid", "perm Host or domain name not found"],
        ["MX hosts without addresses bounce", "dangling.test", /^perm No address for any mail exchanger/],
        ["a name without MX or A bounces", "text.test", /^perm No MX or A record for text\.test/],
        ["a SERVFAIL is retried later", "broken.test", /^temp Look up MX broken\.test: .*SERVFAIL/],
        ["a timeout is retried later", "silent.test", /^temp Look up MX silent\.test: no answer/],
        ["a domain literal is used as it is", "[192.0.2.7]", "ok esmtp:25 192.0.2.7[192.0.2.7]"],
        ["a malformed domain bounces", "exa mple.com", /^perm Malformed domain name/],
      ];
      for (const [label, domain, want] of cases) {
        await t.step(label, async () => {
          const got = show(await resolveRoute(domain, deps));
          if (typeof want === "string") assert.equal(got, want);
          else assert.match(got, want);
        });
      }
      await t.step("equal preferences come in random order", async () => {
        const firsts = new Set<string>();
        for (const random of [() => 0, () => 0.99]) {
          const r = await resolveRoute("example.com", { resolver, random });
          assert.equal(r.status, "ok");
          if (r.status === "ok") {
            firsts.add(r.hosts[0].name);
            assert.equal(r.hosts[2].name, "mx2.example.com");
          }
        }
        assert.deepEqual([...firsts].sort(), ["mx1a.example.com", "mx1b.example.com"]);
      });
    } finally {
      resolver.close();
    }
  });
});

Deno.test("resolveRoute() lists at most 10 hosts", async () => {
  const records: DnsRecord[] = [];
  for (let i = 0; i < 6; i++) {
    records.push({ name: "many.test", type: "MX", data: { preference: i, exchange: `mx${i}.many.test` } });
    records.push({ name: `mx${i}.many.test`, type: "A", data: `192.0.2.${i * 2 + 1}` });
    records.push({ name: `mx${i}.many.test`, type: "A", data: `192.0.2.${i * 2 + 2}` });
  }
  const server = await startDnsServer(records);
  const resolver = new Resolver({ nameservers: [ns(server)], timeoutMs: 500 });
  try {
    const r = await resolveRoute("many.test", { resolver });
    assert.equal(r.status === "ok" && r.hosts.length, 10);
    assert.equal(r.status === "ok" && r.hosts[9].address, "192.0.2.10");
  } finally {
    resolver.close();
    await server.close();
  }
});
