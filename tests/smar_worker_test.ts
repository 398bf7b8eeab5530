// The real smar worker, started with only its own permissions (read its maps, net to the test DNS server
// and its UDP bind address), its peers played by the test: policy verdicts for smtps, routes for qmgr,
// and a configuration it cannot use reported as fatal.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import type { Config } from "../config/types.ts";
import { startComponent } from "./helpers/harness.ts";
import { type DnsServer, startDnsServer } from "./helpers/dns_server.ts";
import { checkConnect, checkMail, checkRcpt, resolveRoute } from "../components/smar/client.ts";
import type { Endpoint } from "../components/protocol/endpoint.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import type { WorkerPermissions } from "../components/mcp/spawn.ts";
import { startSocketMapServer } from "./helpers/socketmap_server.ts";

interface Setup {
  dir: string;
  dns: DnsServer;
  config: Config;
  mailertable: string;
  access: string;
}

async function withSetup(fn: (s: Setup) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smar_worker_" });
  const dns = await startDnsServer([
    { name: "example.com", type: "MX", data: { preference: 10, exchange: "mx.example.com" } },
    { name: "mx.example.com", type: "A", data: "192.0.2.10" },
    { name: "relay.example", type: "A", data: "192.0.2.20" },
  ], { servfail: ["broken.test"] });
  try {
    const mailertable = join(dir, "mailertable");
    const access = join(dir, "access");
    await Deno.writeTextFile(
      mailertable,
      "local.example\tlmtp:[127.0.0.1]\nrouted.example\t2526^esmtp:relay.example\n",
    );
    await Deno.writeTextFile(access, "cltaddr:127.0.0.1\trelay\ncltaddr:192.0.2.66\treject\n");
    const config = structuredClone(defaultConfig());
    config.mcp.heartbeat_interval = 60_000;
    config.smar = {
      ...config.smar,
      nameserver: [dns.address],
      DNS_timeout: 500,
      mailertable: { name: "mailertable", type: "hash", file: mailertable },
      access_map: { name: "access", type: "hash", file: access },
    };
    await fn({ dir, dns, config, mailertable, access });
  } finally {
    await dns.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const permissions = (s: Setup) => ({
  read: [s.mailertable, s.access],
  net: [s.dns.address, "127.0.0.1:0"],
});

Deno.test("smar worker answers smtps and qmgr", async (t) => {
  await withSetup(async (s) => {
    const h = await startComponent("smar", s.config, permissions(s), { smtps: () => {}, qmgr: () => {} });
    const smtps = h.peers.get("smtps") as Endpoint;
    const qmgr = h.peers.get("qmgr") as Endpoint;
    try {
      await t.step("check_connect rejects a client the access map rejects (access flag)", async () => {
        assert.deepEqual(await checkConnect(smtps, "192.0.2.66", undefined, { flags: ["access"] }), {
          action: "reject",
          reply: { code: 554, status: "5.7.0", text: "Rejected." },
        });
        assert.deepEqual(await checkConnect(smtps, "192.0.2.1"), { action: "accept", state: {} });
        assert.deepEqual(await checkConnect(smtps, "127.0.0.1"), {
          action: "accept",
          state: { relay: true },
        });
      });

      await t.step("check_mail checks the sender's domain (access flag)", async () => {
        const ctx = { flags: ["access"], state: {} };
        assert.deepEqual(await checkMail(smtps, "192.0.2.1", "someone@example.com", undefined, ctx), {
          action: "accept",
          state: {},
        });
        assert.deepEqual(await checkMail(smtps, "192.0.2.1", "someone@nowhere.invalid", undefined, ctx), {
          action: "reject",
          reply: { code: 553, status: "5.1.8", text: "Domain of sender address does not exist" },
        });
        assert.deepEqual(await checkMail(smtps, "192.0.2.1", "someone@broken.test", undefined, ctx), {
          action: "tempfail",
          reply: { code: 451, status: "4.1.8", text: "Domain of sender address does not resolve" },
        });
      });

      await t.step("check_rcpt decides relaying", async () => {
        const cases: [string, string, boolean, string][] = [
          ["192.0.2.1", "user@local.example", false, "accept"],
          ["192.0.2.1", "user@example.com", false, "550"],
          ["192.0.2.1", "user@example.com", true, "accept"],
          ["127.0.0.1", "user@example.com", false, "accept"],
          ["192.0.2.1", "u%example.com@local.example", false, "550"],
          ["192.0.2.1", "user", false, "501"],
        ];
        for (const [ip, recipient, authorized, want] of cases) {
          const v = await checkRcpt(smtps, { ip, sender: "s@example.org", recipient, authorized });
          assert.equal(v.reply ? String(v.reply.code) : v.action, want, `${ip} ${recipient} ${authorized}`);
        }
      });

      await t.step("qmgr.route follows the mailertable, then MX records", async () => {
        assert.deepEqual(await resolveRoute(qmgr, "routed.example"), {
          status: "ok",
          protocol: "esmtp",
          port: 2526,
          hosts: [{ name: "relay.example", address: "192.0.2.20" }],
        });
        assert.deepEqual(await resolveRoute(qmgr, "local.example"), {
          status: "ok",
          protocol: "lmtp",
          port: 24,
          hosts: [{ name: "127.0.0.1", address: "127.0.0.1" }],
        });
        assert.deepEqual(await resolveRoute(qmgr, "Example.COM"), {
          status: "ok",
          protocol: "esmtp",
          port: 25,
          hosts: [{ name: "mx.example.com", address: "192.0.2.10" }],
        });
      });

      await t.step("qmgr.route tells a missing domain from a failing DNS", async () => {
        assert.deepEqual(await resolveRoute(qmgr, "nowhere.invalid"), {
          status: "perm",
          text: "Host or domain name not found",
        });
        const r = await resolveRoute(qmgr, "broken.test");
        assert.equal(r.status, "temp");
        assert.match(r.status === "temp" ? r.text : "", /SERVFAIL/);
      });

      await t.step("a message smar does not serve gets rpc.failure", async () => {
        const answer = await smtps.request("smar", { type: "smtps.conn_open", ip: "192.0.2.1" });
        assert.deepEqual(answer, { type: "rpc.failure", reason: "smar does not serve smtps.conn_open" });
      });
    } finally {
      await h.stop();
    }
  });
});

Deno.test("smar worker reports a configuration it cannot use as fatal", async (t) => {
  await withSetup(async (s) => {
    await t.step("a missing map file", async () => {
      const config = structuredClone(s.config);
      config.smar.access_map = { name: "access", type: "hash", file: join(s.dir, "missing") };
      await assert.rejects(
        startComponent("smar", config, { ...permissions(s), read: [s.dir] }, {}),
        /smar reported fatal: Load map access: cannot read .*missing/,
      );
    });

    await t.step("a map file outside its read permission", async () => {
      const outside = join(s.dir, "outside");
      await Deno.writeTextFile(outside, "cltaddr:127.0.0.1 relay\n");
      const config = structuredClone(s.config);
      config.smar.access_map = { name: "access", type: "hash", file: outside };
      await assert.rejects(
        startComponent("smar", config, permissions(s), {}),
        /smar reported fatal: Load map access: cannot read .*outside: .*(NotCapable|Requires read access)/,
      );
    });

    await t.step("a bad mailertable entry", async () => {
      await Deno.writeTextFile(s.mailertable, "bad.example smtp:[192.0.2.1]\n");
      await assert.rejects(
        startComponent("smar", s.config, permissions(s), {}),
        /smar reported fatal: Read mailertable .*: bad\.example: unknown protocol smtp/,
      );
    });
  });
});

Deno.test("smar worker's DNS queries fail soft when a nameserver is not in its permission set", async () => {
  await withSetup(async (s) => {
    const config = structuredClone(s.config);
    // The worker may reach only the test DNS server, not this one: its queries must fail as temporary.
    config.smar.nameserver = ["127.0.0.2:53"];
    const h = await startComponent("smar", config, permissions(s), { qmgr: () => {} });
    try {
      const r = await resolveRoute(h.peers.get("qmgr") as Endpoint, "example.com");
      assert.equal(r.status, "temp");
      assert.match(r.status === "temp" ? r.text : "", /no network permission for 127\.0\.0\.2:53/);
      assert.equal(s.dns.queries.length, 0);
    } finally {
      await h.stop();
    }
  });
});

Deno.test("smar worker asks socket maps (TCP and unix) with only its computed permissions", async () => {
  await withSetup(async (s) => {
    const path = join(s.dir, "socketmap.sock");
    const tcp = startSocketMapServer({ access: { "cltaddr:192.0.2.77": "reject" } });
    const unix = startSocketMapServer({ users: { alice: "" } }, { path });
    const config = structuredClone(s.config);
    config.smar.access_map = {
      name: "access",
      type: "sequence",
      file: "",
      maps: [
        { name: "local", type: "hash", file: s.access },
        { name: "remote", type: "socket", file: "", address: "127.0.0.1", port: tcp.port, mapname: "access" },
      ],
    };
    config.smar.local_user_map = { name: "users", type: "socket", file: "", path };
    const sets = await computePermissions(config);
    const h = await startComponent("smar", config, sets.smar as Partial<WorkerPermissions>, {
      smtps: () => {},
    });
    try {
      const smtps = h.peers.get("smtps") as Endpoint;
      const connect = await checkConnect(smtps, "192.0.2.77", undefined, { flags: ["access"] });
      assert.equal(connect.action, "reject");
      const rcpt = (recipient: string) =>
        checkRcpt(smtps, {
          ip: "192.0.2.1",
          sender: "",
          recipient,
          authorized: false,
          context: { state: {} },
        });
      assert.equal((await rcpt("alice@local.example")).action, "accept");
      assert.equal((await rcpt("bob@local.example")).reply?.code, 550);
      assert.deepEqual(tcp.requests, ["access cltaddr:192.0.2.77"]);
      assert.deepEqual(unix.requests, ["users alice", "users bob"]);
    } finally {
      await h.stop();
      await tcp.close();
      await unix.close();
    }
  });
});
