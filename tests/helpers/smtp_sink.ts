// An SMTP/LMTP server for tests and the benchmark: listens on 127.0.0.1 (or on a unix socket), accepts
// every message (or what the options' reply functions decide) and keeps what it received. Pipelining-aware
// (replies to a batch of commands leave in one write), only CRLF.CRLF ends DATA, content is dot-unstuffed;
// fast enough for hundreds of messages per second. With `tls` it offers STARTTLS (node:tls over the
// Deno.Conn) and can inject bytes after its 220, as a hostile server would. Touches only its listening
// socket.

import tls from "node:tls";
import { duplexOf, TlsStream } from "../../components/smtpc/tls.ts";

export interface SinkMessage {
  sender: string;
  recipients: string[];
  /** Content as received, dot-unstuffed, up to and excluding the final ".\r\n" (empty if not kept). */
  data: Uint8Array;
  helo: string;
  /** The message came over TLS. */
  tls: boolean;
}

/** What the sink reads and writes: a Deno.Conn, or the TLS stream after STARTTLS. */
interface Stream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

export interface SinkOptions {
  /** Default 0 (random). */
  port?: number;
  /** Default 127.0.0.1; any 127.x.y.z address works on Linux (a second "host" on the same port). */
  hostname?: string;
  /** Listen on this unix socket instead of 127.0.0.1 (`port` is then 0). */
  path?: string;
  /** Offer STARTTLS with this certificate (PEM). */
  tls?: {
    key: string;
    cert: string;
    /** Sent in the same write as the 220 to STARTTLS, before the handshake (a client-side injection). */
    inject?: string;
    /** Ask for a client certificate (kept in `clientCertificates`). */
    requestCert?: boolean;
  };
  /** Speak LMTP (LHLO, one reply per recipient after DATA). */
  lmtp?: boolean;
  /** EHLO keywords, default ["PIPELINING", "8BITMIME", "SIZE 104857600", "ENHANCEDSTATUSCODES"]. */
  extensions?: string[];
  /** Default "220 sink.test ESMTP"; null: say nothing at all (a server that never greets). */
  greeting?: string | null;
  /** Replaces the reply to EHLO/LHLO (e.g. "421 4.3.2 Shutting down"; a 421 closes the connection). */
  ehloReply?: string;
  /** Default "250 2.1.5 Ok". */
  rcptReply?: (rcpt: string) => string;
  /** Default "250 2.0.0 Ok: queued"; LMTP: one per recipient (a single string answers for all). */
  dataReply?: (msg: SinkMessage) => string | string[];
  /** Default true; false for the benchmark (only count). */
  keepMessages?: boolean;
  /** Recipients accepted per transaction; more get "452 4.5.3 Too many recipients". */
  maxRcpts?: number;
}

export interface Sink {
  port: number;
  messages: SinkMessage[];
  /** Messages accepted so far (at least one recipient got 2xx after DATA). */
  count: number;
  /** Connections accepted so far. */
  connections: number;
  /** Highest number of simultaneous connections seen. */
  maxConcurrent: number;
  /** Subjects (CN) of the client certificates presented, one per TLS session that had one. */
  clientCertificates: string[];
  /** Command lines received, over all connections, in order (kept unless keepMessages is false). */
  commands: string[];
  /** Connections open now. */
  readonly openConnections: number;
  /** Closes every open connection, first sending `text` (e.g. a 421) when given: a server gone while idle. */
  dropConnections(text?: string): Promise<void>;
  /** Resolves once count >= n; rejects after timeoutMs (default 10 s). */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  /** Closes the listener and every open connection. */
  close(): Promise<void>;
}

const DEFAULT_EXTENSIONS = ["PIPELINING", "8BITMIME", "SIZE 104857600", "ENHANCEDSTATUSCODES"];
const MAX_LINE = 64 * 1024;
const CR = 13;
const LF = 10;
const DOT = 46;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Waiter {
  n: number;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

class SinkServer implements Sink {
  port: number;
  messages: SinkMessage[] = [];
  count = 0;
  connections = 0;
  maxConcurrent = 0;
  clientCertificates: string[] = [];
  commands: string[] = [];
  readonly open = new Set<SinkSession>();
  readonly sessions = new Set<Promise<void>>();
  readonly #waiters = new Set<Waiter>();
  #acceptLoop: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(readonly listener: Deno.Listener, readonly opts: SinkOptions) {
    this.port = listener.addr.transport === "unix" ? 0 : (listener.addr as Deno.NetAddr).port;
  }

  start(): void {
    this.#acceptLoop = (async () => {
      try {
        for await (const conn of this.listener) {
          this.connections++;
          const session = new SinkSession(this, conn);
          this.open.add(session);
          if (this.opts.path === undefined) (conn as Deno.TcpConn).setNoDelay(true);
          this.maxConcurrent = Math.max(this.maxConcurrent, this.open.size);
          const s = session.run().finally(() => {
            this.open.delete(session);
            this.sessions.delete(s);
          });
          this.sessions.add(s);
        }
      } catch {
        // listener closed
      }
    })();
  }

  get openConnections(): number {
    return this.open.size;
  }

  accepted(msg: SinkMessage): void {
    this.count++;
    if (this.opts.keepMessages !== false) this.messages.push(msg);
    for (const w of this.#waiters) {
      if (this.count >= w.n) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        n,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(new Error(`wait for ${n} messages: only ${this.count} after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.listener.close();
    } catch {
      // already closed
    }
    for (const session of this.open) closeQuietly(session.stream);
    await this.#acceptLoop;
    await Promise.allSettled([...this.sessions]);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`wait for ${w.n} messages: sink closed with ${this.count}`));
    }
    this.#waiters.clear();
  }

  async dropConnections(text?: string): Promise<void> {
    const sessions = [...this.open];
    for (const session of sessions) {
      if (text !== undefined) await session.send(text + "\r\n").catch(() => {});
      closeQuietly(session.stream);
    }
    await Promise.allSettled([...this.sessions]);
  }
}

function closeQuietly(conn: Stream): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** One client connection: a command loop, switching to a DataReader between DATA's 354 and the dot. */
class SinkSession {
  #buf = new Uint8Array(16 * 1024);
  #start = 0;
  #end = 0;
  #out: string[] = [];
  #helo = "";
  #sender: string | undefined;
  #rcpts: string[] = [];
  #data: DataReader | undefined;
  #quit = false;
  /** STARTTLS was accepted: the handshake starts once the 220 is out. */
  #startTls = false;
  #tls = false;
  stream: Stream;

  constructor(readonly server: SinkServer, conn: Deno.Conn) {
    this.stream = conn;
  }

  /** Writes `text` now (dropConnections uses it to say 421 before closing). */
  send(text: string): Promise<void> {
    return this.#write(text);
  }

  async run(): Promise<void> {
    const opts = this.server.opts;
    try {
      if (opts.greeting !== null) this.#out.push(opts.greeting ?? "220 sink.test ESMTP");
      while (true) {
        this.#process();
        if (this.#out.length > 0) {
          await this.#write(this.#out.join("\r\n") + "\r\n" + (this.#startTls ? opts.tls?.inject ?? "" : ""));
          this.#out = [];
        }
        if (this.#quit) break;
        if (this.#startTls) await this.#handshake();
        this.#makeRoom();
        const n = await this.stream.read(this.#buf.subarray(this.#end));
        if (n === null) break;
        this.#end += n;
      }
    } catch {
      // connection reset or closed by close()
    } finally {
      closeQuietly(this.stream);
    }
  }

  /** The server side of STARTTLS: what the client sent before the handshake is dropped (CVE-2011-0411). */
  async #handshake(): Promise<void> {
    const opts = this.server.opts.tls!;
    this.#startTls = false;
    this.#start = this.#end = 0;
    const raw = duplexOf(this.stream);
    const socket = new tls.TLSSocket(raw, {
      isServer: true,
      key: opts.key,
      cert: opts.cert,
      requestCert: opts.requestCert === true,
      rejectUnauthorized: false,
    });
    this.stream = new TlsStream(socket, raw);
    await new Promise<void>((resolve, reject) => {
      socket.once("secure", () => resolve());
      socket.once("error", reject);
      socket.once("close", () => reject(new Error("closed during the TLS handshake")));
    });
    const cn = socket.getPeerCertificate()?.subject?.CN;
    if (cn) this.server.clientCertificates.push(String(cn));
    this.#tls = true;
    this.#helo = "";
    this.#reset();
  }

  async #write(text: string): Promise<void> {
    const bytes = encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += await this.stream.write(bytes.subarray(off));
  }

  #makeRoom(): void {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buf.length - this.#end >= 4096) return;
    this.#buf.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
    if (this.#buf.length - this.#end < 4096) {
      const grown = new Uint8Array(this.#buf.length * 2);
      grown.set(this.#buf.subarray(0, this.#end));
      this.#buf = grown;
    }
  }

  /** Handles every complete command (and content) in the buffer. */
  #process(): void {
    while (!this.#quit && !this.#startTls && this.#start < this.#end) {
      if (this.#data) {
        const { consumed, done } = this.#data.feed(this.#buf.subarray(this.#start, this.#end));
        this.#start += consumed;
        if (done) this.#endOfData();
        continue;
      }
      const lf = this.#buf.subarray(this.#start, this.#end).indexOf(LF);
      if (lf < 0) {
        if (this.#end - this.#start > MAX_LINE) {
          this.#out.push("500 5.5.2 Line too long");
          this.#quit = true;
        }
        return;
      }
      let line = decoder.decode(this.#buf.subarray(this.#start, this.#start + lf));
      this.#start += lf + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (this.server.opts.keepMessages !== false) this.server.commands.push(line);
      this.#command(line);
    }
  }

  #command(line: string): void {
    const opts = this.server.opts;
    const lmtp = opts.lmtp === true;
    const sp = line.indexOf(" ");
    const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? "" : line.slice(sp + 1).trim();
    switch (verb) {
      case "EHLO":
      case "LHLO": {
        if ((verb === "LHLO") !== lmtp) return this.#reply(`500 5.5.1 Use ${lmtp ? "LHLO" : "EHLO"}`);
        if (arg === "") return this.#reply("501 5.5.4 Syntax: " + verb + " hostname");
        if (opts.ehloReply !== undefined) {
          if (opts.ehloReply.startsWith("421")) this.#quit = true;
          return this.#reply(opts.ehloReply);
        }
        this.#helo = arg;
        this.#reset();
        const exts = [
          ...(opts.extensions ?? DEFAULT_EXTENSIONS),
          ...(opts.tls && !this.#tls ? ["STARTTLS"] : []),
        ];
        const lines = ["sink.test", ...exts];
        return this.#reply(lines.map((l, i) => `250${i === lines.length - 1 ? " " : "-"}${l}`).join("\r\n"));
      }
      case "HELO":
        if (lmtp) return this.#reply("500 5.5.1 Use LHLO");
        if (arg === "") return this.#reply("501 5.5.4 Syntax: HELO hostname");
        this.#helo = arg;
        this.#reset();
        return this.#reply("250 sink.test");
      case "MAIL": {
        if (this.#helo === "") return this.#reply("503 5.5.1 Send HELO first");
        if (this.#sender !== undefined) return this.#reply("503 5.5.1 Nested MAIL command");
        const m = /^FROM:\s*<([^<>]*)>/i.exec(arg);
        if (!m) return this.#reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        this.#sender = m[1];
        return this.#reply("250 2.1.0 Ok");
      }
      case "RCPT": {
        if (this.#sender === undefined) return this.#reply("503 5.5.1 Need MAIL command");
        const m = /^TO:\s*<([^<>]+)>/i.exec(arg);
        if (!m) return this.#reply("501 5.5.4 Syntax: RCPT TO:<address>");
        const full = opts.maxRcpts !== undefined && this.#rcpts.length >= opts.maxRcpts;
        const reply = full ? "452 4.5.3 Too many recipients" : opts.rcptReply?.(m[1]) ?? "250 2.1.5 Ok";
        if (reply.startsWith("2")) this.#rcpts.push(m[1]);
        return this.#reply(reply);
      }
      case "DATA": {
        if (this.#sender === undefined) return this.#reply("503 5.5.1 Need MAIL command");
        if (this.#rcpts.length === 0) return this.#reply("554 5.5.1 No valid recipients");
        if (arg !== "") return this.#reply("501 5.5.4 Syntax: DATA");
        this.#data = new DataReader(opts.keepMessages !== false || opts.dataReply !== undefined);
        return this.#reply("354 End data with <CR><LF>.<CR><LF>");
      }
      case "STARTTLS":
        if (!opts.tls || this.#tls) return this.#reply("502 5.5.1 Error: command not implemented");
        this.#startTls = true;
        return this.#reply("220 2.0.0 Ready to start TLS");
      case "RSET":
        this.#reset();
        return this.#reply("250 2.0.0 Ok");
      case "NOOP":
        return this.#reply("250 2.0.0 Ok");
      case "QUIT":
        this.#quit = true;
        return this.#reply("221 2.0.0 Bye");
      default:
        return this.#reply("500 5.5.2 Error: command not recognized");
    }
  }

  #endOfData(): void {
    const opts = this.server.opts;
    const msg: SinkMessage = {
      sender: this.#sender ?? "",
      recipients: this.#rcpts,
      data: this.#data!.content(),
      helo: this.#helo,
      tls: this.#tls,
    };
    this.#data = undefined;
    this.#reset();
    const answer = opts.dataReply?.(msg) ?? "250 2.0.0 Ok: queued";
    let replies: string[];
    if (opts.lmtp) {
      const list = Array.isArray(answer) ? answer : [answer];
      replies = msg.recipients.map((_, i) => list[Math.min(i, list.length - 1)] ?? "250 2.0.0 Ok");
    } else {
      replies = [Array.isArray(answer) ? answer[0] ?? "250 2.0.0 Ok: queued" : answer];
    }
    for (const r of replies) this.#reply(r);
    if (replies.some((r) => r.startsWith("2"))) this.server.accepted(msg);
  }

  #reset(): void {
    this.#sender = undefined;
    this.#rcpts = [];
  }

  #reply(text: string): void {
    this.#out.push(text);
  }
}

/** Starts a sink on 127.0.0.1 (port 0 = any free port). */
export function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const listener = opts.path !== undefined
    ? Deno.listen({ transport: "unix", path: opts.path })
    : Deno.listen({ hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 0 });
  const server = new SinkServer(listener, opts);
  server.start();
  return Promise.resolve(server);
}

// DataReader states: at the start of a line, inside one, after a CR, after a leading dot, after ".\r".
const START = 0, MID = 1, AFTER_CR = 2, DOT_ = 3, DOT_CR = 4;

/**
 * The content between 354 and the dot: only CRLF "." CRLF ends it (a bare LF never ends a line here), and a
 * leading dot is removed from every other line. Keeps copies of the bytes only when `keep` is set.
 * Exported for its own tests.
 */
export class DataReader {
  #state = START;
  /** The CR of ".\r" arrived at the end of the last chunk and is not kept yet. */
  #heldCR = false;
  #pieces: Uint8Array[] = [];
  #size = 0;

  constructor(readonly keep: boolean) {}

  /** Consumes `chunk` up to the end of data; `consumed` counts the bytes that belonged to the content. */
  feed(chunk: Uint8Array): { consumed: number; done: boolean } {
    let i = 0;
    if (this.#heldCR) {
      this.#heldCR = false;
      if (chunk[0] === LF) return { consumed: 1, done: true };
      this.#add(Uint8Array.of(CR));
      this.#state = AFTER_CR;
    }
    let runStart = 0;
    const end = chunk.length;
    while (i < end) {
      const b = chunk[i];
      switch (this.#state) {
        case START:
          if (b === DOT) {
            this.#add(chunk.subarray(runStart, i));
            runStart = i + 1;
            this.#state = DOT_;
          } else this.#state = b === CR ? AFTER_CR : MID;
          break;
        case MID: {
          const cr = chunk.indexOf(CR, i);
          if (cr < 0) {
            i = end;
            continue;
          }
          i = cr;
          this.#state = AFTER_CR;
          break;
        }
        case AFTER_CR:
          this.#state = b === LF ? START : b === CR ? AFTER_CR : MID;
          break;
        case DOT_:
          this.#state = b === CR ? DOT_CR : MID;
          break;
        case DOT_CR:
          if (b === LF) {
            this.#add(chunk.subarray(runStart, i - 1));
            this.#state = START;
            return { consumed: i + 1, done: true };
          }
          this.#state = b === CR ? AFTER_CR : MID;
          break;
      }
      i++;
    }
    if (this.#state === DOT_CR) {
      this.#add(chunk.subarray(runStart, end - 1));
      this.#heldCR = true;
    } else this.#add(chunk.subarray(runStart, end));
    return { consumed: end, done: false };
  }

  /** The content received, joined into one array. */
  content(): Uint8Array {
    const out = new Uint8Array(this.#size);
    let off = 0;
    for (const p of this.#pieces) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  #add(bytes: Uint8Array): void {
    if (!this.keep || bytes.length === 0) return;
    this.#pieces.push(bytes.slice());
    this.#size += bytes.length;
  }
}
