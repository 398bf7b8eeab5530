// The attacked MTA for the end-to-end robustness tests (e2e_robustness_*_test.ts): the whole MTA started
// with a sink behind example.com, STARTTLS, AUTH (alice/secret, plain text allowed), a 2 MB size limit and
// per-component log files; the checks every family of attacks ends with (no restart, no supervision
// event, no error logged, every session ended, nothing left in the CDB or the queue, the messages that
// had to arrive arrived byte for byte); and small dialogue helpers over a RawClient. Touches its own
// temporary directories and loopback sockets.

import assert from "node:assert/strict";
import { join } from "node:path";
import type { SupervisorEvent } from "../../components/mcp/supervisor.ts";
import { controlSocketPath } from "../../components/qmgr/control_protocol.ts";
import { hashPassword } from "../../components/smtps/password_hash.ts";
import { request } from "../../scripts/qmgrctl.ts";
import { Junk, RawClient, replyCodes, seededRandom } from "./hostile_client.ts";
import { startTestMta, type TestMta } from "./mta.ts";
import { smtpSend } from "./smtp_client.ts";
import { type Sink, startSink } from "./smtp_sink.ts";
import { tlsFile } from "./smtps_dialogue.ts";

/** The seed of the attacks' pseudo-random generator: ROBUSTNESS_SEED repeats a run. */
export const SEED = Number(Deno.env.get("ROBUSTNESS_SEED") ?? 0x5eed_2d);
/** The smtps section's max_message_size. */
export const MAX_SIZE = 2 * 1024 * 1024;
export const MB = 1024 * 1024;

/** A refusal: any 5xx, or the 421 that ends a session. */
export const refusal = (code: number) => code >= 500 || code === 421;

/** The content after our Received: header, as latin1 text. */
export function afterReceived(data: Uint8Array): string {
  const text = Array.from(data, (c) => String.fromCharCode(c)).join("");
  const m = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*\r\n/.exec(text);
  assert.ok(m, `no Received: header first: ${JSON.stringify(text.slice(0, 80))}`);
  return text.slice(m[0].length);
}

/** Every file in the CDB directories. */
async function cdbFiles(base: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of Deno.readDir(base)) {
    if (!d.isDirectory) continue;
    for await (const f of Deno.readDir(join(base, d.name))) out.push(`${d.name}/${f.name}`);
  }
  return out;
}

/** The attacked MTA with what the checks after each family need. */
export class Target {
  readonly events: SupervisorEvent[] = [];
  readonly clients = new Set<RawClient>();
  /** Contents (after Received:) that must reach the sink, keyed by a unique marker they hold. */
  readonly expected = new Map<string, string>();
  /** Messages that may or may not reach the sink (a reset right after the final dot). */
  maybe = 0;
  readonly junk = new Junk(seededRandom(SEED));

  constructor(readonly mta: TestMta, readonly sink: Sink, readonly logDir: string) {
    mta.mta.supervisor.onEvent((e) => this.events.push(e));
  }

  get port(): number {
    return this.mta.port;
  }

  async open(): Promise<RawClient> {
    const c = await RawClient.open(this.port);
    this.clients.add(c);
    return c;
  }

  /** Opens a connection, runs `fn`, and closes it whatever happens. */
  async session<T>(fn: (c: RawClient) => Promise<T>): Promise<T> {
    const c = await this.open();
    try {
      return await fn(c);
    } finally {
      await c.close();
      this.clients.delete(c);
    }
  }

  /** A message that must arrive: its body holds `marker`. */
  expect(marker: string, body: string): void {
    this.expected.set(marker, body);
  }

  /** No worker died, none was restarted, no component logged an error, and the queue is empty. */
  async healthy(family: string): Promise<void> {
    const sup = this.mta.mta.supervisor;
    for (const name of sup.names) assert.equal(sup.restarts(name), 0, `${family}: ${name} was restarted`);
    const bad = this.events.filter((e) => e.type === "died" || e.type === "restart" || e.type === "exit");
    assert.deepEqual(bad, [], `${family}: supervision events`);
    const socket = controlSocketPath(this.mta.config);
    const deadline = Date.now() + 20_000;
    let files: string[] = [];
    let rows: unknown[] = [];
    for (;;) {
      files = await cdbFiles(this.mta.config.CDB_base_directory);
      const answer = await request(socket, { command: "list" });
      assert.ok(answer.ok, `${family}: qmgrctl list failed: ${JSON.stringify(answer)}`);
      rows = (answer.result as { rows: unknown[] }).rows;
      const arrived = this.sink.count >= this.expected.size;
      if (files.length === 0 && rows.length === 0 && arrived) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(files, [], `${family}: CDB files left behind`);
    assert.deepEqual(rows, [], `${family}: messages left in the queue`);
    assert.ok(
      this.sink.count >= this.expected.size && this.sink.count <= this.expected.size + this.maybe,
      `${family}: ${this.sink.count} messages at the sink, expected ${this.expected.size} (+${this.maybe} maybe)`,
    );
    const got = this.sink.messages.map((m) => afterReceived(m.data));
    for (const [marker, body] of this.expected) {
      const found = got.filter((g) => g.includes(marker));
      assert.equal(found.length, 1, `${family}: message ${marker} arrived ${found.length} times`);
      assert.equal(found[0], body, `${family}: message ${marker} arrived changed`);
    }
    // Every session the attack opened has ended: none hangs on a client that is gone.
    let open = -1;
    for (const until = Date.now() + 10_000; open !== 0 && Date.now() < until;) {
      const lines = (await Deno.readTextFile(join(this.logDir, "smtps.log"))).split("\n");
      open = lines.filter((l) => / smx\/smtpd\[\d+\]: connect from /.test(l)).length -
        lines.filter((l) => / smx\/smtpd\[\d+\]: disconnect from /.test(l)).length;
      if (open !== 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(open, 0, `${family}: smtps sessions still open after their clients left`);
    for (const name of ["smtps", "qmgr", "smar", "smtpc", "mcp"]) {
      const text = await Deno.readTextFile(join(this.logDir, `${name}.log`)).catch(() => "");
      const errors = text.split("\n").filter((l) => /\]: (error|fatal|panic): /.test(l));
      assert.deepEqual(errors, [], `${family}: ${name} logged errors`);
    }
    await this.closeAll();
  }

  async closeAll(): Promise<void> {
    for (const c of this.clients) await c.close();
    this.clients.clear();
  }

  /** A test step for one family of attacks; whatever happens, its connections are closed afterwards. */
  family(t: Deno.TestContext): (name: string, fn: () => Promise<void>) => Promise<boolean> {
    return (name, fn) =>
      t.step(name, async () => {
        try {
          await fn();
        } finally {
          await this.closeAll();
        }
      });
  }

  /**
   * After the attacks: a normal message still arrives byte for byte, at least `refusals` refusals were
   * logged, and the log holds no raw control characters.
   */
  async normalMessage(refusals: number): Promise<void> {
    const body = "From: Alice <alice@sender.test>\r\nTo: Bob <bob@example.com>\r\nSubject: after-attack\r\n" +
      "\r\nLine one.\r\n.A line that starts with a dot.\r\n..Two.\r\n\r\nLast line.\r\n";
    this.expect("after-attack", body);
    const reply = await smtpSend(this.port, { from: "alice@sender.test", to: ["bob@example.com"], body });
    assert.match(reply, /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
    await this.healthy("the normal message");
    const log = await Deno.readTextFile(join(this.logDir, "smtps.log"));
    // Policy refusals (`NOQUEUE: reject: RCPT from host[addr]: 550 ...`) and the others (`RCPT from
    // host[addr]: 501 ...`) both name the client and the reply.
    const logged = log.split("\n").filter((l) => / from \S+\[[^\]]+\]: [45]\d\d /.test(l)).length;
    assert.ok(logged >= refusals, `${logged} refusals logged, expected at least ${refusals}`);
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(log), "no raw control characters in the log");
  }

  /** Stops the MTA and the sink and removes the directory of the AUTH map and the logs. */
  async stop(): Promise<void> {
    await this.closeAll();
    try {
      await this.mta.stop();
      await this.sink.close();
    } finally {
      await Deno.remove(join(this.logDir, ".."), { recursive: true });
    }
  }
}

/** The replies `c` got, each checked well formed, and its codes checked against `allowed`. */
export function codesOf(
  c: RawClient,
  allowed: (code: number, i: number) => boolean,
  partial = false,
): number[] {
  const codes = replyCodes(c.transcript, partial);
  codes.forEach((code, i) =>
    assert.ok(allowed(code, i), `reply ${i} ${code} not expected; transcript ${c.transcript.slice(0, 300)}`)
  );
  return codes;
}

export async function expectReply(c: RawClient, line: string | null, code: number): Promise<string> {
  const r = line === null ? await c.reply() : await c.command(line);
  assert.equal(r.slice(0, 3), String(code), `${JSON.stringify(line?.slice(0, 60))} got ${JSON.stringify(r)}`);
  return r;
}

/** Sends a BDAT command with its chunk (no line end after it) and expects `code`. */
export async function bdat(c: RawClient, commandAndChunk: string, code: number): Promise<void> {
  await c.send(commandAndChunk);
  await expectReply(c, null, code);
}

/** Greeting, EHLO, MAIL and RCPT to the sink's domain. */
export async function envelope(c: RawClient, rcpt = "rcpt@example.com"): Promise<void> {
  await expectReply(c, null, 220);
  await expectReply(c, "EHLO attacker.test", 250);
  await expectReply(c, "MAIL FROM:<attacker@sender.test>", 250);
  await expectReply(c, `RCPT TO:<${rcpt}>`, 250);
}

export async function startTarget(): Promise<Target> {
  const sink = await startSink();
  const dir = await Deno.makeTempDir({ prefix: "smx-robust-" });
  const authMap = join(dir, "auth.txt");
  await Deno.writeTextFile(authMap, `alice ${await hashPassword("secret", 1000)}\n`);
  const logDir = join(dir, "log");
  const mta = await startTestMta({
    mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n`,
    adjust: (c) => {
      c.log = { directory: logDir };
      // The MCP shares this thread with the attackers, which build megabytes of junk: on a busy machine a
      // 200 ms heartbeat (three missed = dead) reads that as every worker dying at once.
      c.mcp.heartbeat_interval = 1_000;
      c.qmgr.smtps.max_connections = 50; // the crowd test holds exactly this many sessions at once
      const s = c.smtps[0];
      s.max_message_size = MAX_SIZE;
      s.tls = { cert_file: tlsFile("server.pem"), key_file: tlsFile("server.key"), flags: [] };
      s.auth = {
        map_file: authMap,
        mechanisms: ["plain", "login"],
        trusted_mechs: ["plain"],
        max_failures: 3,
        failure_delay: 10,
        flags: ["allow_plaintext"],
      };
    },
  }).catch(async (err) => {
    await sink.close();
    throw err;
  });
  return new Target(mta, sink, logDir);
}
