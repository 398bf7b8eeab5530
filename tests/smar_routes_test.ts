// smar's maps (text and SQLite, one conformance table for both), createmap, and mailertable routing:
// the lookup order, the value forms, and how mailertable hosts are resolved.

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadMap, type MapLookup } from "../components/maps/load.ts";
import {
  loadMailertable,
  mailertablePorts,
  type MailertableRoute,
  parseMailertableRhs,
} from "../components/smar/mailertable.ts";
import { resolveRoute } from "../components/smar/routes.ts";
import type { DnsResult } from "../components/smar/dns/resolver.ts";
import type { QueryType } from "../components/smar/dns/packet.ts";
import { createMap } from "../scripts/createmap.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smar_routes_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseMailertableRhs() reads [port^][esmtp:|lmtp:]hostlist", async (t) => {
  const lit = (address: string) => ({ kind: "literal" as const, address });
  const host = (name: string) => ({ kind: "name" as const, name });
  const cases: [string, MailertableRoute | RegExp][] = [
    ["[192.0.2.1]", { protocol: "esmtp", port: 25, hosts: [lit("192.0.2.1")] }],
    ["esmtp:[192.0.2.1]", { protocol: "esmtp", port: 25, hosts: [lit("192.0.2.1")] }],
    ["lmtp:[127.0.0.1]", { protocol: "lmtp", port: 24, hosts: [lit("127.0.0.1")] }],
    ["2526^esmtp:[127.0.0.1]", { protocol: "esmtp", port: 2526, hosts: [lit("127.0.0.1")] }],
    ["2400^lmtp:Store.Example.NET", { protocol: "lmtp", port: 2400, hosts: [host("store.example.net")] }],
    ["587^relay.example.net", { protocol: "esmtp", port: 587, hosts: [host("relay.example.net")] }],
    ["ESMTP:[192.0.2.1]", { protocol: "esmtp", port: 25, hosts: [lit("192.0.2.1")] }],
    [
      "esmtp:mx1.example.net, mx2.example.net [192.0.2.9]",
      {
        protocol: "esmtp",
        port: 25,
        hosts: [host("mx1.example.net"), host("mx2.example.net"), lit("192.0.2.9")],
      },
    ],
    ["[IPv6:2001:db8::1]", { protocol: "esmtp", port: 25, hosts: [lit("2001:db8::1")] }],
    ["smtp:[192.0.2.1]", /unknown protocol smtp/],
    ["0^[192.0.2.1]", /bad port 0/],
    ["70000^[192.0.2.1]", /bad port 70000/],
    ["x^[192.0.2.1]", /bad port/],
    ["[192.0.2]", /bad address literal/],
    ["lmtp:", { protocol: "lmtp", port: 24, hosts: [{ kind: "lmtp_socket" }] }],
    ["2400^lmtp:", { protocol: "lmtp", port: 2400, hosts: [{ kind: "lmtp_socket" }] }],
    ["esmtp:", /no host/],
    ["2400^", /no host/],
    ["esmtp:bad_host!", /bad host name/],
  ];
  for (const [rhs, want] of cases) {
    await t.step(rhs, () => {
      if (want instanceof RegExp) assert.throws(() => parseMailertableRhs(rhs), want);
      else assert.deepEqual(parseMailertableRhs(rhs), want);
    });
  }
});

const MAP_TEXT = [
  "# a comment, then a blank line",
  "",
  "Example.COM\tesmtp:[192.0.2.1]",
  "  indented.example   lmtp:[127.0.0.1]   ",
  "spaced.example\t2526^esmtp:a.example.net, b.example.net",
  "windows.example [192.0.2.3]\r",
].join("\n");

/** Builds the same map as text and as SQLite; each test runs against both. */
async function bothBackends(dir: string): Promise<[string, MapLookup][]> {
  const txt = join(dir, "map.txt");
  const db = join(dir, "map.db");
  await Deno.writeTextFile(txt, MAP_TEXT);
  assert.deepEqual(await createMap("hash", txt, db), { ok: true, entries: 4 });
  return [
    ["text", await loadMap({ name: "m", type: "hash", file: txt })],
    ["sqlite", await loadMap({ name: "m", type: "hash", file: db })],
  ];
}

Deno.test("loadMap() reads text and SQLite maps alike", async (t) => {
  await withTempDir(async (dir) => {
    for (const [backend, map] of await bothBackends(dir)) {
      try {
        const cases: [string, string | undefined][] = [
          ["example.com", "esmtp:[192.0.2.1]"],
          ["EXAMPLE.com", "esmtp:[192.0.2.1]"],
          ["indented.example", "lmtp:[127.0.0.1]"],
          ["spaced.example", "2526^esmtp:a.example.net, b.example.net"],
          ["windows.example", "[192.0.2.3]"],
          ["#", undefined],
          ["missing.example", undefined],
        ];
        for (const [key, want] of cases) {
          await t.step(`${backend}: ${key}`, () => assert.equal(map.lookup(key), want));
        }
        await t.step(`${backend}: lists every entry`, () => {
          assert.deepEqual([...map.entries()].map(([k]) => k).sort(), [
            "example.com",
            "indented.example",
            "spaced.example",
            "windows.example",
          ]);
        });
      } finally {
        map.close();
      }
    }
  });
});

Deno.test("loadMap() refuses a missing file or a bad line, naming the file", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "nope");
    await assert.rejects(
      loadMap({ name: "m", type: "hash", file: missing }),
      /Load map m: cannot read .*nope/,
    );
    const bad = join(dir, "bad.txt");
    await Deno.writeTextFile(bad, "good.example ok\nlonely\n");
    await assert.rejects(
      loadMap({ name: "m", type: "hash", file: bad }),
      (err: Error) => err.message === `Load map m: ${bad}:2: missing value for key "lonely"`,
    );
  });
});

Deno.test("createMap() reports every bad line as file:line and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "in.txt");
    const output = join(dir, "out.db");
    await Deno.writeTextFile(input, "a.example 1\nlonely\n# fine\nA.example 2\n");
    assert.deepEqual(await createMap("hash", input, output), {
      ok: false,
      errors: [`${input}:2: missing value for key "lonely"`, `${input}:4: duplicate key "A.example"`],
    });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["in.txt"]);
    const btree = await createMap("btree", input, output);
    assert.equal(btree.ok, false);
    assert.match(
      btree.ok ? "" : btree.errors.join(),
      /^Create map: unsupported map type btree, expected hash/,
    );
  });
});

Deno.test("createMap() replaces an existing map", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "in.txt");
    const output = join(dir, "out.db");
    await Deno.writeTextFile(input, "a.example 1\n");
    await createMap("hash", input, output);
    await Deno.writeTextFile(input, "a.example 2\n");
    assert.deepEqual(await createMap("hash", input, output), { ok: true, entries: 1 });
    const map = await loadMap({ name: "m", type: "hash", file: output });
    try {
      assert.equal(map.lookup("a.example"), "2");
    } finally {
      map.close();
    }
  });
});

/** A resolver answering A questions from a table, recording what it was asked. */
function fakeResolver(a: Record<string, string[] | "temp">) {
  const asked: string[] = [];
  return {
    asked,
    query(name: string, type: QueryType): Promise<DnsResult> {
      asked.push(`${type} ${name}`);
      const v = type === "A" ? a[name] : undefined;
      if (v === "temp") return Promise.resolve({ kind: "temp", reason: `Look up A ${name}: SERVFAIL` });
      if (!v) return Promise.resolve({ kind: "nxdomain" });
      return Promise.resolve({
        kind: "answer",
        records: v.map((address) => ({ type: "A" as const, name, ttl: 60, address })),
      });
    },
  };
}

Deno.test("resolveRoute() follows the mailertable before the DNS", async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, "mailertable");
    await Deno.writeTextFile(
      file,
      [
        "host.sub.dom\t[192.0.2.1]",
        ".sub.dom\t2526^esmtp:[192.0.2.2]",
        ".dom\tlmtp:[127.0.0.1]",
        "local.example\tlmtp:",
        "listed.example\tesmtp:b.relay.example, a.relay.example [192.0.2.5]",
        "half.example\tesmtp:down.relay.example, a.relay.example",
        "down.example\tesmtp:down.relay.example gone.relay.example",
        "gone.example\tesmtp:gone.relay.example",
        "[192.0.2.77]\t[192.0.2.78]",
        ".\t2525^[192.0.2.99]",
      ].join("\n"),
    );
    const mailertable = await loadMailertable({ name: "mailertable", type: "hash", file });
    const resolver = fakeResolver({
      "a.relay.example": ["192.0.2.10"],
      "b.relay.example": ["192.0.2.20", "192.0.2.21"],
      "down.relay.example": "temp",
    });
    const show = (r: Awaited<ReturnType<typeof resolveRoute>>) =>
      r.status === "ok"
        ? `${r.protocol}:${r.port} ${r.hosts.map((h) => `${h.name}[${h.address}]`).join(" ")}`
        : `${r.status} ${r.text}`;
    try {
      const cases: [string, string, string][] = [
        ["the domain itself", "host.sub.dom", "esmtp:25 192.0.2.1[192.0.2.1]"],
        ["the domain in other case", "HOST.Sub.DOM", "esmtp:25 192.0.2.1[192.0.2.1]"],
        ["a subdomain matches its parent's dotted key", "other.sub.dom", "esmtp:2526 192.0.2.2[192.0.2.2]"],
        ["a deeper subdomain", "a.b.sub.dom", "esmtp:2526 192.0.2.2[192.0.2.2]"],
        ["the dotted key does not match the bare domain", "sub.dom", "lmtp:24 127.0.0.1[127.0.0.1]"],
        ["the top-level dotted key", "else.dom", "lmtp:24 127.0.0.1[127.0.0.1]"],
        [
          "hosts keep their listed order, names resolved by A",
          "listed.example",
          "esmtp:25 b.relay.example[192.0.2.20] b.relay.example[192.0.2.21] a.relay.example[192.0.2.10] " +
          "192.0.2.5[192.0.2.5]",
        ],
        ["a host that fails is left out", "half.example", "esmtp:25 a.relay.example[192.0.2.10]"],
        [
          "no host resolving now is retried later",
          "down.example",
          "temp Look up A down.relay.example: SERVFAIL",
        ],
        [
          "no host resolving at all is retried later",
          "gone.example",
          "temp No address for the mailertable hosts of gone.example",
        ],
        ["a domain literal's own entry", "[192.0.2.77]", "esmtp:25 192.0.2.78[192.0.2.78]"],
        [
          "lmtp: without a host is smtpc's LMTP socket",
          "local.example",
          "lmtp:24 localhost[unix:LMTP_socket]",
        ],
        ["everything else takes the catch-all", "elsewhere.example", "esmtp:2525 192.0.2.99[192.0.2.99]"],
      ];
      for (const [label, domain, want] of cases) {
        await t.step(
          label,
          async () => assert.equal(show(await resolveRoute(domain, { resolver, mailertable })), want),
        );
      }
      await t.step("mailertable hosts are never MX-resolved", () => {
        assert.ok(resolver.asked.length > 0);
        // A records, and AAAA only to tell why a host without A records has no address (IPv6 is off).
        assert.deepEqual(resolver.asked.filter((q) => !/^(A|AAAA) /.test(q)), []);
      });
    } finally {
      mailertable.close();
    }
  });
});

Deno.test("loadMailertable() refuses a bad entry, naming it", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "mailertable");
    await Deno.writeTextFile(file, "good.example [192.0.2.1]\nbad.example smtp:[192.0.2.1]\n");
    await assert.rejects(
      loadMailertable({ name: "mailertable", type: "hash", file }),
      /Read mailertable .*: bad\.example: unknown protocol smtp/,
    );
  });
});

Deno.test("mailertablePorts() lists 25 and every port the mailertable routes to", async (t) => {
  await withTempDir(async (dir) => {
    const cases: [string, string, number[]][] = [
      ["an empty mailertable", "# nothing\n", [25]],
      ["only default ports for esmtp", "a.example [192.0.2.1]\n", [25]],
      [
        "explicit ports, lmtp's default, sorted",
        "a.example 2526^[192.0.2.1]\nb.example lmtp:[127.0.0.1]\nc.example 587^esmtp:relay.example\n",
        [24, 25, 587, 2526],
      ],
    ];
    for (const [label, text, want] of cases) {
      await t.step(label, async () => {
        const file = join(dir, "mt.txt");
        await Deno.writeTextFile(file, text);
        assert.deepEqual(await mailertablePorts({ name: "mailertable", type: "hash", file }), want);
        const db = join(dir, "mt.db");
        await createMap("hash", file, db);
        assert.deepEqual(await mailertablePorts({ name: "mailertable", type: "hash", file: db }), want);
      });
    }
    await t.step("a bad entry is an error", async () => {
      const file = join(dir, "bad.txt");
      await Deno.writeTextFile(file, "a.example 99999^[192.0.2.1]\n");
      await assert.rejects(mailertablePorts({ name: "mailertable", type: "hash", file }), /bad port 99999/);
    });
  });
});
