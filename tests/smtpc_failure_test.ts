// smtpc against servers that misbehave: a scripted server on 127.0.0.1 answers each command as a case
// says (a reply, garbage, silence, or a closed connection), and the real smtpc worker must answer qmgr
// with the right per-recipient result every time, temp whenever delivery is uncertain.

import { replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import {
  type DeliveryTransaction,
  PROTOCOL_VERSION,
  type SmtpcResult,
} from "../components/protocol/messages.ts";
import { freePort, type Harness, startComponent } from "./helpers/harness.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const IO_TIMEOUT = 400;

/**
 * What the scripted server does with a command: reply (CRLF added), send raw bytes, send bytes one at a
 * time `everyMs` apart (a trickle), stay silent, or hang up.
 */
type Answer = string | { raw: string } | { trickle: string; everyMs: number } | "silent" | "close";
type Verb = "greeting" | "EHLO" | "HELO" | "MAIL" | "RCPT" | "DATA" | "dot" | "QUIT";

const NORMAL: Record<Verb, Answer> = {
  greeting: "220 script.test ESMTP",
  EHLO: "250-script.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME",
  HELO: "250 script.test",
  MAIL: "250 2.1.0 Ok",
  RCPT: "250 2.1.5 Ok",
  DATA: "354 go ahead",
  dot: "250 2.0.0 Ok: queued as X",
  QUIT: "221 2.0.0 Bye",
};

/** A one-connection-at-a-time SMTP server that answers per `script` and records the commands it got. */
class ScriptServer {
  readonly commands: string[] = [];
  readonly contents: string[] = [];
  /** Bytes of each read while in command mode: shows whether commands came pipelined. */
  readonly reads: string[] = [];
  readonly #listener: Deno.Listener;
  readonly #loop: Promise<void>;
  readonly #open = new Set<Deno.Conn>();

  constructor(port: number, readonly script: Partial<Record<Verb, Answer | ((line: string) => Answer)>>) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port });
    this.#loop = this.#accept();
  }

  /** Waits until `command` was received, or `ms` passed. */
  async waitFor(command: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.commands.includes(command) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const c of this.#open) c.close();
    await this.#loop;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#open.add(conn);
        (conn as Deno.TcpConn).setNoDelay(true);
        await this.#serve(conn).catch(() => {});
        if (this.#open.delete(conn)) conn.close();
      }
    } catch {
      // listener closed
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    let buf = "";
    let inData = false;
    const buffer = new Uint8Array(64 * 1024);
    if (!(await this.#answer(conn, "greeting", ""))) return;
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return;
      const chunk = dec.decode(buffer.subarray(0, n));
      if (!inData) this.reads.push(chunk);
      buf += chunk;
      while (true) {
        if (inData) {
          const end = buf.indexOf("\r\n.\r\n");
          if (end < 0) break;
          this.contents.push(buf.slice(0, end + 2));
          buf = buf.slice(end + 5);
          inData = false;
          if (!(await this.#answer(conn, "dot", ""))) return;
          continue;
        }
        const lf = buf.indexOf("\r\n");
        if (lf < 0) break;
        const line = buf.slice(0, lf);
        buf = buf.slice(lf + 2);
        this.commands.push(line);
        const verb = line.slice(0, 4).toUpperCase() as Verb;
        const known = verb in NORMAL ? verb : undefined;
        if (!known) {
          await conn.write(enc.encode("500 unknown\r\n"));
          continue;
        }
        if (!(await this.#answer(conn, known, line))) return;
        if (known === "QUIT") return;
        if (known === "DATA" && this.#last.startsWith("354")) inData = true;
      }
    }
  }

  #last = "";

  /** Sends the answer for `verb`; false when the connection is to end. */
  async #answer(conn: Deno.Conn, verb: Verb, line: string): Promise<boolean> {
    const s = this.script[verb];
    const answer = typeof s === "function" ? s(line) : s ?? NORMAL[verb];
    if (answer === "close") return false;
    if (answer === "silent") {
      this.#last = "";
      return true;
    }
    if (typeof answer === "object" && "trickle" in answer) {
      for (const byte of enc.encode(answer.trickle)) {
        await new Promise((r) => setTimeout(r, answer.everyMs));
        await conn.write(Uint8Array.of(byte));
      }
      return true;
    }
    const text = typeof answer === "string" ? answer + "\r\n" : answer.raw;
    this.#last = text;
    await conn.write(enc.encode(text));
    return true;
  }
}

/** One smtpc worker (io_timeout IO_TIMEOUT) allowed to reach `port`, CDB files in a temp dir. */
async function withSmtpc(
  port: number,
  fn: (
    deliver: (content: string, over?: Partial<DeliveryTransaction>) => Promise<SmtpcResult>,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_fail_" });
  const config = structuredClone(defaultConfig());
  config.hostname = "client.test";
  // One connection per delivery: the scripted server serves one at a time, and reuse has its own tests.
  config.smtpc = { ...config.smtpc, io_timeout: IO_TIMEOUT, ports: [port], connection_cache_time_limit: 0 };
  let h: Harness | undefined;
  let serial = 0;
  try {
    h = await startComponent("smtpc", config, { net: [`0.0.0.0/0:${port}`], read: [dir] }, {
      qmgr: () => {},
    });
    const qmgr = h.peers.get("qmgr")!;
    await fn(async (content, over = {}) => {
      const id = `F${++serial}`;
      const path = join(dir, id);
      await Deno.writeTextFile(path, content);
      const ta: DeliveryTransaction = {
        taId: `ta-${id}`,
        messageId: id,
        cdbPath: path,
        size: enc.encode(content).length,
        sender: "sender@origin.test",
        recipients: [{ address: "a@dest.test", index: 0 }, { address: "b@dest.test", index: 1 }],
        route: { protocol: "esmtp", port, hosts: [{ name: "script.test", address: "127.0.0.1" }] },
        ...over,
      };
      const answer = await qmgr.request("smtpc", { type: "qmgr.deliver", ta }, 20_000);
      assert.equal(answer.type, "smtpc.result", JSON.stringify(answer));
      return answer as SmtpcResult;
    });
  } finally {
    await h?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

interface Case {
  name: string;
  script: ConstructorParameters<typeof ScriptServer>[1];
  /** Expected status of recipients a and b. */
  expect: [string, string];
  /** A fragment each reply must contain. */
  reply: string | [string, string];
  /** Commands the server must (not) have seen. */
  saw?: string[];
  sawNot?: string[];
}

const CASES: Case[] = [
  {
    name: "a 5xx to MAIL FROM fails every recipient permanently",
    script: { MAIL: "550 5.7.1 Sender rejected" },
    expect: ["perm", "perm"],
    reply: "550 5.7.1 Sender rejected",
  },
  {
    name: "a 4xx to MAIL FROM defers every recipient",
    script: { MAIL: "451 4.3.0 Try later" },
    expect: ["temp", "temp"],
    reply: "451 4.3.0 Try later",
  },
  {
    name: "a server closing after the final dot leaves the recipients temp (a duplicate, never a loss)",
    script: { dot: "close" },
    expect: ["temp", "temp"],
    reply: "lost connection with script.test[127.0.0.1]",
  },
  {
    name: "a server that never answers the greeting is given up at io_timeout",
    script: { greeting: "silent" },
    expect: ["temp", "temp"],
    reply: "timed out while receiving the initial server greeting",
  },
  {
    name: "a server that never answers the final dot is given up at io_timeout",
    script: { dot: "silent" },
    expect: ["temp", "temp"],
    reply: "timed out while waiting for the reply to end of data -- message may be sent more than once",
  },
  {
    name: "a reply line ending in a bare LF is a protocol error",
    script: { RCPT: { raw: "250 2.1.5 Ok\n" } },
    expect: ["temp", "temp"],
    reply: "protocol error with script.test[127.0.0.1]",
  },
  {
    name: "garbage instead of a reply is a protocol error",
    script: { MAIL: "hello there" },
    expect: ["temp", "temp"],
    reply: "malformed line hello there",
  },
  {
    name: "a multi-line reply whose code changes is a protocol error",
    script: { EHLO: "250-script.test\r\n251 PIPELINING" },
    expect: ["temp", "temp"],
    reply: "code changed from 250 to 251",
  },
  {
    name: "a reply over 64 KiB is a protocol error",
    script: { EHLO: `250-X-PAD ${"p".repeat(1000)}\r\n`.repeat(70) + "250 OK" },
    expect: ["temp", "temp"],
    reply: "longer than 64 KiB",
  },
  {
    name: "control characters in a reply are stored escaped",
    script: { RCPT: (l) => l.includes("<a@") ? "550 5.1.1 bad\x1b[31m user" : "250 2.1.5 Ok" },
    expect: ["perm", "sent"],
    reply: ["550 5.1.1 bad\\x1b[31m user", "250 2.0.0 Ok: queued as X"],
  },
  {
    name: "a 5xx greeting on the only host defers (never bounces)",
    script: { greeting: "554 5.3.2 Not now" },
    expect: ["temp", "temp"],
    reply: "host script.test[127.0.0.1]:",
    sawNot: ["EHLO client.test"],
  },
  {
    name: "a 5xx to EHLO falls back to HELO",
    script: { EHLO: "502 5.5.2 No EHLO here" },
    expect: ["sent", "sent"],
    reply: "250 2.0.0 Ok: queued as X",
    saw: ["EHLO client.test", "HELO client.test", "MAIL FROM:<sender@origin.test>"],
  },
  {
    name: "a 5xx to DATA fails the accepted recipients permanently",
    script: { DATA: "554 5.6.0 No content accepted" },
    expect: ["perm", "perm"],
    reply: "554 5.6.0 No content accepted",
  },
  {
    name: "a 4xx after the final dot defers",
    script: { dot: "452 4.3.1 Insufficient storage" },
    expect: ["temp", "temp"],
    reply: "452 4.3.1 Insufficient storage",
  },
  {
    name: "binary garbage instead of a reply is a protocol error, stored escaped",
    script: { RCPT: { raw: "\x00\xff\x1b[2J\x07\r\n" } },
    expect: ["temp", "temp"],
    reply: "malformed line \\x00",
  },
  {
    name: "a reply cut off without CRLF by a hang-up is a lost connection",
    script: { MAIL: { raw: "250 2.1.0 O" }, RCPT: "close" },
    expect: ["temp", "temp"],
    reply: "lost connection with script.test[127.0.0.1]",
  },
  {
    name: "a 421 to RCPT ends the session: every recipient temp with its text",
    script: { RCPT: (l) => l.includes("<b@") ? "421 4.3.2 Going down" : "250 2.1.5 Ok" },
    expect: ["temp", "temp"],
    reply: "421 4.3.2 Going down",
  },
  {
    name: "a reply trickled a byte at a time is cut at its deadline, not at each byte",
    script: { MAIL: { trickle: "250-" + "x".repeat(200) + "\r\n250 Ok\r\n", everyMs: 20 } },
    expect: ["temp", "temp"],
    reply: "timed out while sending MAIL FROM",
  },
  {
    name: "a server that never answers DATA is given up at its deadline",
    script: { EHLO: "250-script.test\r\n250 8BITMIME", DATA: "silent" },
    expect: ["temp", "temp"],
    reply: "timed out while sending DATA",
  },
  {
    name: "MAIL FROM carries SIZE and BODY=8BITMIME when offered",
    script: {},
    expect: ["sent", "sent"],
    reply: "250 2.0.0",
    saw: ["MAIL FROM:<sender@origin.test> SIZE=11 BODY=8BITMIME", "RCPT TO:<a@dest.test>", "QUIT"],
  },
];

Deno.test("smtpc answers temp or perm as each misbehaving server deserves", async (t) => {
  const port = freePort();
  await withSmtpc(port, async (deliver) => {
    for (const c of CASES) {
      await t.step(c.name, async () => {
        const server = new ScriptServer(port, c.script);
        try {
          const result = await deliver("Hi\r\nthere\r\n", { bodyType: "8BITMIME" });
          assert.deepEqual(result.results.map((r) => r.status), c.expect, JSON.stringify(result));
          const fragments = typeof c.reply === "string" ? [c.reply, c.reply] : c.reply;
          result.results.forEach((r, i) =>
            assert.ok(replyLine(r.reply).includes(fragments[i]), replyLine(r.reply))
          );
          // smtpc answers qmgr before it sends QUIT, so give the QUIT a moment to arrive.
          if (c.saw?.includes("QUIT")) await server.waitFor("QUIT", 2000);
          for (const cmd of c.saw ?? []) {
            assert.ok(server.commands.includes(cmd), server.commands.join(" | "));
          }
          for (const cmd of c.sawNot ?? []) {
            assert.ok(!server.commands.includes(cmd), server.commands.join(" | "));
          }
        } finally {
          await server.close();
        }
      });
    }

    await t.step("without PIPELINING each command waits for its reply", async () => {
      const server = new ScriptServer(port, { EHLO: "250-script.test\r\n250 8BITMIME" });
      try {
        const result = await deliver("one\r\n");
        assert.deepEqual(result.results.map((r) => r.status), ["sent", "sent"]);
        const envelope = server.reads.filter((r) => /^(MAIL|RCPT|DATA)/.test(r));
        assert.deepEqual(envelope, [
          "MAIL FROM:<sender@origin.test>\r\n",
          "RCPT TO:<a@dest.test>\r\n",
          "RCPT TO:<b@dest.test>\r\n",
          "DATA\r\n",
        ]);
      } finally {
        await server.close();
      }
    });

    await t.step("with PIPELINING MAIL, every RCPT and DATA leave in one write", async () => {
      const server = new ScriptServer(port, {});
      try {
        await deliver("one\r\n");
        assert.ok(
          server.reads.includes(
            "MAIL FROM:<sender@origin.test> SIZE=5\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n",
          ),
          JSON.stringify(server.reads),
        );
      } finally {
        await server.close();
      }
    });

    await t.step("an address that could smuggle a command is refused, not sent", async () => {
      const server = new ScriptServer(port, {});
      try {
        const result = await deliver("x\r\n", {
          recipients: [{ address: "a@dest.test>\r\nRSET", index: 0 }, { address: "b@dest.test", index: 1 }],
        });
        assert.deepEqual(result.results.map((r) => r.status), ["perm", "sent"]);
        assert.ok(!server.commands.includes("RSET"), server.commands.join(" | "));
      } finally {
        await server.close();
      }
    });
  });
});

Deno.test("smtpc stops gracefully: a transaction still running is answered temp, other types get rpc.failure", async () => {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "smtpc_stop_" });
  const config = structuredClone(defaultConfig());
  config.smtpc = { ...config.smtpc, io_timeout: 60_000, ports: [port] };
  let reachedDot!: () => void;
  const dot = new Promise<void>((resolve) => reachedDot = resolve);
  const server = new ScriptServer(port, {
    dot: () => {
      reachedDot();
      return "silent";
    },
  });
  let h: Harness | undefined;
  try {
    h = await startComponent("smtpc", config, { net: [`0.0.0.0/0:${port}`], read: [dir] }, {
      qmgr: () => {},
    });
    const qmgr = h.peers.get("qmgr")!;

    const other = await qmgr.request("smtpc", { type: "qmgr.route", domain: "example.test" });
    assert.deepEqual(other, { type: "rpc.failure", reason: "smtpc does not serve qmgr.route" });

    const path = join(dir, "S1");
    await Deno.writeTextFile(path, "Subject: stop\r\n\r\nbody\r\n");
    const pending = qmgr.request("smtpc", {
      type: "qmgr.deliver",
      ta: {
        taId: "ta-S1",
        messageId: "S1",
        cdbPath: path,
        size: 25,
        sender: "s@origin.test",
        recipients: [{ address: "a@dest.test", index: 0 }],
        route: { protocol: "esmtp", port, hosts: [{ name: "script.test", address: "127.0.0.1" }] },
      },
    }, 20_000);
    await dot;
    // Ask for the shutdown ourselves: the harness would close our endpoint as soon as it sees "stopped".
    h.worker.postMessage({ v: PROTOCOL_VERSION, kind: "shutdown" });
    const answer = await pending;
    assert.equal(answer.type, "smtpc.result", JSON.stringify(answer));
    const result = answer as SmtpcResult;
    assert.equal(result.results[0].status, "temp");
    assert.match(replyLine(result.results[0].reply), /stopping.*may be sent more than once/);
  } finally {
    await h?.stop();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
