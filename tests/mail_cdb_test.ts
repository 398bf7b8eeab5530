// The self-describing queue file (components/mail/cdb.ts) on real files: what a writer frames, a reader
// finds (content byte for byte, the envelope); a file cut anywhere is incomplete; a trailer forged inside
// the content (a client's bytes) never makes a cut file pass for complete; a file of an older smx is all
// content.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CdbContent,
  CdbFrame,
  contentOf,
  HEAD_LENGTH,
  readCdbContent,
  readCdbFile,
  TRAILER_LENGTH,
} from "../components/mail/cdb.ts";
import { newQueueId } from "../components/mail/queue_id.ts";
import type { Envelope } from "../components/protocol/messages.ts";

const encoder = new TextEncoder();

function envelope(dir: string): Envelope {
  const id = newQueueId();
  return {
    id,
    cdbPath: join(dir, id),
    size: 0,
    arrival: 1_700_000_000_000,
    sender: "alice@sender.test",
    recipients: [
      { address: "bob@dest.test", notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;list@dest.test" },
      { address: "carol@dest.test", errorsTo: "owner-list@dest.test" },
    ],
    client: { ip: "192.0.2.1", helo: "client.test" },
    bodyType: "8BITMIME",
    smtputf8: true,
    envid: "E1",
    ret: "HDRS",
  };
}

function framed(frame: CdbFrame, env: Envelope, content: Uint8Array): Uint8Array {
  const parts = [frame.head(), content, frame.tail(env, content.length)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cdb_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a complete queue file gives back its content byte for byte and its envelope", async () => {
  await inTemp(async (dir) => {
    const env = envelope(dir);
    const content = new Uint8Array(200_000).map((_, i) => (i * 7) % 256); // binary, larger than a chunk
    const bytes = framed(new CdbFrame(), env, content);
    await Deno.writeFile(env.cdbPath, bytes);
    const f = await readCdbFile(env.cdbPath);
    assert.equal(f.state, "complete");
    if (f.state !== "complete") return;
    assert.deepEqual(f.envelope, { ...env, size: content.length });
    assert.deepEqual([f.contentStart, f.contentLength], [HEAD_LENGTH, content.length]);
    assert.deepEqual(await readCdbContent(env.cdbPath), content);
    assert.deepEqual(await contentOf(bytes, env.cdbPath), content);
    const c = await CdbContent.open(env.cdbPath);
    try {
      const small = new Uint8Array(1000);
      assert.equal(await c.read(small), 1000);
      await c.rewind();
      const all = new Uint8Array(content.length + 100);
      let got = 0;
      for (let n; (n = await c.read(all.subarray(got))) !== null;) got += n;
      assert.equal(got, content.length, "the reader stops where the content ends");
      assert.deepEqual(all.subarray(0, got), content);
    } finally {
      c.close();
    }
  });
});

Deno.test("a queue file cut anywhere is incomplete, and cannot be read as content", async () => {
  await inTemp(async (dir) => {
    const env = envelope(dir);
    const bytes = framed(new CdbFrame(), env, encoder.encode("Subject: x\r\n\r\nbody\r\n"));
    for (
      const cut of [0, 10, HEAD_LENGTH, HEAD_LENGTH + 5, bytes.length - TRAILER_LENGTH, bytes.length - 1]
    ) {
      const path = join(dir, `cut-${cut}`);
      await Deno.writeFile(path, bytes.subarray(0, cut));
      assert.equal((await readCdbFile(path)).state, "incomplete", `cut at ${cut}`);
      if (cut > 0) {
        await assert.rejects(CdbContent.open(path), /incomplete/);
        await assert.rejects(contentOf(bytes.subarray(0, cut), path), /incomplete/);
      }
    }
  });
});

Deno.test("a trailer forged inside the content does not make a cut file complete", async () => {
  await inTemp(async (dir) => {
    // The client sends content that ends in an envelope and trailer of its own, then drops the session:
    // without the file's nonce, which never leaves the MTA, its trailer does not match the head.
    const env = envelope(dir);
    const forged = { ...env, recipients: [{ address: "victim@elsewhere.test" }] };
    const theirs = new CdbFrame();
    const fake = theirs.tail(forged, 10);
    const ours = new CdbFrame();
    const content = new Uint8Array([...encoder.encode("0123456789"), ...fake]);
    const cut = [...ours.head(), ...content]; // no trailer of ours: the session was cut
    await Deno.writeFile(env.cdbPath, new Uint8Array(cut));
    assert.equal((await readCdbFile(env.cdbPath)).state, "incomplete");
  });
});

Deno.test("a file of an older smx (no frame) is all content; an empty one is an empty message", async () => {
  await inTemp(async (dir) => {
    const path = join(dir, newQueueId());
    await Deno.writeTextFile(path, "Received: from x\r\n\r\nold\r\n");
    assert.deepEqual(await readCdbFile(path), { state: "legacy", contentStart: 0, contentLength: 25 });
    assert.equal(new TextDecoder().decode(await readCdbContent(path)), "Received: from x\r\n\r\nold\r\n");
    const empty = join(dir, newQueueId());
    await Deno.writeFile(empty, new Uint8Array(0));
    assert.equal((await readCdbFile(empty)).state, "incomplete");
    assert.equal((await readCdbContent(empty)).length, 0);
  });
});
