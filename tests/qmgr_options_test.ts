// qmgr options not covered elsewhere: IBDB.size (the write-ahead log's checkpoint size), IQDB.max_entries
// (commits under way), wait_for_client (a delivery waits for smtpc to be wired instead of failing), and a
// reload that swaps the qmgr_conf map.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import { cdbPath, ensureCdbDirs } from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import { Endpoint } from "../components/protocol/endpoint.ts";
import type { Envelope, Message } from "../components/protocol/messages.ts";
import { commitEnvelope, connectionOpened } from "../components/qmgr/client.ts";
import { GroupCommit } from "../components/qmgr/group_commit.ts";
import { commitEnvelope as commitLocally } from "../components/qmgr/incoming.ts";
import { ActiveQueue } from "../components/qmgr/active_queue.ts";
import { startQmgr } from "../components/qmgr/qmgr.ts";
import type { Scheduler } from "../components/qmgr/scheduler.ts";
import { QueueStore } from "../components/qmgr/store.ts";
import { until } from "./helpers/qmgr_inprocess.ts";

Deno.test("IBDB.size sets the write-ahead log's checkpoint size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_opt_" });
  try {
    const store = QueueStore.open(dir, 8 * 1024 * 1024);
    const pages = store.db.prepare("PRAGMA wal_autocheckpoint").get()?.wal_autocheckpoint;
    const pageSize = Number(store.db.prepare("PRAGMA page_size").get()?.page_size);
    store.close();
    assert.equal(Number(pages), (8 * 1024 * 1024) / pageSize);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("IQDB.max_entries: beyond it a commit fails at once instead of waiting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_opt_" });
  const store = QueueStore.open(dir);
  const commit = new GroupCommit(store.db, { maxDelay: 5, maxOpen: 100 });
  try {
    const iqdb = { size: 0, max: 2 };
    const deps = {
      store,
      commit,
      aq: new ActiveQueue(10),
      scheduler: { admit: () => {} } as unknown as Scheduler,
      cdbBase: dir,
      now: Date.now,
      stopping: () => false,
      iqdb,
    };
    const env = (): Envelope => {
      const id = newQueueId();
      return {
        id,
        cdbPath: cdbPath(dir, id),
        size: 1,
        arrival: Date.now(),
        sender: "a@b.test",
        recipients: [{ address: "c@d.test" }],
        client: { ip: "192.0.2.1", helo: "h" },
      };
    };
    const answers = await Promise.all([1, 2, 3].map(() => commitLocally(deps, env())));
    assert.deepEqual(answers.map((a) => a.type), ["qmgr.committed", "qmgr.committed", "qmgr.commit_failed"]);
    assert.equal((answers[2] as { reason: string }).reason, "incoming queue full");
    assert.equal(iqdb.size, 0, "every commit left the incoming queue");
    assert.equal((await commitLocally(deps, env())).type, "qmgr.committed", "room again");
  } finally {
    commit.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wait_for_client: a delivery waits for smtpc to be wired; a reload swaps the qmgr_conf map", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "qmgr_opt_" });
  const config = structuredClone(defaultConfig());
  config.CDB_base_directory = join(root, "cdb");
  config.qmgr.IBDB.base_directory = join(root, "ibdb");
  config.qmgr.DEFEDB.base_directory = join(root, "defedb");
  config.qmgr.min_disk_space = 0;
  config.qmgr.wait_for_client = 5_000;
  await ensureCdbDirs(config.CDB_base_directory);
  const conf = join(root, "qmgr_conf");
  await Deno.writeTextFile(conf, "icm: 1\n");
  config.qmgr.conf = { name: "qmgr_conf", type: "hash", file: conf };

  const endpoint = new Endpoint("qmgr");
  const peers: Endpoint[] = [];
  const wire = (name: "smtps" | "smar" | "smtpc", handler: (m: Message) => Message | void) => {
    const ch = new MessageChannel();
    const ep = new Endpoint(name);
    ep.handle((_from, body) => handler(body));
    ep.setPeer("qmgr", ch.port2);
    endpoint.setPeer(name, ch.port1);
    peers.push(ep);
    return ep;
  };
  const smtps = wire("smtps", () => {});
  let routed = 0;
  wire("smar", (m) =>
    m.type === "qmgr.route" && ++routed > 0
      ? {
        type: "smar.route",
        domain: m.domain,
        result: { status: "ok", protocol: "esmtp", port: 25, hosts: [{ name: "mx", address: "192.0.2.9" }] },
      }
      : undefined);
  const qmgr = await startQmgr({ name: "qmgr", generation: 1, config, endpoint, fatal: () => {} });
  try {
    await t.step(
      "a message committed before smtpc is wired is delivered once it is, not deferred",
      async () => {
        const id = newQueueId();
        const env: Envelope = {
          id,
          cdbPath: cdbPath(config.CDB_base_directory, id),
          size: 3,
          arrival: Date.now(),
          sender: "a@b.test",
          recipients: [{ address: "c@d.test" }],
          client: { ip: "192.0.2.1", helo: "h" },
        };
        await Deno.writeTextFile(env.cdbPath, "x\r\n");
        assert.equal((await commitEnvelope(smtps, env)).type, "qmgr.committed");
        // qmgr has routed it and now waits for smtpc (wait_for_client), which is not there yet.
        await until(() => routed > 0, "qmgr to route the message");
        const tas: string[] = [];
        wire("smtpc", (m) => {
          if (m.type !== "qmgr.deliver") return;
          tas.push(m.ta.messageId);
          return {
            type: "smtpc.result",
            taId: m.ta.taId,
            relay: { name: "mx", address: "192.0.2.9", port: 25 },
            results: [{ index: 0, status: "sent", origin: "remote", reply: { code: 250, lines: ["ok"] } }],
          };
        });
        await until(() => tas.length === 1, "the delivery");
        await until(() => Deno.stat(env.cdbPath).then(() => false, () => true), "the message to be removed");
      },
    );
    await t.step("a reload swaps the qmgr_conf map: new clients get the new limits", async () => {
      const open = async (ip: string) => {
        const v = await connectionOpened(smtps, ip);
        return v.type === "qmgr.conn_verdict" && v.accept;
      };
      assert.deepEqual([await open("192.0.2.50"), await open("192.0.2.50")], [true, false], "icm 1");
      await Deno.writeTextFile(conf, "icm: 3\n");
      await qmgr.reload!(config);
      assert.deepEqual([await open("192.0.2.51"), await open("192.0.2.51"), await open("192.0.2.51")], [
        true,
        true,
        true,
      ]);
    });
  } finally {
    await qmgr.stop();
    endpoint.close();
    for (const ep of peers) ep.close();
    await Deno.remove(root, { recursive: true });
  }
});
