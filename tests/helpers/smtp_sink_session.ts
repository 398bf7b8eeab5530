// One connection to the test SMTP/LMTP sink (smtp_sink.ts): the command loop, with replies to a pipelined
// batch leaving in one write, the verbs (EHLO/LHLO, HELO, MAIL, RCPT, DATA, STARTTLS, RSET, NOOP, QUIT)
// answered as the sink's options say, and the server side of STARTTLS (node:tls over the Deno.Conn).
// Between DATA's 354 and the dot the content goes to a DataReader. Touches only its connection.

import tls from "node:tls";
import { duplexOf, TlsStream } from "../../components/smtpc/tls.ts";
import type { SinkMessage, SinkOptions } from "./smtp_sink.ts";
import { DataReader } from "./smtp_sink_data.ts";

/** What the sink reads and writes: a Deno.Conn, or the TLS stream after STARTTLS. */
interface Stream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** What a session needs of its sink. */
export interface SinkHost {
  readonly opts: SinkOptions;
  /** Command lines received, over all connections. */
  readonly commands: string[];
  readonly clientCertificates: string[];
  /** A message at least one recipient accepted. */
  accepted(msg: SinkMessage): void;
}

const DEFAULT_EXTENSIONS = ["PIPELINING", "8BITMIME", "SIZE 104857600", "ENHANCEDSTATUSCODES"];
const MAX_LINE = 64 * 1024;
const LF = 10;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Closes `conn`, which may be closed already. */
export function closeQuietly(conn: Stream): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

export /** One client connection: a command loop, switching to a DataReader between DATA's 354 and the dot. */
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

  constructor(readonly server: SinkHost, conn: Deno.Conn) {
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
