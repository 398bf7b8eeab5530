// The connections to one Postfix-style policy service (SMTPD_POLICY_README): a request is attribute
// lines `name=value` ended by an empty line, the answer the same with `action=`. Connections are reused
// (one request at a time each) and kept idle for IDLE_MS, so sessions share them; a connection that
// fails, times out or answers garbage is dropped and PolicyFailure thrown. Touches: the service's socket.

import type { FilterSocket } from "../../../config/types.ts";

/** How long an idle connection is kept (Postfix smtpd_policy_service_max_idle). */
export const IDLE_MS = 300_000;
/** The longest answer accepted. */
const MAX_ANSWER = 64 * 1024;

export class PolicyFailure extends Error {
  override name = "PolicyFailure";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Idle {
  conn: Deno.Conn;
  timer: ReturnType<typeof setTimeout>;
}

export class PolicyClient {
  readonly name: string;
  readonly #socket: FilterSocket;
  readonly #timeout: number;
  readonly #idle: Idle[] = [];

  constructor(socket: FilterSocket, timeout: number) {
    this.#socket = socket;
    this.#timeout = timeout;
    this.name = socket.type === "inet" ? `inet:${socket.address}:${socket.port}` : `unix:${socket.path}`;
  }

  /** Sends one request and resolves its attributes; throws PolicyFailure. */
  async ask(attributes: Record<string, string>): Promise<Record<string, string>> {
    const request = Object.entries(attributes)
      .map(([k, v]) => `${k}=${v.replace(/[\r\n]/g, " ")}\n`).join("") + "\n";
    const deadline = Date.now() + this.#timeout;
    const reused = this.#idle.pop();
    if (reused) clearTimeout(reused.timer);
    let conn = reused?.conn;
    try {
      if (!conn) conn = await this.#connect();
      try {
        return this.#keep(conn, await exchange(conn, request, deadline));
      } catch (err) {
        if (!reused) throw err;
        // An idle connection the service closed meanwhile: once more on a new one.
        close(conn);
        conn = await this.#connect();
        return this.#keep(conn, await exchange(conn, request, deadline));
      }
    } catch (err) {
      if (conn) close(conn);
      if (err instanceof PolicyFailure) throw err;
      throw new PolicyFailure(`policy service ${this.name}: ${(err as Error).message}`);
    }
  }

  /** Closes every idle connection (the server stops). */
  close(): void {
    for (const i of this.#idle.splice(0)) {
      clearTimeout(i.timer);
      close(i.conn);
    }
  }

  #keep(conn: Deno.Conn, answer: Record<string, string>): Record<string, string> {
    const idle: Idle = {
      conn,
      timer: setTimeout(() => {
        this.#idle.splice(this.#idle.indexOf(idle), 1);
        close(conn);
      }, IDLE_MS),
    };
    Deno.unrefTimer(idle.timer as unknown as number);
    this.#idle.push(idle);
    return answer;
  }

  async #connect(): Promise<Deno.Conn> {
    const s = this.#socket;
    const signal = AbortSignal.timeout(this.#timeout);
    try {
      if (s.type === "unix") return await Deno.connect({ transport: "unix", path: s.path });
      const conn = await Deno.connect({ hostname: s.address, port: s.port, signal });
      conn.setNoDelay(true);
      return conn;
    } catch (err) {
      const why = signal.aborted ? `no connection within ${this.#timeout / 1000}s` : (err as Error).message;
      throw new PolicyFailure(`policy service ${this.name}: connect failed: ${why}`);
    }
  }
}

/** Writes the request and reads attribute lines up to the empty line, before `deadline`. */
async function exchange(conn: Deno.Conn, request: string, deadline: number): Promise<Record<string, string>> {
  const bytes = encoder.encode(request);
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
  let text = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const end = text.indexOf("\n\n");
    if (end >= 0) {
      if (end + 2 !== text.length) throw new PolicyFailure("answer followed by more bytes");
      return parseAttributes(text.slice(0, end));
    }
    if (text.length > MAX_ANSWER) throw new PolicyFailure("answer too long");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      conn.read(buf),
      new Promise<"timeout">((r) =>
        timer = setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now()))
      ),
    ]).finally(() => clearTimeout(timer));
    if (n === "timeout") throw new PolicyFailure("no answer within the timeout");
    if (n === null) throw new PolicyFailure("the service closed the connection");
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
}

function parseAttributes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) throw new PolicyFailure(`malformed answer line ${JSON.stringify(line.slice(0, 80))}`);
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  if (out.action === undefined) throw new PolicyFailure("answer without action=");
  return out;
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
