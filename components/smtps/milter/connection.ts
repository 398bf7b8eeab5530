// One connection to one milter for one SMTP session: connects (TCP or a unix socket, within the timeout),
// negotiates options (the milter's version, the actions it may take, the steps it wants left out or not
// answered, and the macros it asks for per stage), then sends commands and reads each command's replies
// under the timeout (SMFIR_PROGRESS starts it again). Frames are written in order through one queue, so
// an ABORT sent without waiting never overtakes a command. Any failure (timeout, close, garbage) closes
// the connection and throws MilterFailure. Touches: the one socket.

import type { FilterSocket } from "../../../config/types.ts";
import {
  ALL_ACTIONS,
  Cmd,
  encodeFrame,
  type Frame,
  FrameReader,
  MACRO_STAGES,
  MILTER_VERSION,
  MilterProtocolError,
  OFFERED_STEPS,
  Reply,
  splitStrings,
  uint32,
} from "./protocol.ts";

/** A milter that failed: could not be reached, timed out, closed the connection or sent garbage. */
export class MilterFailure extends Error {
  override name = "MilterFailure";
  constructor(message: string, readonly kind: "connect" | "timeout" | "closed" | "garbage") {
    super(message);
  }
}

/** What option negotiation settled. */
export interface Negotiated {
  version: number;
  actions: number;
  steps: number;
  /** Macro names the milter asked for, by command code of the stage (SETSYMLIST). */
  macros: Map<string, string[]>;
}

/** The socket as operators write it in logs: inet:127.0.0.1:8891 or unix:/path. */
export function socketName(socket: FilterSocket): string {
  return socket.type === "inet" ? `inet:${socket.address}:${socket.port}` : `unix:${socket.path}`;
}

export class MilterConnection {
  readonly #conn: Deno.Conn;
  readonly #timeout: number;
  readonly #reader = new FrameReader();
  readonly #buf = new Uint8Array(64 * 1024);
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(conn: Deno.Conn, timeout: number) {
    this.#conn = conn;
    this.#timeout = timeout;
  }

  /** Connects within `timeout` ms; throws MilterFailure("connect"). */
  static async open(socket: FilterSocket, timeout: number): Promise<MilterConnection> {
    const signal = AbortSignal.timeout(timeout);
    try {
      if (socket.type === "unix") {
        return new MilterConnection(await Deno.connect({ transport: "unix", path: socket.path }), timeout);
      }
      const conn = await Deno.connect({ hostname: socket.address, port: socket.port, signal });
      conn.setNoDelay(true); // small frames, each waited for: Nagle would add a delayed ACK to each
      return new MilterConnection(conn, timeout);
    } catch (err) {
      const why = signal.aborted ? `no connection within ${timeout / 1000}s` : (err as Error).message;
      throw new MilterFailure(`connect to ${socketName(socket)} failed: ${why}`, "connect");
    }
  }

  /** Option negotiation: offers version 6, every action and the steps smtps allows. */
  async negotiate(): Promise<Negotiated> {
    await this.send(
      encodeFrame(Cmd.optneg, uint32(MILTER_VERSION), uint32(ALL_ACTIONS), uint32(OFFERED_STEPS)),
    );
    const frame = await this.read();
    if (frame.code !== Reply.optneg || frame.data.length < 12) {
      throw this.#garbage(`option negotiation answered with ${describe(frame)}`);
    }
    const view = new DataView(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
    const version = view.getUint32(0);
    const actions = view.getUint32(4);
    const steps = view.getUint32(8);
    if (version < 2 || version > MILTER_VERSION) throw this.#garbage(`unsupported milter version ${version}`);
    if ((actions & ~ALL_ACTIONS) !== 0) throw this.#garbage(`unknown actions 0x${actions.toString(16)}`);
    // Steps beyond those offered are the large-chunk bits (MDS_*), harmless: smaller chunks are sent.
    if ((steps & ~OFFERED_STEPS & 0x1fffff) !== 0) {
      throw this.#garbage(`steps not offered 0x${steps.toString(16)}`);
    }
    const macros = new Map<string, string[]>();
    let at = 12;
    while (at + 4 < frame.data.length) {
      const stage = view.getUint32(at);
      const end = frame.data.indexOf(0, at + 4);
      if (end < 0 || stage >= MACRO_STAGES.length) throw this.#garbage("a malformed macro list");
      const names = new TextDecoder().decode(frame.data.subarray(at + 4, end)).split(/[\s,]+/).filter(
        Boolean,
      );
      macros.set(MACRO_STAGES[stage], names.map((n) => n.replace(/^\{(.*)\}$/, "$1")));
      at = end + 1;
    }
    return { version, actions, steps, macros };
  }

  /** Queues a frame; resolves when it is written. A write failure closes the connection. */
  send(frame: Uint8Array): Promise<void> {
    const write = this.#writing.then(async () => {
      if (this.#closed) throw new MilterFailure("the connection is closed", "closed");
      try {
        let off = 0;
        while (off < frame.length) off += await this.#conn.write(frame.subarray(off));
      } catch (err) {
        this.close();
        throw new MilterFailure(`write failed: ${(err as Error).message}`, "closed");
      }
    });
    this.#writing = write.catch(() => {});
    return write;
  }

  /** Reads the next frame under the timeout. */
  async read(): Promise<Frame> {
    for (;;) {
      let frame: Frame | undefined;
      try {
        frame = this.#reader.next();
      } catch (err) {
        throw this.#garbage((err as Error).message);
      }
      if (frame) return frame;
      if (this.#closed) throw new MilterFailure("the connection is closed", "closed");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#timeout);
      });
      let n: number | null | "timeout";
      try {
        n = await Promise.race([this.#conn.read(this.#buf), timeout]);
      } catch (err) {
        this.close();
        throw new MilterFailure(`read failed: ${(err as Error).message}`, "closed");
      } finally {
        clearTimeout(timer);
      }
      if (n === "timeout") {
        this.close();
        throw new MilterFailure(`no reply within ${this.#timeout / 1000}s`, "timeout");
      }
      if (n === null) {
        this.close();
        throw new MilterFailure("the milter closed the connection", "closed");
      }
      this.#reader.push(this.#buf.subarray(0, n));
    }
  }

  /** Sends QUIT (without waiting) and closes. */
  async quit(): Promise<void> {
    if (this.#closed) return;
    await this.send(encodeFrame(Cmd.quit)).catch(() => {});
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already gone.
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  #garbage(what: string): MilterFailure {
    this.close();
    return new MilterFailure(`protocol error: ${what}`, "garbage");
  }
}

/** A frame for a log line: its code and length. */
export function describe(frame: Frame): string {
  const printable = /^[\x21-\x7e]$/.test(frame.code)
    ? `'${frame.code}'`
    : `0x${frame.code.charCodeAt(0).toString(16)}`;
  return `reply ${printable} (${frame.data.length} bytes)`;
}

export { MilterProtocolError, splitStrings };
