// One client connection to an SMTP/LMTP server with deadlines: reads whole replies (reply_reader.ts) and
// writes commands and content over a byte stream (a plain Deno.Conn, or the TLS stream of tls.ts after
// STARTTLS). Every reply read and every write has its own deadline, given by the caller (timeouts.ts;
// io_timeout when none is given); the deadline covers the whole reply or the whole write, so a server that
// trickles bytes cannot stretch it. When it passes the socket is closed and the operation fails with a
// WireError of kind "timeout". abort() (graceful stop) closes the socket and fails the pending and every
// later operation.

import { MAX_REPLY_BYTES, type Reply, ReplyError, takeReply } from "./reply_reader.ts";

export type WireErrorKind = "timeout" | "closed" | "protocol" | "aborted";

/** A failure of the connection; `kind` tells the session how to describe it. */
export class WireError extends Error {
  override name = "WireError";
  constructor(readonly kind: WireErrorKind, message: string) {
    super(message);
  }
}

/** What a Wire talks over: a Deno.Conn satisfies it, and so does tls.ts's TlsStream. */
export interface ByteStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

const encoder = new TextEncoder();
const READ_SPACE = 16 * 1024;
const MIN_READ = 4 * 1024;

export class Wire {
  // Starts small (most replies are short) and grows up to what one maximal reply needs.
  #buf = new Uint8Array(READ_SPACE);
  #start = 0;
  #end = 0;
  #closed = false;
  #timedOut = false;
  #abortReason: string | undefined;
  #stream: ByteStream;

  constructor(stream: ByteStream, readonly ioTimeout: number) {
    this.#stream = stream;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The stream the wire talks over now. */
  get stream(): ByteStream {
    return this.#stream;
  }

  /** Reads one complete reply within `timeoutMs` (default io_timeout). */
  async readReply(timeoutMs = this.ioTimeout): Promise<Reply> {
    const buffered = this.#take();
    if (buffered) return buffered;
    return await this.#deadline(timeoutMs, async () => {
      while (true) {
        this.#makeRoom();
        const n = await this.#stream.read(this.#buf.subarray(this.#end));
        if (n === null) throw new WireError("closed", "connection closed by server");
        this.#end += n;
        const reply = this.#take();
        if (reply) return reply;
      }
    });
  }

  /** Writes all of `data` (a string is sent as UTF-8) within `timeoutMs` (default io_timeout). */
  async write(data: string | Uint8Array, timeoutMs = this.ioTimeout): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    await this.#deadline(timeoutMs, async () => {
      let off = 0;
      while (off < bytes.length) off += await this.#stream.write(bytes.subarray(off));
    });
  }

  /**
   * Empties the read buffer and returns how many bytes it held. After the 220 to STARTTLS nothing may
   * be buffered: bytes there were sent before the handshake and must never be read as part of the
   * encrypted session (command injection).
   */
  discardBuffered(): number {
    const n = this.#end - this.#start;
    this.#start = this.#end = 0;
    return n;
  }

  /** Replaces the stream (after a TLS handshake on the old one); the read buffer must be empty. */
  upgrade(stream: ByteStream): void {
    if (this.#end !== this.#start) throw new TypeError("Upgrade connection: unread bytes in the buffer");
    this.#stream = stream;
  }

  /** Fails the pending and every later operation with kind "aborted", and closes the socket. */
  abort(reason: string): void {
    this.#abortReason ??= reason;
    this.close();
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#stream.close();
    } catch {
      // already closed by the runtime
    }
  }

  #take(): Reply | undefined {
    if (this.#start === this.#end) return undefined;
    let got;
    try {
      got = takeReply(this.#buf, this.#start, this.#end);
    } catch (err) {
      if (err instanceof ReplyError) {
        this.close();
        throw new WireError("protocol", err.message);
      }
      throw err;
    }
    if (!got) return undefined;
    this.#start = got.next;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return got.reply;
  }

  #makeRoom(): void {
    if (this.#buf.length - this.#end >= MIN_READ) return;
    this.#buf.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
    if (this.#buf.length - this.#end >= MIN_READ) return;
    // Unparsed bytes never exceed MAX_REPLY_BYTES (takeReply throws first), so this always fits.
    const grown = new Uint8Array(Math.min(this.#buf.length * 2, MAX_REPLY_BYTES + READ_SPACE));
    grown.set(this.#buf.subarray(0, this.#end));
    this.#buf = grown;
  }

  async #deadline<T>(timeoutMs: number, op: () => Promise<T>): Promise<T> {
    this.#check();
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.close();
    }, Math.max(1, timeoutMs));
    try {
      return await op();
    } catch (err) {
      if (err instanceof WireError) throw err;
      this.#check();
      this.close();
      throw new WireError("closed", ioMessage(err));
    } finally {
      clearTimeout(timer);
    }
  }

  #check(): void {
    if (this.#abortReason !== undefined) throw new WireError("aborted", this.#abortReason);
    if (this.#timedOut) throw new WireError("timeout", "conversation timed out");
    if (this.#closed) throw new WireError("closed", "connection already closed");
  }
}

/** A short description of an I/O error: `Connection reset by peer` rather than the full Deno text. */
export function ioMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/ \(os error \d+\)/, "");
}
