// smar's maps: the text formats and createmap's reports of bad lines, SQLite maps built by createmap,
// sequences, passwd maps, and socket maps against an in-test socketmap server (TCP and unix socket,
// TEMP answers, timeouts, connection reuse).

import assert from "node:assert/strict";
import { join } from "node:path";
import { createMap } from "../scripts/createmap.ts";
import { parseMapText } from "../components/maps/map_text.ts";
import { MapTempError, openMap } from "../components/smar/maps.ts";
import { netstring } from "../components/smar/map_socket.ts";
import { startSocketMapServer } from "./helpers/socketmap_server.ts";
import type { MapSpec } from "../config/types.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smar_maps_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseMapText() reads both text formats and reports each bad line with its number", async (t) => {
  const cases: [string, string, Parameters<typeof parseMapText>[2], [string, string][], string[]][] = [
    ["plain", "# comment\n\nCltAddr:10\tRELAY\nto:x.example  error:550 5.7.1 No\r\n", {}, [
      ["cltaddr:10", "RELAY"],
      ["to:x.example", "error:550 5.7.1 No"],
    ], []],
    ["a key without a value", "a b\nlonely\n", {}, [["a", "b"]], ['in:2: missing value for key "lonely"']],
    ["a duplicate key", "a 1\nA 2\n", {}, [["a", "1"]], ['in:2: duplicate key "A"']],
    ["a control character", "a b\x07c\n", {}, [], ["in:1: control character in line"]],
    [
      "keys only, allowed",
      "alice\nbob 100MB\n",
      { emptyValues: true },
      [["alice", ""], ["bob", "100MB"]],
      [],
    ],
    ["aliases with continuation lines", "staff: alice,\n  bob\n\tcarol\nroot root\n", { format: "aliases" }, [
      ["staff", "alice, bob carol"],
      ["root", "root"],
    ], []],
    ["an alias without a value", "empty:\nok: x\n", { format: "aliases" }, [["empty", ""], ["ok", "x"]], [
      'in:1: missing value for alias "empty"',
    ]],
    ["a continuation with nothing before", "  stray\n", { format: "aliases" }, [], [
      "in:1: continuation line without an alias before it",
    ]],
  ];
  for (const [label, text, opts, entries, errors] of cases) {
    await t.step(label, () => {
      const r = parseMapText(text, "in", opts);
      assert.deepEqual([...r.entries], entries);
      assert.deepEqual(r.errors, errors);
    });
  }
});

Deno.test("createmap builds a SQLite map, or writes nothing and names the bad lines", async (t) => {
  await withDir(async (dir) => {
    const input = join(dir, "access.txt");
    const output = join(dir, "access.db");
    await t.step("bad lines: every one reported, no output", async () => {
      await Deno.writeTextFile(input, "ok relay\nbroken\nok again\n");
      assert.deepEqual(await createMap("hash", input, output), {
        ok: false,
        errors: [`${input}:2: missing value for key "broken"`, `${input}:3: duplicate key "ok"`],
      });
      await assert.rejects(Deno.stat(output), Deno.errors.NotFound);
    });
    await t.step("an unsupported type", async () => {
      const r = await createMap("btree", input, output);
      assert.equal(r.ok, false);
      assert.match(r.ok ? "" : r.errors.join(), /^Create map: unsupported map type btree, expected hash/);
    });
    await t.step("a good map, looked up through SQLite", async () => {
      await Deno.writeTextFile(input, "cltaddr:10 relay\nTo:Example.COM ok\n");
      assert.deepEqual(await createMap("hash", input, output), { ok: true, entries: 2 });
      const map = await openMap({ name: "access", type: "hash", file: output });
      try {
        assert.equal(await map.get("CLTADDR:10"), "relay");
        assert.equal(map.getSync?.("to:example.com"), "ok");
        assert.equal(await map.get("cltaddr:11"), undefined);
        assert.equal(map.hasPrefix("to:"), true);
        assert.equal(map.hasPrefix("cltname:"), false);
      } finally {
        map.close();
      }
    });
    await t.step("an aliases map", async () => {
      await Deno.writeTextFile(input, "postmaster: alice,\n  bob\n");
      assert.deepEqual(await createMap("hash", input, output, { format: "aliases" }), {
        ok: true,
        entries: 1,
      });
      const map = await openMap({ name: "aliases", type: "hash", file: output });
      try {
        assert.equal(await map.get("postmaster"), "alice, bob");
      } finally {
        map.close();
      }
    });
  });
});

Deno.test("a sequence asks its maps in order; a passwd map lists local accounts", async () => {
  await withDir(async (dir) => {
    const first = join(dir, "first");
    const second = join(dir, "second");
    const passwd = join(dir, "passwd");
    await Deno.writeTextFile(first, "a 1\n");
    await Deno.writeTextFile(second, "a 2\nb 2\n");
    await Deno.writeTextFile(
      passwd,
      "root:x:0:0:root:/root:/bin/sh\n# comment\nAlice:x:1000:1000::/home/alice:/bin/sh\n",
    );
    const seq: MapSpec = {
      name: "seq",
      type: "sequence",
      file: "",
      maps: [
        { name: "first", type: "hash", file: first },
        { name: "second", type: "hash", file: second },
        { name: "users", type: "passwd", file: passwd },
      ],
    };
    const map = await openMap(seq);
    try {
      assert.equal(await map.get("a"), "1");
      assert.equal(await map.get("b"), "2");
      assert.equal(await map.get("alice"), "/home/alice");
      assert.equal(await map.get("nobody"), undefined);
      assert.equal(map.source, "sequence of first, second, users");
      assert.equal(map.hasPrefix("b"), true);
    } finally {
      map.close();
    }
  });
});

Deno.test("netstring() frames a request", () => {
  assert.equal(new TextDecoder().decode(netstring("access to:x")), "11:access to:x,");
});

Deno.test("a socket map asks a socketmap server and reuses its connection", async (t) => {
  const server = startSocketMapServer({ users: { alice: "/home/alice", bob: "" } }, {
    temp: ["busy"],
    silent: ["slow"],
  });
  const spec: MapSpec = {
    name: "local",
    type: "socket",
    file: "",
    address: "127.0.0.1",
    port: server.port,
    mapname: "users",
    timeout: 300,
  };
  const map = await openMap(spec);
  try {
    await t.step("OK and NOTFOUND", async () => {
      assert.equal(await map.get("Alice"), "/home/alice");
      assert.equal(await map.get("bob"), "");
      assert.equal(await map.get("carol"), undefined);
      assert.deepEqual(server.requests, ["users alice", "users bob", "users carol"]);
      assert.equal(server.connections, 1);
    });
    await t.step("TEMP is a temporary failure", async () => {
      await assert.rejects(
        map.get("busy"),
        (e) => e instanceof MapTempError && /server answered TEMP/.test(e.message),
      );
    });
    await t.step("no answer within the timeout is a temporary failure", async () => {
      await assert.rejects(
        map.get("slow"),
        (e) => e instanceof MapTempError && /no answer within 300 ms/.test(e.message),
      );
    });
    await t.step("the next lookup opens a new connection", async () => {
      assert.equal(await map.get("alice"), "/home/alice");
      assert.equal(server.connections, 2);
    });
    await t.step("lookups at once use several connections", async () => {
      const all = await Promise.all(
        ["alice", "bob", "carol", "alice", "bob", "alice"].map((k) => map.get(k)),
      );
      assert.deepEqual(all, ["/home/alice", "", undefined, "/home/alice", "", "/home/alice"]);
      assert.ok(server.connections <= 2 + 4);
    });
    await t.step("the map cannot tell which keys it has", () => assert.equal(map.hasPrefix("x"), undefined));
  } finally {
    map.close();
    await server.close();
  }
  await t.step("a server that is down is a temporary failure", async () => {
    const down = await openMap(spec);
    try {
      await assert.rejects(down.get("alice"), MapTempError);
    } finally {
      down.close();
    }
  });
});

Deno.test("a socket map over a unix domain socket", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "socketmap");
    const server = startSocketMapServer({ access: { "cltaddr:10": "relay" } }, { path });
    const map = await openMap({ name: "access", type: "socket", file: "", path });
    try {
      assert.equal(await map.get("cltaddr:10"), "relay");
      assert.equal(map.source, `unix:${path}`);
    } finally {
      map.close();
      await server.close();
    }
  });
});
