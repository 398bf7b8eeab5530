// Tools for attacking an SMTP server over real TCP in robustness tests: a seeded pseudo-random generator
// (mulberry32, so a failing run can be repeated exactly), a raw client that writes whatever bytes it is
// given (whole, byte by byte, half-closed, reset) and keeps the server's transcript, and a checker that
// every reply in a transcript is well formed (RFC 5321 4.2: three digits, space or hyphen, text of
// printable ASCII, CRLF; one code per multi-line reply). Touches only its own loopback sockets.

import net from "node:net";

/** A deterministic generator of numbers in [0, 1) from a 32-bit seed (mulberry32). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random bytes, random printable text and random picks from one generator. */
export class Junk {
  constructor(readonly random: () => number) {}

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(0, 255);
    return out;
  }

  /** Printable ASCII (space to tilde), no line ends. */
  printable(length: number): string {
    let s = "";
    for (let i = 0; i < length; i++) s += String.fromCharCode(this.int(0x20, 0x7e));
    return s;
  }
}

const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");

/**
 * One raw client connection. Keeps every byte the server sent (as latin1 text) in `transcript`; reply()
 * takes the next complete reply from it, closedByServer() waits for the server's FIN or a reset.
 */
export class RawClient {
  transcript = "";
  #cursor = 0;
  #ended = false;
  #gone: Promise<void>;
  #waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (d: Uint8Array) => {
      this.transcript += latin1(d);
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", () => {
      this.#ended = true;
      this.#wake();
    });
    this.#gone = new Promise((resolve) => socket.once("close", () => resolve()));
    this.#gone.then(() => {
      this.#ended = true;
      this.#wake();
    });
  }

  /** Connects to 127.0.0.1:`port`. */
  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
      socket.once("connect", () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  /** The server closed its side (or the connection broke). */
  get ended(): boolean {
    return this.#ended;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #until(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
    return true;
  }

  /** Writes `data` in one write; resolves once it left (false when the connection is gone). */
  send(data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === "string" ? Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff) : data;
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) return resolve(false);
      this.socket.write(bytes, (err) => resolve(!err));
    });
  }

  /** Writes `data` one byte per write, waiting for each to leave. */
  async trickle(data: string): Promise<void> {
    for (const c of data) await this.send(c);
  }

  /** The next complete reply (lines joined with "\n"); "" when the server closed first or none came in time. */
  async reply(timeoutMs = 10_000): Promise<string> {
    let found: string | undefined;
    await this.#until(() => {
      found = this.#take();
      return found !== undefined || this.#ended;
    }, timeoutMs);
    return found ?? "";
  }

  #take(): string | undefined {
    const lines: string[] = [];
    let pos = this.#cursor;
    for (;;) {
      const nl = this.transcript.indexOf("\r\n", pos);
      if (nl < 0) return undefined;
      const line = this.transcript.slice(pos, nl);
      lines.push(line);
      pos = nl + 2;
      if (line[3] !== "-") {
        this.#cursor = pos;
        return lines.join("\n");
      }
    }
  }

  /** Sends a command line and returns its reply. */
  async command(line: string, timeoutMs?: number): Promise<string> {
    await this.send(line + "\r\n");
    return await this.reply(timeoutMs);
  }

  /** Waits until the server closed the connection; false when it had not after `timeoutMs`. */
  closedByServer(timeoutMs = 10_000): Promise<boolean> {
    return this.#until(() => this.#ended, timeoutMs);
  }

  /** Half-closes: our FIN goes out, the server's replies still come in. */
  end(): void {
    this.socket.end();
  }

  /** Drops the connection with a reset (RST), as a crashed client would. */
  async reset(): Promise<void> {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
    await this.#gone;
  }

  /** Closes the connection (FIN, then gone); idempotent. */
  async close(): Promise<void> {
    if (!this.socket.destroyed) this.socket.destroy();
    await this.#gone;
  }
}

/** A reply line as RFC 5321 4.2 has it: code, space or hyphen (or nothing), text of tab and printable ASCII. */
const REPLY_LINE = /^([2-5][0-9][0-9])(?:([ -])([\t\x20-\x7e]*))?$/;

/**
 * Checks that `transcript` is a sequence of well-formed replies and returns the code of each; throws an
 * Error naming the first offending line. With `partial`, an unterminated tail (the client hung up in the
 * middle of a reply) is ignored.
 */
export function replyCodes(transcript: string, partial = false): number[] {
  const lines = transcript.split("\r\n");
  const tail = lines.pop();
  if (tail !== "" && !partial) {
    throw new Error(`reply not ended by CRLF: ${JSON.stringify(tail?.slice(0, 80))}`);
  }
  const codes: number[] = [];
  let open: string | undefined;
  for (const line of lines) {
    const m = REPLY_LINE.exec(line);
    if (!m) throw new Error(`malformed reply line: ${JSON.stringify(line.slice(0, 120))}`);
    if (open !== undefined && m[1] !== open) {
      throw new Error(`reply code changed from ${open} to ${m[1]} inside one reply: ${JSON.stringify(line)}`);
    }
    if (m[2] === "-") open = m[1];
    else {
      open = undefined;
      codes.push(Number(m[1]));
    }
  }
  if (open !== undefined && !partial) throw new Error(`multi-line reply ${open} never ended`);
  return codes;
}
