// The disk guard: below min_disk_space the queue is low until free space is back above ok_disk_space
// (an injected free-space probe); qmgr tells smtps, and the real smtps worker then answers MAIL with
// 452 4.3.1. A content file that cannot be written answers 451 4.3.0 and leaves no trace.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import { CDB_SUBDIRS } from "../components/mail/cdb.ts";
import type { Component } from "../components/protocol/worker_runtime.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { DiskGuard } from "../components/qmgr/disk_guard.ts";
import { startQmgr } from "../components/qmgr/qmgr.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { until } from "./helpers/qmgr_inprocess.ts";
import { SmtpConnection } from "./helpers/smtp_client.ts";
import { type Smtps, startSmtps } from "./helpers/smtps_dialogue.ts";

const MB = 1024 * 1024;

Deno.test("the disk guard is low below min_disk_space and stays low until ok_disk_space", async () => {
  const readings = [200, 50, 100, 127, 130, 100, 63].map((n) => n * MB);
  const reports: [boolean, number][] = [];
  const guard = new DiskGuard({
    path: "/queue",
    min: 64 * MB,
    ok: 128 * MB,
    probe: () => Promise.resolve(readings.shift()!),
    report: (low, free) => reports.push([low, free / MB]),
  });
  const states: boolean[] = [];
  while (readings.length > 0) {
    await guard.check();
    states.push(guard.low);
  }
  assert.deepEqual(states, [false, true, true, true, false, false, true]);
  // Reported: every probe while low (a restarted smtps learns it), and the change back to ok.
  assert.deepEqual(reports, [[true, 50], [true, 100], [true, 127], [false, 130], [true, 63]]);
});

Deno.test("the disk guard turns itself off when statfs is not permitted", async () => {
  const denied = Object.assign(new Error("Requires sys access to statfs"), { name: "NotCapable" });
  const guard = new DiskGuard({
    path: "/q",
    min: 1,
    ok: 2,
    probe: () => Promise.reject(denied),
    report: () => {},
  });
  await guard.start();
  assert.equal(guard.enabled, false);
  assert.equal(guard.low, false);
  guard.stop();
});

/** smtps as a real worker, its qmgr peer played by qmgr itself running in this process. */
async function withSmtpsAndQmgr(
  free: { bytes: number; probes?: number },
  fn: (s: Smtps, socket: string) => Promise<void>,
): Promise<void> {
  const s = await startSmtps();
  const root = await Deno.makeTempDir({ prefix: "qmgr_disk_" });
  let qmgr: Component | undefined;
  try {
    const config = structuredClone(defaultConfig());
    config.CDB_base_directory = s.cdbDir;
    config.qmgr.IBDB.base_directory = join(root, "ibdb");
    config.qmgr.DEFEDB.base_directory = join(root, "defedb");
    config.qmgr.min_disk_space = 64 * MB;
    config.qmgr.ok_disk_space = 128 * MB;
    const endpoint = s.harness.peers.get("qmgr")!;
    qmgr = await startQmgr(
      { name: "qmgr", generation: 1, config, endpoint, fatal: () => {} },
      {
        diskProbe: () => {
          free.probes = (free.probes ?? 0) + 1;
          return Promise.resolve(free.bytes);
        },
        diskInterval: 20,
      },
    );
    await fn(s, controlSocketPath(config));
  } finally {
    await qmgr?.stop();
    await s.stop();
    await Deno.remove(root, { recursive: true });
  }
}

async function mailReply(port: number): Promise<string> {
  const c = await SmtpConnection.open(port);
  try {
    await c.reply();
    await c.command("EHLO client.test");
    return await c.command("MAIL FROM:<a@sender.test>");
  } finally {
    await c.close();
  }
}

Deno.test("smtps refuses MAIL with 452 4.3.1 while qmgr's probe finds the disk low", async () => {
  const free = { bytes: 500 * MB, probes: 0 };
  await withSmtpsAndQmgr(free, async (s) => {
    assert.match(await mailReply(s.port), /^250 /);
    free.bytes = 10 * MB;
    await until(async () => (await mailReply(s.port)).startsWith("452"), "MAIL to be refused");
    assert.equal(await mailReply(s.port), "452 4.3.1 Insufficient system storage");
    free.bytes = 100 * MB; // above min, below ok: still low
    const probes = free.probes;
    await until(() => free.probes >= probes + 2, "qmgr to probe the new free space");
    assert.match(await mailReply(s.port), /^452 4\.3\.1/);
    free.bytes = 200 * MB;
    await until(async () => (await mailReply(s.port)).startsWith("250"), "MAIL to be taken again");
  });
});

Deno.test("a content file that cannot be written answers 451 4.3.0 and leaves no trace", async () => {
  await withSmtpsAndQmgr({ bytes: 500 * MB }, async (s, socket) => {
    // Every CDB subdirectory becomes a plain file: creating the message's file fails in DATA.
    for (const d of CDB_SUBDIRS) {
      await Deno.remove(join(s.cdbDir, d), { recursive: true });
      await Deno.writeTextFile(join(s.cdbDir, d), "not a directory\n");
    }
    const c = await SmtpConnection.open(s.port);
    try {
      await c.reply();
      await c.command("EHLO client.test");
      assert.match(await c.command("MAIL FROM:<a@sender.test>"), /^250/);
      assert.match(await c.command("RCPT TO:<b@dest.test>"), /^250/);
      const data = await c.command("DATA");
      const final = data.startsWith("354") ? await c.command("Subject: x\r\n\r\nbody\r\n.") : data;
      assert.equal(final, "451 4.3.0 Error: queue file write error");
    } finally {
      await c.close();
    }
    const entries = [];
    for await (const e of Deno.readDir(s.cdbDir)) entries.push(e.isFile ? e.name : `${e.name}/`);
    assert.deepEqual(entries.sort(), [...CDB_SUBDIRS].sort(), "nothing but the 16 placeholders");
    let out = "";
    assert.equal(
      await qmgrctl(["--socket", socket, "--json", "list"], { out: (t) => out = t, err: () => {} }),
      0,
    );
    assert.deepEqual(JSON.parse(out).rows, [], "no envelope in the queue");
  });
});
