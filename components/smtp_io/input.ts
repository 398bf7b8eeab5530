// The receiving side of one client connection as a pull source of byte chunks, with bounded buffering:
// the socket is paused while more than `highWater` bytes wait unread, so a client that sends faster than
// we consume (a pipelining flood, a fast DATA) never grows our memory. Waits have deadlines and can be
// interrupted (graceful stop) and capped by a second deadline that may move while a wait is under way (the
// shorter command timeout of stress mode, server.ts). detach() lets go of the socket (STARTTLS: what was not read yet is dropped
// and the socket handed to TLS). Receives: a socket's data/end/error events. Touches nothing else.

import type { Socket } from "node:net";

/** A wait for input ran past its deadline. */
export class InputTimeout extends Error {
  override name = "InputTimeout";
}

/** A wait for input was interrupted on purpose (the server is stopping). */
export class InputInterrupted extends Error {
  override name = "InputInterrupted";
}

export class SocketInput {
  readonly #socket: Socket;
  readonly #highWater: number;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #eof = false;
  #paused = false;
  #wake: (() => void) | undefined;
  #interrupt: ((err: Error) => void) | undefined;
  /** No wait lasts past this (ms since the epoch), whatever deadline it was given. */
  #cap = Infinity;
  /** Re-arms the timer of the wait under way (its deadline or the cap changed). */
  #rearm: (() => void) | undefined;
  readonly #onData: (b: Uint8Array) => void;
  readonly #onEnd: () => void;

  constructor(socket: Socket, highWater = 64 * 1024) {
    this.#socket = socket;
    this.#highWater = highWater;
    this.#onData = (b: Uint8Array) => {
      this.#chunks.push(b);
      this.#buffered += b.length;
      if (this.#buffered > this.#highWater && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
      this.#wake?.();
    };
    this.#onEnd = () => {
      this.#eof = true;
      this.#wake?.();
    };
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
    // A reset or a write to a closed peer: seen as end of input; the session winds down.
    socket.on("error", this.#onEnd);
  }

  /** Stops listening to the socket and drops every byte not taken yet; returns how many were dropped. */
  detach(): number {
    const socket = this.#socket;
    socket.off("data", this.#onData);
    socket.off("end", this.#onEnd);
    socket.off("close", this.#onEnd);
    socket.off("error", this.#onEnd);
    const dropped = this.#buffered;
    this.#chunks.length = 0;
    this.#buffered = 0;
    this.#eof = true;
    return dropped;
  }

  /** True when bytes are waiting that have not been taken yet. */
  get hasBuffered(): boolean {
    return this.#buffered > 0;
  }

  /** True once the peer has closed its side and every byte has been taken. */
  get ended(): boolean {
    return this.#eof && this.#buffered === 0;
  }

  /**
   * Takes the next chunk, waiting until `deadline` (ms since the epoch) at most. Resolves null at end of
   * input; rejects with InputTimeout or InputInterrupted.
   */
  async take(deadline: number): Promise<Uint8Array | null> {
    if (this.#chunks.length === 0 && !this.#eof) await this.#wait(deadline);
    const chunk = this.#chunks.shift();
    if (!chunk) return null;
    this.#buffered -= chunk.length;
    if (this.#paused && this.#buffered <= this.#highWater) {
      this.#paused = false;
      this.#socket.resume();
    }
    return chunk;
  }

  /** Puts back the unused tail of a chunk so the next take() returns it first. */
  unshift(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.unshift(bytes);
    this.#buffered += bytes.length;
  }

  /** Makes a wait in progress reject with InputInterrupted; returns false when nobody is waiting. */
  interrupt(why = "server is stopping"): boolean {
    if (!this.#interrupt) return false;
    this.#interrupt(new InputInterrupted(`Stop waiting for input: ${why}`));
    return true;
  }

  /** Caps every wait, the one under way included, at `deadline` (Infinity lifts the cap). */
  setCap(deadline: number): void {
    this.#cap = deadline;
    this.#rearm?.();
  }

  /** True while someone waits for input. */
  get waiting(): boolean {
    return this.#interrupt !== undefined;
  }

  #wait(deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        this.#interrupt = undefined;
        this.#rearm = undefined;
      };
      this.#rearm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          done();
          reject(new InputTimeout("Wait for input: deadline passed"));
        }, Math.max(0, Math.min(deadline, this.#cap) - Date.now()));
      };
      this.#rearm();
      this.#wake = () => {
        done();
        resolve();
      };
      this.#interrupt = (err) => {
        done();
        reject(err);
      };
    });
  }
}
