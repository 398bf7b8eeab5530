// The benchmark's load generator: C concurrent SMTP sessions over raw TCP, each sending messages (MAIL,
// RCPT and DATA pipelined in one write, then the content after 354) until N have been sent in total; as
// fast as the server answers (closed loop) or, with a rate, each message at its scheduled time (open loop).
// Records the time of the first MAIL, of each 250 after the final dot, and the latency from the final
// dot to that 250. Opens only the connections to the server under test.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface LoadOptions {
  port: number;
  messages: number;
  /** Content size in bytes (headers included), approximately. */
  size: number;
  sessions: number;
  sender: string;
  recipient: string;
  /** Open loop: message n starts no earlier than n / rate seconds after the first (msg/s). */
  rate?: number;
}

export interface LoadResult {
  /** performance.now() of the first MAIL sent. */
  firstMail: number;
  /** performance.now() of the last 250 after DATA. */
  lastAccept: number;
  accepted: number;
  /** Messages answered with anything but 250 (the first such reply is kept in `firstFailure`). */
  failed: number;
  firstFailure?: string;
  /** Milliseconds from sending the final dot to receiving its reply, one per accepted message. */
  latencies: number[];
}

/** Reads SMTP replies (multi-line joined) from a connection, buffering what arrives early. */
class ReplyReader {
  #buf = "";
  readonly #chunk = new Uint8Array(16 * 1024);
  constructor(readonly conn: Deno.Conn) {}

  async reply(): Promise<string> {
    for (;;) {
      let start = 0;
      for (let end = this.#buf.indexOf("\r\n"); end >= 0; end = this.#buf.indexOf("\r\n", start)) {
        const line = this.#buf.slice(start, end);
        start = end + 2;
        if (line[3] !== "-") {
          const reply = this.#buf.slice(0, end);
          this.#buf = this.#buf.slice(start);
          return reply;
        }
      }
      const n = await this.conn.read(this.#chunk);
      if (n === null) throw new Error(`Read a reply: connection closed after ${JSON.stringify(this.#buf)}`);
      this.#buf += decoder.decode(this.#chunk.subarray(0, n));
    }
  }
}

/** A message body of about `size` bytes in 78-byte lines, followed by the final dot line. */
export function benchBody(size: number): Uint8Array {
  const line = "The quick brown fox jumps over the lazy dog, again and again, for the benchmark.\r\n".slice(
    -78,
  );
  return encoder.encode(line.repeat(Math.max(1, Math.ceil(size / line.length))) + ".\r\n");
}

/** Runs the load; resolves once every message has been answered. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const body = benchBody(opts.size);
  const result: LoadResult = { firstMail: 0, lastAccept: 0, accepted: 0, failed: 0, latencies: [] };
  let next = 0;
  let start = 0;
  const envelope = encoder.encode(`MAIL FROM:<${opts.sender}>\r\nRCPT TO:<${opts.recipient}>\r\nDATA\r\n`);

  const session = async (s: number) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: opts.port });
    const r = new ReplyReader(conn);
    try {
      expect(await r.reply(), "220");
      await write(conn, encoder.encode(`EHLO load${s}.bench.test\r\n`));
      expect(await r.reply(), "250");
      while (next < opts.messages) {
        const n = next++;
        if (n === 0) result.firstMail = start = performance.now();
        if (opts.rate !== undefined && n > 0) {
          const wait = start + (n * 1000) / opts.rate - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        await write(conn, envelope);
        const replies = [await r.reply(), await r.reply(), await r.reply()];
        if (!replies[0].startsWith("250") || !replies[1].startsWith("250") || !replies[2].startsWith("354")) {
          fail(replies.join(" | "));
          if (replies[2].startsWith("354")) await write(conn, encoder.encode(".\r\n")).then(() => r.reply());
          continue;
        }
        const head = encoder.encode(`Message-ID: <${n}@load.bench.test>\r\nSubject: bench ${n}\r\n\r\n`);
        const content = new Uint8Array(head.length + body.length);
        content.set(head);
        content.set(body, head.length);
        await write(conn, content);
        const sentDot = performance.now();
        const done = await r.reply();
        const now = performance.now();
        if (done.startsWith("250")) {
          result.accepted++;
          result.latencies.push(now - sentDot);
          result.lastAccept = now;
        } else fail(done);
      }
      await write(conn, encoder.encode("QUIT\r\n"));
      await r.reply().catch(() => "");
    } finally {
      conn.close();
    }
  };
  const fail = (reply: string) => {
    result.failed++;
    result.firstFailure ??= reply;
  };
  await Promise.all(Array.from({ length: opts.sessions }, (_, s) => session(s)));
  return result;
}

function expect(reply: string, code: string): void {
  if (!reply.startsWith(code)) {
    throw new Error(`Run the load: expected ${code}, got ${JSON.stringify(reply)}`);
  }
}

async function write(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/** The p-th percentile (0-100) of `values`, by nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
