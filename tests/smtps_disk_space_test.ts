// The disk guard inside smtps: MAIL probes the free space of the CDB's file system itself (real statfs
// in the real smtps worker) and answers 452 4.3.1 below min_disk_space, without waiting for qmgr's
// notice; the state holds until ok_disk_space (an injected probe); and a message being written stops
// before it would leave less than half of min_disk_space free: its file stops growing on disk, the
// client gets 452 4.3.1 after the final dot, and nothing is kept.

import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { MessageFile } from "../components/smtp_io/message_file.ts";
import { DiskSpace } from "../components/smtps/disk_space.ts";
import { cdbFiles, runDialogue, SmtpClient, startSmtps } from "./helpers/smtps_dialogue.ts";

const MB = 1024 * 1024;

Deno.test("DiskSpace refuses new mail below min_disk_space until the free space is above ok_disk_space", async () => {
  const readings = [200, 50, 100, 127, 130, 63].map((n) => n * MB);
  const space = new DiskSpace({
    path: "/q",
    min: 64 * MB,
    ok: 128 * MB,
    probe: () => Promise.resolve(readings.shift()!),
  });
  const states: boolean[] = [];
  while (readings.length > 0) states.push(await space.low());
  assert.deepEqual(states, [false, true, true, true, false, true]);
  const room = new DiskSpace({
    path: "/q",
    min: 64 * MB,
    ok: 128 * MB,
    probe: () => Promise.resolve(40 * MB),
  });
  assert.equal(await room.room(8 * MB), true, "40 MB free: 8 MB more leaves 32 MB, half of min_disk_space");
  assert.equal(await room.room(8 * MB + 1), false);
  const off = new DiskSpace({
    path: "/q",
    min: 0,
    ok: 0,
    probe: () => Promise.reject(new Error("never asked")),
  });
  assert.equal(await off.low(), false, "min_disk_space 0: no checks");
});

Deno.test("DiskSpace reuses a reading for maxAge, less what room() granted since, and shares a probe under way", async () => {
  let probes = 0;
  const space = new DiskSpace({
    path: "/q",
    min: 64 * MB,
    ok: 128 * MB,
    maxAge: 60_000,
    probe: () => (probes++, Promise.resolve(100 * MB)),
  });
  assert.deepEqual(await Promise.all([space.low(), space.low()]), [false, false], "100 MB free: not low");
  assert.equal(await space.low(), false);
  assert.equal(probes, 1, "one statfs for three checks");
  assert.equal(await space.room(30 * MB), true, "100 - 30 leaves 70 MB");
  assert.equal(await space.room(30 * MB), true, "70 - 30 leaves 40 MB, above half of min_disk_space");
  assert.equal(await space.room(10 * MB), false, "40 - 10 would leave 30 MB: below 32 MB");
  assert.equal(probes, 1);
});

Deno.test("a message file stops growing on disk once writing on would leave too little free space", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-space-" });
  try {
    let free = 10 * MB; // a pretend file system that loses what is written
    const space = new DiskSpace({ path: dir, min: 16 * MB, ok: 32 * MB, probe: () => Promise.resolve(free) });
    const path = join(dir, "msg");
    const file = await MessageFile.create(path, 0, 100, {
      room: async (bytes) => {
        const ok = await space.room(bytes);
        if (ok) free -= bytes;
        return ok;
      },
    });
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    for (let i = 0; i < 100; i++) await file.write(chunk); // 6.4 MB offered; room for 2 MB
    assert.equal(file.refusal, "no_space");
    const size = (await Deno.stat(path)).size;
    assert.ok(size <= 2 * MB, `the file stopped at ${size} bytes`);
    assert.ok(free >= 8 * MB, "half of min_disk_space is still free");
    await file.discard();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtps itself probes the disk at MAIL: below min_disk_space 452 4.3.1, above it 250", async (t) => {
  const probe = await Deno.makeTempDir({ prefix: "smx-space-" });
  const s0 = await statfs(probe);
  await Deno.remove(probe);
  const free = Number(s0.bavail) * Number(s0.bsize);
  const cases: [label: string, min: number, reply: string][] = [
    ["more free space than min_disk_space: 250", MB, "250 2.1.0"],
    [
      "less free space than min_disk_space: 452 4.3.1",
      free + 1024 * MB,
      "452 4.3.1 Insufficient system storage",
    ],
  ];
  for (const [label, min, reply] of cases) {
    await t.step(label, async () => {
      // The test's qmgr sends no disk notices: only smtps's own statfs can refuse.
      const s = await startSmtps({}, {}, {
        statfs: true,
        adjust: (c) => Object.assign(c.qmgr, { min_disk_space: min, ok_disk_space: min + MB }),
      });
      try {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, 220], ["EHLO client.example", 250], [
            "MAIL FROM:<a@example.org>",
            reply,
          ]]);
          await runDialogue(c, [["QUIT", 221]]);
        } finally {
          c.close();
        }
        assert.deepEqual(await cdbFiles(s.cdbDir), []);
      } finally {
        await s.stop();
      }
    });
  }
});
