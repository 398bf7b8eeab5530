// Test helpers for smtps: runs the real smtps worker on a free loopback port (or several named servers,
// each on its own port) with qmgr and smar played by test handlers (which record what they were asked),
// and a raw SMTP client that sends lines and reads replies (also over TLS after STARTTLS), for dialogue
// scripts of `client line -> expected reply code`. The worker may read the TLS fixtures and any files the
// test names (an AUTH map).

import assert from "node:assert/strict";
import { defaultConfig, defaultSmtps } from "../../config/defaults.ts";
import type { Config, InetListenSocket, SmtpsConfig } from "../../config/types.ts";
import type {
  Envelope,
  Message,
  SmtpReply,
  SmtpsCheckRcpt,
  Verdict,
} from "../../components/protocol/messages.ts";
import { freePort, type Harness, startComponent } from "./harness.ts";

/** How the fake qmgr and smar answer; tests change it between steps. */
export interface Policy {
  /** qmgr's answer to smtps.conn_open: accept, refuse with a reply, or fail the RPC. */
  connection: "accept" | "refuse" | "fail";
  /** smar's connect verdict. */
  connect: "accept" | "reject" | "tempfail";
  /** Senders smar rejects (550 5.7.1) at MAIL. */
  rejectSenders: string[];
  /** Recipients smar rejects with 550 5.7.1 Relaying denied. */
  rejectRecipients: string[];
  /** Recipients smar tempfails with 450 4.7.1 Greylisted. */
  tempfailRecipients: string[];
  /** qmgr's answer to smtps.commit. */
  commit: "commit" | "fail" | "rpc_failure";
  /** Milliseconds qmgr waits before answering smtps.conn_open (lets an early talker talk first). */
  connectDelay: number;
  /** A verdict smar gives at RCPT instead of the above, when set (e.g. alias expansion, dataReply). */
  rcptVerdict?: (m: SmtpsCheckRcpt) => Verdict | undefined;
}

export interface Smtps {
  port: number;
  cdbDir: string;
  policy: Policy;
  envelopes: Envelope[];
  /** The ips qmgr heard connectionOpened / connectionClosed for, in order. */
  opened: string[];
  closed: string[];
  /** The recipient checks smar was asked, as `sender -> recipient`. */
  rcptChecks: string[];
  /** Every check_rcpt smar was asked, whole. */
  rcptMessages: SmtpsCheckRcpt[];
  /** The port of each server by name (the first is `port`). */
  ports: Record<string, number>;
  /** The configuration the worker started with. */
  config: Config;
  harness: Harness;
  stop(): Promise<void>;
}

export const HOST = "mx.test.example";

/** The TLS fixtures (tests/fixtures/tls): a CA, its server leaf for 127.0.0.1, a client certificate. */
export const TLS_DIR = new URL("../fixtures/tls/", import.meta.url).pathname;
export const tlsFile = (name: string) => `${TLS_DIR}${name}`;

export interface StartOptions {
  /** More smtps sections, each on its own free port (named by `name`). */
  more?: Partial<SmtpsConfig>[];
  /** Files the worker may read besides the CDB and the TLS fixtures (an AUTH map). */
  read?: string[];
  /** A log directory: smtps writes its lines to `<dir>/smtps.log` instead of stderr. */
  logDirectory?: string;
  /** Give the worker sys "statfs", as the MCP does (its own disk checks); without it they stay off. */
  statfs?: boolean;
  /** Changes to the whole configuration (e.g. qmgr's min_disk_space, which smtps reads too). */
  adjust?: (config: Config) => void;
  /** More hosts the worker may connect to (`127.0.0.1:PORT` of a milter). */
  net?: string[];
}

/** Starts smtps on a free port with a fresh CDB directory; `overrides` change the smtps section. */
export async function startSmtps(
  overrides: Partial<SmtpsConfig> = {},
  policy: Partial<Policy> = {},
  options: StartOptions = {},
): Promise<Smtps> {
  const port = freePort();
  const cdbDir = await Deno.makeTempDir({ prefix: "smtps_cdb_" });
  const config = structuredClone(defaultConfig());
  config.CDB_base_directory = cdbDir;
  config.mcp.heartbeat_interval = 60_000;
  if (options.logDirectory !== undefined) config.log = { directory: options.logDirectory };
  options.adjust?.(config);
  config.smtps = [{
    ...defaultSmtps("MTA", HOST),
    listen_socket: [{ type: "inet", address: "127.0.0.1", port }],
    ...overrides,
  }];
  for (const more of options.more ?? []) {
    config.smtps.push({
      ...defaultSmtps(more.name ?? `S${config.smtps.length}`, HOST),
      listen_socket: [{ type: "inet", address: "127.0.0.1", port: freePort() }],
      ...more,
    });
  }
  const ports = Object.fromEntries(
    config.smtps.map((s) => [s.name, (s.listen_socket[0] as InetListenSocket).port]),
  );
  const p: Policy = {
    connection: "accept",
    connect: "accept",
    rejectSenders: [],
    rejectRecipients: [],
    tempfailRecipients: [],
    commit: "commit",
    connectDelay: 0,
    ...policy,
  };
  const envelopes: Envelope[] = [];
  const opened: string[] = [];
  const closed: string[] = [];
  const rcptChecks: string[] = [];
  const rcptMessages: SmtpsCheckRcpt[] = [];
  const verdict = (action: "accept" | "reject" | "tempfail", reply?: SmtpReply): Message => ({
    type: "smar.verdict",
    verdict: reply ? { action, reply } : { action },
  });
  const qmgr = async (_from: string, m: Message): Promise<Message | void> => {
    switch (m.type) {
      case "smtps.conn_open":
        if (p.connectDelay > 0) await new Promise((r) => setTimeout(r, p.connectDelay));
        opened.push(m.ip);
        if (p.connection === "fail") return { type: "rpc.failure", reason: "qmgr is down" };
        return p.connection === "accept" ? { type: "qmgr.conn_verdict", accept: true } : {
          type: "qmgr.conn_verdict",
          accept: false,
          reply: { code: 421, status: "4.7.0", text: `${HOST} Too many connections` },
        };
      case "smtps.conn_close":
        closed.push(m.ip);
        return;
      case "smtps.commit":
        if (p.commit === "rpc_failure") return { type: "rpc.failure", reason: "qmgr timed out" };
        if (p.commit === "fail") {
          return { type: "qmgr.commit_failed", id: m.envelope.id, reason: "disk full" };
        }
        envelopes.push(m.envelope);
        return { type: "qmgr.committed", id: m.envelope.id };
      default:
        throw new Error(`Unexpected message to qmgr: ${m.type}`);
    }
  };
  const smar = (_from: string, m: Message): Message => {
    switch (m.type) {
      case "smtps.check_connect":
        if (p.connect === "reject") return verdict("reject", { code: 554, status: "5.7.1", text: "Go away" });
        if (p.connect === "tempfail") return verdict("tempfail");
        return verdict("accept");
      case "smtps.check_mail":
        return p.rejectSenders.includes(m.sender)
          ? verdict("reject", { code: 550, status: "5.7.1", text: "Sender rejected" })
          : verdict("accept");
      case "smtps.check_rcpt": {
        rcptChecks.push(`${m.sender} -> ${m.recipient}`);
        rcptMessages.push(m);
        const special = p.rcptVerdict?.(m);
        if (special) return { type: "smar.verdict", verdict: special };
        if (p.rejectRecipients.includes(m.recipient)) {
          return verdict("reject", { code: 550, status: "5.7.1", text: "Relaying denied" });
        }
        if (p.tempfailRecipients.includes(m.recipient)) {
          return verdict("tempfail", { code: 450, status: "4.7.1", text: "Greylisted" });
        }
        return verdict("accept");
      }
      default:
        throw new Error(`Unexpected message to smar: ${m.type}`);
    }
  };
  let harness: Harness;
  try {
    harness = await startComponent(
      "smtps",
      config,
      {
        net: [...Object.values(ports).map((p) => `127.0.0.1:${p}`), ...(options.net ?? [])],
        read: [cdbDir, TLS_DIR, ...(options.read ?? [])],
        write: [cdbDir, ...(options.logDirectory !== undefined ? [`${options.logDirectory}/smtps.log`] : [])],
        ...(options.statfs ? { sys: ["statfs"] } : {}),
      },
      { qmgr, smar },
    );
  } catch (err) {
    await Deno.remove(cdbDir, { recursive: true });
    throw err;
  }
  return {
    port,
    cdbDir,
    policy: p,
    envelopes,
    opened,
    closed,
    rcptChecks,
    rcptMessages,
    ports,
    config,
    harness,
    async stop() {
      try {
        await harness.stop();
      } finally {
        await Deno.remove(cdbDir, { recursive: true });
      }
    },
  };
}

/** Every file in the CDB (paths relative to its base), sorted. */
export async function cdbFiles(base: string): Promise<string[]> {
  const out: string[] = [];
  for await (const d of Deno.readDir(base)) {
    if (!d.isDirectory) continue;
    for await (const f of Deno.readDir(`${base}/${d.name}`)) out.push(`${d.name}/${f.name}`);
  }
  return out.sort();
}

export interface Reply {
  code: number;
  lines: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A raw SMTP client: writes exactly what it is given, reads replies line by line. */
export class SmtpClient {
  #buffered = "";
  #eof = false;
  private constructor(public conn: Deno.Conn) {}

  static async connect(port: number): Promise<SmtpClient> {
    return new SmtpClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Connects to a server's unix socket. */
  static async connectUnix(path: string): Promise<SmtpClient> {
    return new SmtpClient(await Deno.connect({ transport: "unix", path }));
  }

  /** Starts TLS on the connection (after the server's 220 to STARTTLS), trusting the fixtures' CA. */
  async startTls(hostname = "localhost"): Promise<void> {
    assert.equal(this.#buffered, "", "bytes after the 220 to STARTTLS");
    const ca = await Deno.readTextFile(tlsFile("ca.pem"));
    this.conn = await Deno.startTls(this.conn as Deno.TcpConn, { hostname, caCerts: [ca] });
  }

  /** Sends text as is (add "\r\n" yourself). */
  async send(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** Reads one complete reply (all its lines); fails after `timeoutMs`. */
  async reply(timeoutMs = 5_000): Promise<Reply> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.#line(timeoutMs);
      assert.ok(line !== null, `connection closed while waiting for a reply (got ${JSON.stringify(lines)})`);
      lines.push(line);
      assert.match(line, /^\d{3}[ -]/, `malformed reply line ${JSON.stringify(line)}`);
      if (line[3] === " ") return { code: Number(line.slice(0, 3)), lines };
    }
  }

  /** Resolves true once the server has closed the connection (everything it sent before is discarded). */
  async closedByServer(timeoutMs = 5_000): Promise<boolean> {
    for (;;) {
      const line = await this.#line(timeoutMs);
      if (line === null) return true;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  async #line(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#buffered.indexOf("\r\n");
      if (i >= 0) {
        const line = this.#buffered.slice(0, i);
        this.#buffered = this.#buffered.slice(i + 2);
        return line;
      }
      if (this.#eof) return null;
      const buf = new Uint8Array(65536);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.conn.read(buf).catch((err) => {
          if (err instanceof Deno.errors.ConnectionReset) return null; // a reset ends the stream too
          throw err;
        }),
        new Promise<"timeout">((r) =>
          timer = setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now()))
        ),
      ]);
      clearTimeout(timer);
      if (n === "timeout") {
        throw new Error(`No reply within ${timeoutMs} ms (buffered ${JSON.stringify(this.#buffered)})`);
      }
      if (n === null) this.#eof = true;
      else this.#buffered += decoder.decode(buf.subarray(0, n));
    }
  }
}

/** An expected reply: its code, or the start of its last line (e.g. "550 5.7.1" or "250 2.0.0 Ok: queued"). */
export type Expect = number | string;

/** One step of a dialogue: what the client sends (null: nothing, just read) and the replies expected. */
export type Step = [send: string | null, expect: Expect | Expect[]];

function matches(r: Reply, e: Expect): boolean {
  return typeof e === "number" ? r.code === e : r.lines[r.lines.length - 1].startsWith(e);
}

/**
 * Runs a dialogue: sends each line (CRLF added) and checks the replies it gets; a step may expect several
 * replies (pipelining: put several lines in one send, joined by CRLF). Returns every reply read.
 */
export async function runDialogue(client: SmtpClient, steps: Step[]): Promise<Reply[]> {
  const all: Reply[] = [];
  for (const [send, expect] of steps) {
    if (send !== null) await client.send(send + "\r\n");
    const want = Array.isArray(expect) ? expect : [expect];
    const got: Reply[] = [];
    for (let i = 0; i < want.length; i++) got.push(await client.reply());
    assert.ok(
      got.every((r, i) => matches(r, want[i])),
      `after ${JSON.stringify(send)}: expected ${JSON.stringify(want)}, got ${
        JSON.stringify(got.map((r) => r.lines.join(" | ")))
      }`,
    );
    all.push(...got);
  }
  return all;
}
