// The fault harness: the real MTA (every worker, real SQLite, real spool, SMTP over loopback to a real
// sink) meets the faults an operator meets, and heals without a hand on it. Each disk fault hits a queue
// of acknowledged messages that could not be delivered yet (the sink said 451), with the MTA stopped:
// a page of the database overwritten, the database truncated, the database deleted (with its WAL), a
// content file deleted. Then the MTA starts again on the same directories and the sink accepts: every
// acknowledged message is delivered at least once (the lost one: its sender gets a DSN instead), and a
// damaged database is kept aside, not deleted. Last, kill -9 under load: every worker is terminated at
// once (what a kill -9 of the process does to them: no shutdown, no goodbye, writes cut wherever they
// are) at random moments while sessions send; afterwards every acknowledged message is delivered at
// least once, and nothing is delivered from a partial file (each message ends with its own end line).

import assert from "node:assert/strict";
import { join } from "node:path";
import { DB_FILE } from "../components/qmgr/store.ts";
import type { WorkerName } from "../components/protocol/messages.ts";
import { startTestMta, type TestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";

const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WORKERS: WorkerName[] = ["qmgr", "smar", "smtpc", "smtps"];

/** The queue id in the first Received: header of delivered content. */
function receivedId(data: Uint8Array): string | undefined {
  const header = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*/.exec(decoder.decode(data.subarray(0, 2048)))?.[0];
  return header && /\bid ([0-9A-F]+)\b/.exec(header)?.[1];
}

const body = (tag: string) =>
  `Subject: ${tag}\r\n\r\n${"line of text\r\n".repeat(20)}-- end of ${tag} --\r\n`;

/** Waits until the sink got every id of `ids` (by Received: id); returns those that never came. */
async function delivered(sink: Sink, ids: Iterable<string>, ms = 20_000): Promise<string[]> {
  const want = new Set(ids);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    for (const m of sink.messages) {
      const id = receivedId(m.data);
      if (id) want.delete(id);
    }
    if (want.size === 0) return [];
    await sleep(50);
  }
  return [...want];
}

Deno.test("the queue heals: no disk fault costs an acknowledged message or a restart by hand", async (t) => {
  let accepting = false;
  const sink = await startSink({ dataReply: () => accepting ? "250 2.0.0 Ok: queued" : "451 4.3.0 not now" });
  const quiet = (c: TestMta["config"]) => {
    for (const section of [c.qmgr, c.smtpc, c.smar, ...c.smtps]) section.log_level = 4;
  };
  const mailertable =
    `example.com\t${sink.port}^esmtp:[127.0.0.1]\nsender.test\t${sink.port}^esmtp:[127.0.0.1]\n`;

  /** A stopped MTA's directory holding `n` acknowledged messages that wait in the queue. */
  const queueOf = async (n: number): Promise<{ dir: string; ids: string[] }> => {
    accepting = false;
    const dir = await Deno.makeTempDir({ prefix: "smx-faults-" });
    const mta = await startTestMta({ dir, mailertable, adjust: quiet });
    const ids: string[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const reply = await smtpSend(mta.port, {
          from: `s${i}@sender.test`,
          to: [`r${i}@example.com`, `x${i}@example.com`],
          body: body(`queued ${i}`),
        });
        const id = /^250 .*queued as ([0-9A-F]+)$/.exec(reply)?.[1];
        assert.ok(id, reply);
        ids.push(id);
      }
    } finally {
      await mta.stop();
    }
    return { dir, ids };
  };

  /** Starts the MTA again on `dir` with the sink accepting; resolves once `ids` are all delivered. */
  const heal = async (dir: string, ids: string[]): Promise<void> => {
    accepting = true;
    const mta = await startTestMta({ dir, mailertable, adjust: quiet });
    try {
      const missing = await delivered(sink, ids);
      assert.deepEqual(
        missing,
        [],
        `${missing.length} of ${ids.length} acknowledged messages were not delivered`,
      );
      // Mail keeps flowing after the repair.
      const reply = await smtpSend(mta.port, {
        from: "after@sender.test",
        to: ["r@example.com"],
        body: body("after"),
      });
      const id = /^250 .*queued as ([0-9A-F]+)$/.exec(reply)?.[1];
      assert.ok(id, reply);
      assert.deepEqual(await delivered(sink, [id]), []);
    } finally {
      await mta.stop();
    }
  };

  const damagedCopies = async (dir: string) => {
    const names: string[] = [];
    for await (const e of Deno.readDir(join(dir, "var/ibdb"))) {
      if (e.name.includes(".damaged-")) names.push(e.name);
    }
    return names;
  };

  try {
    await t.step("a page of the database overwritten", async () => {
      const { dir, ids } = await queueOf(4);
      const db = join(dir, "var/ibdb", DB_FILE);
      const size = (await Deno.stat(db)).size;
      assert.ok(size >= 4 * 4096, `the database has pages to spoil (${size} bytes)`);
      const f = await Deno.open(db, { write: true });
      await f.seek(2 * 4096, Deno.SeekMode.Start);
      await f.write(new Uint8Array(4096).fill(0x5a));
      f.close();
      await heal(dir, ids);
      assert.ok((await damagedCopies(dir)).length > 0, "the damaged database is kept aside");
      await Deno.remove(dir, { recursive: true });
    });

    await t.step("the database truncated", async () => {
      const { dir, ids } = await queueOf(3);
      const db = join(dir, "var/ibdb", DB_FILE);
      await Deno.truncate(db, Math.floor((await Deno.stat(db)).size / 2));
      await heal(dir, ids);
      assert.ok((await damagedCopies(dir)).length > 0, "the damaged database is kept aside");
      await Deno.remove(dir, { recursive: true });
    });

    await t.step("the database deleted, with its WAL", async () => {
      const { dir, ids } = await queueOf(3);
      for (const suffix of ["", "-wal", "-shm"]) {
        await Deno.remove(join(dir, "var/ibdb", DB_FILE + suffix)).catch(() => {});
      }
      await heal(dir, ids);
      await Deno.remove(dir, { recursive: true });
    });

    await t.step("a content file deleted: its sender gets a DSN", async () => {
      const { dir, ids } = await queueOf(3);
      const [lost, ...rest] = ids;
      await Deno.remove(join(dir, "var/cdb", lost.slice(-1), lost));
      await heal(dir, rest);
      const deadline = Date.now() + 20_000;
      const isDsn = (m: Sink["messages"][number]) =>
        m.sender === "" && m.recipients.includes("s0@sender.test") && decoder.decode(m.data).includes(lost);
      while (!sink.messages.some(isDsn) && Date.now() < deadline) await sleep(50);
      const dsn = sink.messages.find(isDsn);
      assert.ok(dsn, "a DSN about the lost message reached its sender");
      const text = decoder.decode(dsn.data);
      assert.match(text, /Status: 5\.3\.0/);
      assert.match(text, /content lost in the queue/);
      assert.match(text, /Final-Recipient: rfc822; ?r0@example\.com/);
      await Deno.remove(dir, { recursive: true });
    });
  } finally {
    await sink.close();
  }
});

Deno.test("kill -9 of every worker at random moments under load: acknowledged mail arrives, partial never", async () => {
  const sink = await startSink();
  const mta = await startTestMta({
    mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n`,
    adjust: (c) => {
      for (const section of [c.qmgr, c.smtpc, c.smar, ...c.smtps]) section.log_level = 4;
    },
  });
  const accepted = new Set<string>();
  let running = true;
  try {
    const sender = async (n: number) => {
      for (let i = 0; running; i++) {
        try {
          const reply = await smtpSend(mta.port, {
            from: `load${n}@sender.test`,
            to: [`r${n}@example.com`],
            body: body(`kill ${n}.${i}`),
          }, { timeoutMs: 15_000 });
          const id = /^250 .*queued as ([0-9A-F]+)$/.exec(reply)?.[1];
          if (id) accepted.add(id);
          await sleep(5);
        } catch {
          await sleep(50); // the MTA was down: a refused or dropped connection
        }
      }
    };
    const senders = Array.from({ length: 3 }, (_, n) => sender(n));
    const sup = mta.mta.supervisor;
    for (let round = 0; round < 3; round++) {
      await sleep(300 + Math.floor(Math.random() * 700));
      const generations = WORKERS.map((w) => sup.generation(w));
      for (const w of WORKERS) sup.kill(w); // all at once: the process died
      const deadline = Date.now() + 20_000;
      while (!WORKERS.every((w, i) => sup.generation(w) > generations[i] && sup.isReady(w))) {
        assert.ok(Date.now() < deadline, "the MTA did not come back within 20 s");
        await sleep(20);
      }
    }
    await sleep(500);
    running = false;
    await Promise.all(senders);
    assert.ok(accepted.size > 0, "some messages were acknowledged");
    const missing = await delivered(sink, accepted);
    assert.deepEqual(
      missing,
      [],
      `${missing.length} of ${accepted.size} acknowledged messages were not delivered`,
    );
    for (const m of sink.messages) {
      const text = decoder.decode(m.data);
      const tag = /^Subject: (kill \d+\.\d+)\r\n/m.exec(text)?.[1];
      assert.ok(tag, "each delivery is one of ours");
      assert.ok(text.endsWith(`-- end of ${tag} --\r\n`), `${tag} was delivered whole`);
    }
  } finally {
    running = false;
    await mta.stop();
    await sink.close();
  }
});
