// qmgr's control socket: a unix socket (control_socket, in the queue directory by default) on which
// qmgrctl sends one JSON request per line and reads one JSON answer per line (control_protocol.ts). Who
// may connect is decided by the file's permissions: the socket is made 0600 (its owner only) and Deno
// lets a process reach it only with read, write and `unix:` net permission on its path. A stale socket
// file (a previous qmgr that died) is replaced. Bad input (not JSON, unknown command, an overlong line)
// gets an error answer; a client silent for IDLE_TIMEOUT is dropped; at most MAX_CLIENTS at once.
// Receives: requests from qmgrctl. May touch: the control socket file.

import { log } from "../util/log.ts";
import {
  type Command,
  COMMANDS,
  type ControlAnswer,
  type ControlRequest,
  LineSplitter,
} from "./control_protocol.ts";

export const IDLE_TIMEOUT = 60_000;
export const MAX_CLIENTS = 16;

export type ControlHandler = (command: Command, args: Record<string, unknown>) => Promise<ControlAnswer>;

const encoder = new TextEncoder();

/** Checks a request line; the request, or the error answer for it. */
export function parseRequest(line: string): ControlRequest | ControlAnswer {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: "Read the request: not a JSON object" };
  }
  if (typeof req !== "object" || req === null || Array.isArray(req)) {
    return { ok: false, error: "Read the request: not a JSON object" };
  }
  const { command, args } = req as { command?: unknown; args?: unknown };
  if (typeof command !== "string" || !COMMANDS.includes(command as Command)) {
    return { ok: false, error: `Read the request: unknown command ${JSON.stringify(command)}` };
  }
  if (args !== undefined && (typeof args !== "object" || args === null || Array.isArray(args))) {
    return { ok: false, error: "Read the request: args must be an object" };
  }
  return { command: command as Command, args: (args ?? {}) as Record<string, unknown> };
}

export class ControlServer {
  readonly path: string;
  readonly #listener: Deno.Listener;
  readonly #handler: ControlHandler;
  readonly #clients = new Set<Deno.Conn>();
  readonly #sessions = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  #closed = false;

  private constructor(path: string, listener: Deno.Listener, handler: ControlHandler) {
    this.path = path;
    this.#listener = listener;
    this.#handler = handler;
    this.#accepting = this.#accept();
  }

  /** Listens on `path` (replacing a stale socket file) and serves `handler`. */
  static async start(path: string, handler: ControlHandler): Promise<ControlServer> {
    try {
      const info = await Deno.lstat(path);
      if (!info.isSocket) {
        throw new Error(`Listen on the control socket ${path}: a file that is not a socket is there`);
      }
      await Deno.remove(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const listener = Deno.listen({ transport: "unix", path });
    try {
      await Deno.chmod(path, 0o600);
    } catch (err) {
      listener.close();
      throw err;
    }
    log.info("qmgr", `control socket listening on ${path}`);
    return new ControlServer(path, listener, handler);
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (this.#clients.size >= MAX_CLIENTS) {
          await this.#write(conn, {
            ok: false,
            error: "Serve the control socket: too many clients, try again",
          });
          conn.close();
          continue;
        }
        this.#clients.add(conn);
        const session = this.#serve(conn).finally(() => {
          this.#clients.delete(conn);
          this.#sessions.delete(session);
        });
        this.#sessions.add(session);
      }
    } catch (err) {
      if (!this.#closed) log.error("qmgr", `control socket failed: ${(err as Error).message}`);
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const lines = new LineSplitter();
    const buf = new Uint8Array(16 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => conn.close(), IDLE_TIMEOUT);
    };
    try {
      arm();
      while (!this.#closed) {
        const n = await conn.read(buf);
        if (n === null) break;
        let got: string[];
        try {
          got = lines.push(buf.subarray(0, n));
        } catch (err) {
          await this.#write(conn, { ok: false, error: (err as Error).message });
          break;
        }
        for (const line of got) {
          if (line.trim() === "") continue;
          const req = parseRequest(line);
          const answer = "command" in req ? await this.#handler(req.command, req.args ?? {}) : req;
          await this.#write(conn, answer);
        }
        arm();
      }
    } catch {
      // the client went away or was dropped; nothing to answer
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  async #write(conn: Deno.Conn, answer: ControlAnswer): Promise<void> {
    const bytes = encoder.encode(JSON.stringify(answer) + "\n");
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
  }

  /** Stops listening, drops every client and removes the socket file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const c of this.#clients) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await this.#accepting;
    await Promise.all(this.#sessions);
    await Deno.remove(this.path).catch(() => {});
  }
}
