// The real smar worker reloads its maps without a restart when the MCP sends a reload frame (SIGHUP or
// the control channel): new entries take effect, and a map file that no longer loads keeps the
// version loaded before while the others are reloaded.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import { PROTOCOL_VERSION } from "../components/protocol/messages.ts";
import type { Config } from "../config/types.ts";
import type { Endpoint } from "../components/protocol/endpoint.ts";
import { checkConnect, checkRcpt, resolveRoute } from "../components/smar/client.ts";
import { type Harness, startComponent } from "./helpers/harness.ts";
import { startDnsServer } from "./helpers/dns_server.ts";

/** Sends a reload frame and waits for the worker's answer (its `error`, if any). */
async function reload(h: Harness, config: Config): Promise<string | undefined> {
  const before = h.frames.length;
  h.worker.postMessage({ v: PROTOCOL_VERSION, kind: "reload", config });
  for (let i = 0; i < 500; i++) {
    const f = h.frames.slice(before).find((f) => f.kind === "reloaded");
    if (f && f.kind === "reloaded") return f.error;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("smar did not answer the reload frame within 5 s");
}

Deno.test("smar reloads its maps on a reload frame and keeps a map that fails to load", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smar_reload_" });
  const dns = await startDnsServer([]);
  const access = join(dir, "access");
  const mailertable = join(dir, "mailertable");
  const aliases = join(dir, "aliases");
  await Deno.writeTextFile(access, "cltaddr:192.0.2.66\treject\n");
  await Deno.writeTextFile(mailertable, "local.example\tlmtp:[127.0.0.1]\n");
  await Deno.writeTextFile(aliases, "postmaster: alice\n");
  const config = structuredClone(defaultConfig());
  config.mcp.heartbeat_interval = 60_000;
  config.smar = {
    ...config.smar,
    nameserver: [dns.address],
    DNS_timeout: 500,
    access_map: { name: "access", type: "hash", file: access },
    mailertable: { name: "mailertable", type: "hash", file: mailertable },
    aliases: { name: "aliases", type: "hash", file: aliases },
  };
  const h = await startComponent("smar", config, { read: [dir], net: [dns.address, "127.0.0.1:0"] }, {
    smtps: () => {},
    qmgr: () => {},
  });
  const smtps = h.peers.get("smtps") as Endpoint;
  const qmgr = h.peers.get("qmgr") as Endpoint;
  const connect = async () =>
    (await checkConnect(smtps, "192.0.2.66", undefined, { flags: ["access"] })).action;
  const postmaster = async () =>
    (await checkRcpt(smtps, {
      ip: "192.0.2.1",
      sender: "",
      recipient: "postmaster@local.example",
      authorized: false,
      context: { state: {} },
    })).recipients;
  try {
    await t.step("before: the client is rejected, postmaster goes to alice", async () => {
      assert.equal(await connect(), "reject");
      assert.deepEqual(await postmaster(), ["alice@localhost"]);
    });
    await t.step("changed maps take effect after a reload", async () => {
      await Deno.writeTextFile(access, "cltaddr:192.0.2.66\tok\n");
      await Deno.writeTextFile(aliases, "postmaster: bob\n");
      assert.equal(await reload(h, config), undefined);
      assert.equal(await connect(), "accept");
      assert.deepEqual(await postmaster(), ["bob@localhost"]);
    });
    await t.step("a map that no longer loads keeps its previous version; the others reload", async () => {
      await Deno.writeTextFile(access, "cltaddr:192.0.2.66\treject\nbroken\n");
      await Deno.writeTextFile(mailertable, "local.example\tsmtp:[127.0.0.1]\n");
      await Deno.writeTextFile(aliases, "postmaster: carol\n");
      assert.equal(await reload(h, config), undefined);
      assert.equal(await connect(), "accept", "the access map loaded before");
      const route = await resolveRoute(qmgr, "local.example");
      assert.equal(route.status === "ok" && route.protocol, "lmtp", "the mailertable loaded before");
      assert.deepEqual(await postmaster(), ["carol@localhost"]);
    });
    await t.step("fixed files load again", async () => {
      await Deno.writeTextFile(access, "cltaddr:192.0.2.66\treject\n");
      assert.equal(await reload(h, config), undefined);
      assert.equal(await connect(), "reject");
    });
  } finally {
    await h.stop();
    await dns.close();
    await Deno.remove(dir, { recursive: true });
  }
});
