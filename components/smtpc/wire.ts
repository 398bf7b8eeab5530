// One client connection to an SMTP/LMTP server with deadlines: reads whole replies (reply_reader.ts) and
// writes commands and content. Every read of a reply and every write has its own deadline (io_timeout);
// when it passes the socket is closed and the operation fails with a WireError of kind "timeout".
// abort() (graceful stop) closes the socket and fails the pending and every later operation.

import { MAX_REPLY_BYTES, type Reply, ReplyError, takeReply } from "./reply_reader.ts";

export type WireErrorKind = "timeout" | "closed" | "protocol" | "aborted";

/** A failure of the connection; `kind` tells the session how to describe it. */
export class WireError extends Error {
  override name = "WireError";
  constructor(readonly kind: WireErrorKind, message: string) {
    super(message);
  }
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

  constructor(readonly conn: Deno.Conn, readonly ioTimeout: number) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** Reads one complete reply within `timeoutMs` (default io_timeout). */
  async readReply(timeoutMs = this.ioTimeout): Promise<Reply> {
    const buffered = this.#take();
    if (buffered) return buffered;
    return await this.#deadline(timeoutMs, async () => {
      while (true) {
        this.#makeRoom();
        const n = await this.conn.read(this.#buf.subarray(this.#end));
        if (n === null) throw new WireError("closed", "connection closed by server");
        this.#end += n;
        const reply = this.#take();
        if (reply) return reply;
      }
    });
  }

  /** Writes all of `data` (a string is sent as UTF-8) within io_timeout. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    await this.#deadline(this.ioTimeout, async () => {
      let off = 0;
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    });
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
      this.conn.close();
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
    }, timeoutMs);
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
