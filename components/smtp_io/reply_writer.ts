// Replies on their way to one client: queued as text and written in one go by flush(), so a pipelined
// group of commands (RFC 2920; LMTP requires PIPELINING) gets its replies in one write. The session
// flushes before every wait for input, and as soon as `full` says the queue has grown too large while
// pipelined input keeps coming, so a client that sends without reading never makes us hold its replies
// unboundedly. A write the client does not read within the timeout rejects with InputTimeout. Touches
// only its socket.

import type { Socket } from "node:net";
import { InputTimeout } from "./input.ts";

/** Replies held back for batching are flushed at this size even while pipelined input keeps coming. */
export const MAX_BATCHED_REPLIES = 8 * 1024;

export class ReplyWriter {
  /** The socket replies go to (a session on STARTTLS moves on to the TLS socket). */
  socket: Socket;
  readonly #timeoutMs: number;
  #out: string[] = [];
  #length = 0;

  constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket;
    this.#timeoutMs = timeoutMs;
  }

  /** Queues formatted reply text; it goes out at the next flush. */
  push(text: string): void {
    this.#out.push(text);
    this.#length += text.length;
  }

  /** True when the queued replies should go out now, whether or not more input is waiting. */
  get full(): boolean {
    return this.#length > MAX_BATCHED_REPLIES;
  }

  /** Writes the queued replies; waits for the socket to drain if the client does not read. */
  async flush(): Promise<void> {
    if (this.#out.length === 0) return;
    const text = this.#out.join("");
    this.#out = [];
    this.#length = 0;
    const socket = this.socket;
    if (!socket.writable || socket.write(text)) return;
    // A client that resets while we wait never drains: its close ends the wait too (the next read then
    // sees the end of input), or the session would hold its slot until the timeout.
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      const timer = setTimeout(() => {
        socket.off("drain", done);
        socket.off("close", done);
        reject(new InputTimeout("Write reply: client does not read"));
      }, this.#timeoutMs);
      socket.once("drain", done);
      socket.once("close", done);
    });
  }
}
