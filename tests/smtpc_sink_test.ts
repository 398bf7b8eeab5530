// The test SMTP sink (tests/helpers/smtp_sink.ts) that smtpc tests, end-to-end tests and the benchmark rely
// on: raw dialogues over 127.0.0.1 check pipelining, the end-of-data rule, dot-unstuffing, LMTP replies
// and its counters.

import assert from "node:assert/strict";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";
import { DataReader } from "./helpers/smtp_sink_data.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw client: writes text, reads until the received text matches. */
class Raw {
  received = "";
  #buf = new Uint8Array(65536);
  private constructor(readonly conn: Deno.TcpConn) {}

  static async open(port: number): Promise<Raw> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new Raw(conn);
  }

  async send(text: string): Promise<void> {
    await this.conn.write(enc.encode(text));
  }

  /** Reads until `pattern` matches what arrived since `from`; null when the server closed first. */
  async until(pattern: RegExp, from = 0): Promise<string | null> {
    while (!pattern.test(this.received.slice(from))) {
      const n = await this.conn.read(this.#buf);
      if (n === null) return null;
      this.received += dec.decode(this.#buf.subarray(0, n));
    }
    return this.received.slice(from);
  }

  close(): void {
    this.conn.close();
  }
}

async function withSink(opts: Parameters<typeof startSink>[0], fn: (sink: Sink, c: Raw) => Promise<void>) {
  const sink = await startSink(opts);
  const c = await Raw.open(sink.port);
  try {
    await c.until(/^220 .*\r\n/);
    await fn(sink, c);
  } finally {
    c.close();
    await sink.close();
  }
}

const codes = (text: string) =>
  text.split("\r\n").filter((l) => / /.test(l.slice(3, 4))).map((l) => l.slice(0, 3));

Deno.test("the SMTP sink receives mail the way smtpc and the benchmark need", async (t) => {
  await t.step("answers a pipelined batch in order", async () => {
    await withSink({}, async (_sink, c) => {
      await c.send(
        "EHLO me.test\r\nMAIL FROM:<a@x.test> SIZE=10\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
      );
      const got = await c.until(/^354 /m, 0);
      assert.deepEqual(codes(got!), ["220", "250", "250", "250", "250", "354"]);
      assert.match(
        got!,
        /250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES\r\n/,
      );
    });
  });

  await t.step("only CRLF.CRLF ends the data, and leading dots are unstuffed", async () => {
    await withSink({}, async (sink, c) => {
      await c.send("HELO me.test\r\nMAIL FROM:<>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
      await c.until(/^354 /m);
      const at = c.received.length;
      for (const piece of ["a\n.\nb\r", "\n..c\r\n.", "x\r\n.\r", "y\r\nd\r\n.", "\r", "\n"]) {
        await c.send(piece);
      }
      await c.until(/^250 /m, at);
      await sink.waitFor(1);
      assert.equal(dec.decode(sink.messages[0].data), "a\n.\nb\r\n.c\r\nx\r\n\ry\r\nd\r\n");
      assert.deepEqual(sink.messages[0], {
        ...sink.messages[0],
        sender: "",
        recipients: ["b@y.test"],
        helo: "me.test",
      });
    });
  });

  await t.step("counts only accepted messages and resets the transaction after each", async () => {
    let n = 0;
    await withSink(
      { dataReply: () => (++n === 1 ? "554 5.7.1 Not this one" : "250 2.0.0 Ok") },
      async (sink, c) => {
        for (let i = 0; i < 2; i++) {
          const at = c.received.length;
          await c.send(`EHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n`);
          await c.until(/^354 /m, at);
          await c.send("hello\r\n.\r\n");
          await c.until(/^(250|554) [^\r]*\r\n$/m, c.received.lastIndexOf("354"));
        }
        await c.send("RCPT TO:<c@y>\r\n");
        assert.match((await c.until(/^503 /m))!, /503 5.5.1 Need MAIL/);
        assert.equal(sink.count, 1);
        assert.equal(sink.messages.length, 1);
      },
    );
  });

  await t.step("speaks LMTP with one reply per accepted recipient after the dot", async () => {
    await withSink({
      lmtp: true,
      rcptReply: (r) => r.startsWith("no") ? "550 5.1.1 No" : "250 2.1.5 Ok",
      dataReply: (m) => m.recipients.map((r) => `250 2.0.0 ${r} done`),
    }, async (sink, c) => {
      await c.send("EHLO me\r\n");
      assert.match((await c.until(/^500 /m))!, /Use LHLO/);
      const at = c.received.length;
      await c.send(
        "LHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<p@y>\r\nRCPT TO:<no@y>\r\nRCPT TO:<q@y>\r\nDATA\r\n",
      );
      await c.until(/^354 /m, at);
      const at2 = c.received.length;
      await c.send("hi\r\n.\r\n");
      const finals = await c.until(/q@y done\r\n/, at2);
      assert.equal(finals, "250 2.0.0 p@y done\r\n250 2.0.0 q@y done\r\n");
      assert.deepEqual(sink.messages[0].recipients, ["p@y", "q@y"]);
    });
  });

  await t.step("keeps only counts when keepMessages is false", async () => {
    await withSink({ keepMessages: false }, async (sink, c) => {
      await c.send("EHLO me\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
      await c.until(/^354 /m);
      await c.send("x\r\n.\r\nQUIT\r\n");
      assert.match((await c.until(/^221 /m))!, /221 2.0.0 Bye/);
      assert.equal(sink.count, 1);
      assert.equal(sink.messages.length, 0);
    });
  });

  await t.step("waitFor() rejects after its timeout, close() ends open connections", async () => {
    const sink = await startSink();
    const a = await Raw.open(sink.port);
    const b = await Raw.open(sink.port);
    try {
      await a.until(/^220 /m);
      await b.until(/^220 /m);
      await assert.rejects(sink.waitFor(1, 20), /only 0 after 20 ms/);
      assert.equal(sink.connections, 2);
      assert.equal(sink.maxConcurrent, 2);
      await sink.close();
      assert.equal(await a.until(/never/), null);
    } finally {
      a.close();
      b.close();
      await sink.close();
    }
  });
});

Deno.test("the sink's DataReader finds the end of data and unstuffs dots however the bytes are split", async (t) => {
  const CASES: { name: string; wire: string; content: string; after: string }[] = [
    { name: "a plain message", wire: "a\r\nb\r\n.\r\nQUIT", content: "a\r\nb\r\n", after: "QUIT" },
    { name: "an empty message", wire: ".\r\n", content: "", after: "" },
    { name: "stuffed dots", wire: "..a\r\n...\r\n.\r\n", content: ".a\r\n..\r\n", after: "" },
    { name: "LF.LF is content", wire: "a\n.\nb\r\n.\r\n", content: "a\n.\nb\r\n", after: "" },
    { name: "CR.CR is content", wire: "a\r.\rb\r\n.\r\n", content: "a\r.\rb\r\n", after: "" },
    {
      name: "a dot line ending in a bare CR",
      wire: "a\r\n.\rb\r\n.\r\n",
      content: "a\r\n\rb\r\n",
      after: "",
    },
    { name: "dot CR CR LF", wire: "a\r\n.\r\r\n.\r\n", content: "a\r\n\r\r\n", after: "" },
  ];
  for (const c of CASES) {
    await t.step(c.name, () => {
      const wire = enc.encode(c.wire);
      for (let cut = 0; cut <= wire.length; cut++) {
        for (const size of [1, 2, wire.length || 1]) {
          const r = new DataReader(true);
          const parts = [wire.subarray(0, cut)];
          for (let i = cut; i < wire.length; i += size) parts.push(wire.subarray(i, i + size));
          let used = 0;
          let done = false;
          for (const p of parts) {
            if (done || p.length === 0) continue;
            const got = r.feed(p);
            used += got.consumed;
            done = got.done;
          }
          assert.ok(done, `cut ${cut} size ${size}: end of data not found`);
          assert.equal(dec.decode(r.content()), c.content, `cut ${cut} size ${size}`);
          assert.equal(dec.decode(wire.subarray(used)), c.after, `cut ${cut} size ${size}`);
        }
      }
    });
  }
});
