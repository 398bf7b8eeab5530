// End to end robustness, the other way round: the whole MTA relays one message to twelve hostile servers
// (one per recipient domain), each misbehaving its own way: binary garbage, a greeting line that never
// ends, a multi-line reply that never ends, a code that changes inside a reply, bare LF, NULs, codes out
// of range, garbage to DATA and after the final dot, a hang-up, silence. smtpc must survive them all (no
// restart, no error event) and defer every recipient (no bounce: the message stays in the queue, its CDB
// file too); once good servers take the same ports, a flush delivers the message to each, byte for byte.
// A refusal whose text is binary bounces with a DSN that stays 7-bit ASCII. The random bytes come from a
// seeded generator (ROBUSTNESS_SEED repeats a run).

import assert from "node:assert/strict";
import { join } from "node:path";
import type { SupervisorEvent } from "../components/mcp/supervisor.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { request } from "../scripts/qmgrctl.ts";
import { Junk, seededRandom } from "./helpers/hostile_client.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";

const SEED = Number(Deno.env.get("ROBUSTNESS_SEED") ?? 0x5eed_2d);
const FLOOD_LIMIT = 4 * 1024 * 1024;
const encoder = new TextEncoder();
const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/** One accepted connection of a hostile server: reads lines and content, writes anything. */
class HostileIo {
  #buf = "";
  #eof = false;

  constructor(readonly conn: Deno.Conn) {}

  /** Writes all of `data`; false once the client is gone. */
  async write(data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    try {
      for (let off = 0; off < bytes.length;) off += await this.conn.write(bytes.subarray(off));
      return true;
    } catch {
      return false;
    }
  }

  /** Writes `unit` again and again until the client hangs up (or FLOOD_LIMIT bytes went out). */
  async flood(unit: string): Promise<void> {
    const bytes = encoder.encode(unit.repeat(Math.max(1, Math.floor(8192 / unit.length))));
    for (let sent = 0; sent < FLOOD_LIMIT; sent += bytes.length) if (!await this.write(bytes)) return;
  }

  async #more(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(16 * 1024);
    const n = await this.conn.read(chunk).catch(() => null);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#buf += Array.from(chunk.subarray(0, n), (c) => String.fromCharCode(c)).join("");
    return true;
  }

  /** The next line the client sent (without CRLF); null once it hung up. */
  async line(): Promise<string | null> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl).replace(/\r$/, "");
        this.#buf = this.#buf.slice(nl + 1);
        return line;
      }
      if (!await this.#more()) return null;
    }
  }

  /** Reads the lines of one command each (after a pipelined group, several). */
  async lines(n: number): Promise<boolean> {
    for (let i = 0; i < n; i++) if (await this.line() === null) return false;
    return true;
  }

  /** Reads content up to and including CRLF.CRLF; false when the client hung up first. */
  async content(): Promise<boolean> {
    for (;;) {
      const end = this.#buf.indexOf("\r\n.\r\n");
      if (end >= 0) {
        this.#buf = this.#buf.slice(end + 5);
        return true;
      }
      if (!await this.#more()) return false;
    }
  }

  /** Waits until the client hangs up. */
  async drain(): Promise<void> {
    while (await this.#more()) this.#buf = "";
  }
}

interface Hostile {
  hostname: string;
  port: number;
  connections: number;
  close(): Promise<void>;
}

/** A server on `hostname` (a loopback address) that treats every connection with `behave`. */
function startHostile(hostname: string, behave: (io: HostileIo) => Promise<void>): Hostile {
  const listener = Deno.listen({ hostname, port: 0 });
  const open = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();
  let closed = false;
  const server: Hostile = {
    hostname,
    port: (listener.addr as Deno.NetAddr).port,
    connections: 0,
    async close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const c of open) c.close();
      await accepting;
      await Promise.allSettled([...handlers]);
    },
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        server.connections++;
        open.add(conn);
        const h = behave(new HostileIo(conn)).catch(() => {}).finally(() => {
          open.delete(conn);
          handlers.delete(h);
          try {
            conn.close();
          } catch {
            // closed by close()
          }
        });
        handlers.add(h);
      }
    } catch {
      // listener closed
    }
  })();
  return server;
}

/** A proper greeting and EHLO (without PIPELINING unless asked), then whatever `rest` does. */
function polite(rest: (io: HostileIo) => Promise<void>, pipelining = false) {
  return async (io: HostileIo) => {
    await io.write("220 hostile.test ESMTP\r\n");
    if (await io.line() === null) return;
    await io.write(pipelining ? "250-hostile.test\r\n250 PIPELINING\r\n" : "250 hostile.test\r\n");
    await rest(io);
  };
}

/** Answers MAIL, RCPT and DATA properly, one at a time, and reads the content. */
async function untilContent(io: HostileIo): Promise<boolean> {
  for (const reply of ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 Go ahead"]) {
    if (await io.line() === null) return false;
    await io.write(reply + "\r\n");
  }
  return await io.content();
}

Deno.test("smtpc defers a message to servers that answer garbage, without a restart, and delivers it once good servers take their ports", async () => {
  const junk = new Junk(seededRandom(SEED));
  const behaviours: [label: string, behave: (io: HostileIo) => Promise<void>][] = [
    ["binary garbage for a greeting", async (io) => {
      await io.write(junk.bytes(512));
      await io.write("\r\n");
      await io.drain();
    }],
    ["a greeting line that never ends", async (io) => {
      await io.write("220 ");
      await io.flood("x");
    }],
    ["a multi-line greeting that never ends", (io) => io.flood(`220-${"y".repeat(70)}\r\n`)],
    ["a code that changes inside the greeting", async (io) => {
      await io.write("220-hostile.test\r\n250 surprise\r\n");
      await io.drain();
    }],
    ["a greeting ended by a bare LF", async (io) => {
      await io.write("220 hostile.test\n");
      await io.drain();
    }],
    ["NULs for an EHLO reply", async (io) => {
      await io.write("220 hostile.test\r\n");
      await io.line();
      await io.write("\0\0\0\0\r\n");
      await io.drain();
    }],
    [
      "a code out of range to MAIL",
      polite(async (io) => {
        await io.line();
        await io.write("600 what is this\r\n");
        await io.drain();
      }),
    ],
    [
      "binary garbage to a pipelined DATA",
      polite(async (io) => {
        await io.lines(3);
        await io.write("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
        await io.write(junk.bytes(300));
        await io.drain();
      }, true),
    ],
    [
      "binary garbage after the final dot",
      polite(async (io) => {
        if (await untilContent(io)) await io.write(junk.bytes(200));
        await io.drain();
      }),
    ],
    [
      "a reply to the final dot that never ends",
      polite(async (io) => {
        if (await untilContent(io)) await io.flood("250-still going\r\n");
      }),
    ],
    [
      "a hang-up after RCPT",
      polite(async (io) => {
        await io.line();
        await io.write("250 2.1.0 Ok\r\n");
        await io.line();
      }),
    ],
    ["silence (no greeting at all)", (io) => io.drain()],
  ];
  // Each server on its own loopback address: qmgr marks a host that failed as down, by address.
  const hostiles = behaviours.map(([, behave], i) => startHostile(`127.0.0.${i + 2}`, behave));
  const domain = (i: number) => `h${i}.test`;
  let logDir = "";
  const mta = await startTestMta({
    mailertable: hostiles.map((h, i) => `${domain(i)}\t${h.port}^esmtp:[${h.hostname}]\n`).join(""),
    adjust: (c) => {
      logDir = join(c.CDB_base_directory, "..", "log");
      c.log = { directory: logDir };
      c.smtpc.io_timeout = 2_000; // the silent server is given up on after 2 s
    },
  });
  const events: SupervisorEvent[] = [];
  const sup = mta.mta.supervisor;
  sup.onEvent((e) => events.push(e));
  const socket = controlSocketPath(mta.config);
  const control = async (command: "list" | "show" | "flush", args?: Record<string, unknown>) => {
    const answer = await request(socket, { command, args });
    assert.ok(answer.ok, `qmgrctl ${command}: ${JSON.stringify(answer)}`);
    return answer.result as Record<string, unknown>;
  };
  const sinks: Sink[] = [];
  try {
    // No NUL: smtps refuses content holding one (tests/smtps_nul_test.ts).
    const body =
      "Subject: robust-relay\r\n\r\nfor every hostile server\r\n.leading dot\r\n\x7f and a DEL\r\n";
    const recipients = hostiles.map((_, i) => `r${i}@${domain(i)}`);
    const reply = await smtpSend(mta.port, { from: "s@sender.test", to: recipients, body });
    const id = /queued as ([0-9A-F]+)$/.exec(reply)?.[1];
    assert.ok(id, reply);

    // Every hostile server is tried (a flush makes deferred recipients due again at once).
    type Rcpt = { address: string; state: string; tries: number; lastReply?: string };
    let rcpts: Rcpt[] = [];
    for (const until = Date.now() + 40_000;;) {
      rcpts = (await control("show", { id })).recipients as Rcpt[];
      const tried = hostiles.every((h) => h.connections > 0) && rcpts.every((r) => r.tries > 0);
      if (tried && rcpts.every((r) => r.state === "waiting")) break;
      const untried = behaviours.filter((_, i) => hostiles[i].connections === 0).map(([label]) => label);
      assert.ok(Date.now() < until, `not tried in 40 s: ${untried.join("; ")}; ${JSON.stringify(rcpts)}`);
      await new Promise((r) => setTimeout(r, 300));
      if (rcpts.every((r) => r.state === "waiting")) await control("flush");
    }
    for (const [i, [label]] of behaviours.entries()) {
      const r = rcpts.find((x) => x.address === recipients[i]);
      assert.equal(r?.state, "waiting", `${label}: deferred`);
      assert.ok(r?.lastReply, `${label}: the reason is recorded`);
    }
    for (const name of sup.names) assert.equal(sup.restarts(name), 0, `${name} was restarted`);
    assert.deepEqual(events.filter((e) => e.type !== "ready"), [], "supervision events");
    const listed = (await control("list")).rows as { id: string }[];
    assert.deepEqual(listed.map((m) => m.id), [id], "the message waits in the queue, and no bounce was made");
    const cdb = (await control("show", { id })).cdbPath as string;
    assert.ok((await Deno.stat(cdb)).isFile, "its CDB file is kept");

    // Good servers take the hostile ports: the message reaches each of them, byte for byte.
    for (const h of hostiles) {
      await h.close();
      sinks.push(await startSink({ hostname: h.hostname, port: h.port }));
    }
    await control("flush");
    await Promise.all(sinks.map((s) => s.waitFor(1, 30_000)));
    for (const [i, s] of sinks.entries()) {
      const text = Array.from(s.messages[0].data, (c) => String.fromCharCode(c)).join("");
      assert.ok(text.startsWith("Received: "), behaviours[i][0]);
      assert.equal(text.slice(text.indexOf("\r\nSubject: ") + 2), body, `${behaviours[i][0]}: content`);
      assert.deepEqual(s.messages[0].recipients, [recipients[i]]);
    }
    for (const until = Date.now() + 10_000;;) {
      const rows = (await control("list")).rows as unknown[];
      if (rows.length === 0) break;
      assert.ok(Date.now() < until, `the queue still holds ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const until = Date.now() + 10_000; await exists(cdb);) {
      assert.ok(Date.now() < until, "the CDB file is removed once delivered");
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const name of sup.names) assert.equal(sup.restarts(name), 0, `${name} was restarted`);
    for (const name of ["smtpc", "qmgr", "smar", "smtps"]) {
      const text = await Deno.readTextFile(join(logDir, `${name}.log`));
      assert.deepEqual(
        text.split("\n").filter((l) => /\]: (error|fatal|panic): /.test(l)),
        [],
        `${name} logged errors`,
      );
    }
  } finally {
    await mta.stop();
    for (const h of hostiles) await h.close();
    for (const s of sinks) await s.close();
  }
});

Deno.test("a refusal in binary text bounces with a DSN that is still 7-bit ASCII", async () => {
  const back = await startSink();
  const refuser = startHostile(
    "127.0.0.1",
    polite(async (io) => {
      await io.line();
      await io.write("250 2.1.0 Ok\r\n");
      await io.line();
      await io.write(new Uint8Array([...encoder.encode("550 5.1.1 "), 0xff, 0xfe, 0xc3, 0xa9, 0x1b, 0x80]));
      await io.write(" no such user\r\n");
      await io.drain();
    }),
  );
  const mta = await startTestMta({
    mailertable: `bad.test\t${refuser.port}^esmtp:[127.0.0.1]\nsender.test\t${back.port}^esmtp:[127.0.0.1]\n`,
    adjust: (c) => c.log = { directory: join(c.CDB_base_directory, "..", "log") },
  });
  try {
    const reply = await smtpSend(mta.port, {
      from: "s@sender.test",
      to: ["u@bad.test"],
      body: "Subject: refused\r\n\r\nhi\r\n",
    });
    assert.match(reply, /^250 /);
    await back.waitFor(1, 15_000);
    const dsn = back.messages[0];
    assert.deepEqual(dsn.recipients, ["s@sender.test"]);
    const high = [...dsn.data].filter((b) => b > 0x7e || (b < 0x20 && b !== 9 && b !== 10 && b !== 13));
    assert.deepEqual(high, [], "no 8-bit or control bytes in the DSN");
    const text = new TextDecoder().decode(dsn.data);
    assert.match(text, /Diagnostic-Code: smtp; 550 5\.1\.1 (\\x[0-9a-f]{2})+ no such user\r\n/);
    // From smtpc's structured result (protocol v2): the relay and the enhanced status, not parsed text.
    assert.match(text, /Remote-MTA: dns; 127\.0\.0\.1\r\n/);
    assert.match(text, /Status: 5\.1\.1\r\n/);
  } finally {
    await mta.stop();
    await refuser.close();
    await back.close();
  }
});
