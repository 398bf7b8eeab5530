// Socket maps: lookups answered by a server speaking the sendmail socketmap protocol. Each request is a
// netstring `<len>:<mapname> <key>,`; each answer a netstring `OK <value>`, `NOTFOUND`, `TEMP <why>`,
// `TIMEOUT <why>` or `PERM <why>`. Connections (TCP or a unix domain socket) are kept open and reused,
// at most MAX_CONNECTIONS at once, one request at a time on each. A lookup that takes longer than the
// map's timeout, a closed connection or a TEMP/TIMEOUT/PERM answer rejects with MapTempError (the
// caller answers 4xx: a map problem must not bounce mail). Touches only the map's socket.

import type { MapSpec } from "../../config/types.ts";
import { DEFAULT_SOCKET_MAP_TIMEOUT } from "../../config/defaults.ts";
import { MapTempError, type SmarMap } from "./maps.ts";

const MAX_CONNECTIONS = 4;
/** The longest answer accepted (bytes of the netstring's payload). */
const MAX_ANSWER = 100_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes `text` as a netstring. */
export function netstring(text: string): Uint8Array {
  const payload = encoder.encode(text);
  return new Uint8Array([...encoder.encode(`${payload.length}:`), ...payload, 0x2c]);
}

/** One connection with the bytes read past the last answer. */
class Connection {
  #buf = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async #more(): Promise<void> {
    const chunk = new Uint8Array(4096);
    const n = await this.conn.read(chunk);
    if (n === null) throw new Error("connection closed by the server");
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
  }

  /** Reads one netstring's payload. */
  async readNetstring(): Promise<string> {
    let colon: number;
    while ((colon = this.#buf.indexOf(0x3a)) < 0) {
      if (this.#buf.length > 10) throw new Error("malformed answer: no length");
      await this.#more();
    }
    const head = decoder.decode(this.#buf.subarray(0, colon));
    if (!/^\d{1,10}$/.test(head) || Number(head) > MAX_ANSWER) {
      throw new Error(`malformed answer length ${head}`);
    }
    const len = Number(head);
    while (this.#buf.length < colon + 1 + len + 1) await this.#more();
    if (this.#buf[colon + 1 + len] !== 0x2c) throw new Error("malformed answer: no closing comma");
    const payload = decoder.decode(this.#buf.subarray(colon + 1, colon + 1 + len));
    this.#buf = this.#buf.slice(colon + 2 + len);
    return payload;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** Opens a socket map (connections are made on the first lookup). */
export function openSocketMap(spec: MapSpec): SmarMap {
  const timeoutMs = spec.timeout ?? DEFAULT_SOCKET_MAP_TIMEOUT;
  const mapname = spec.mapname ?? spec.name;
  const where = spec.path !== undefined ? `unix:${spec.path}` : `inet:${spec.address}:${spec.port}`;
  const idle: Connection[] = [];
  const busy = new Set<Connection>();
  const waiting: ((c: Connection | undefined) => void)[] = [];
  let closed = false;

  const connect = async (): Promise<Connection> => {
    const conn = spec.path !== undefined
      ? await Deno.connect({ transport: "unix", path: spec.path })
      : await Deno.connect({ hostname: spec.address!, port: spec.port! });
    return new Connection(conn);
  };
  let connecting = 0;
  /** An idle connection, a new one while under the limit, or the next one released. */
  const acquire = async (): Promise<Connection | undefined> => {
    const c = idle.pop();
    if (c) return c;
    if (busy.size + connecting < MAX_CONNECTIONS) {
      connecting++;
      try {
        return await connect();
      } finally {
        connecting--;
      }
    }
    return await new Promise((resolve) => waiting.push(resolve));
  };
  const release = (c: Connection, healthy: boolean) => {
    busy.delete(c);
    if (!healthy || closed) {
      c.close();
      const next = waiting.shift();
      if (next) acquire().then(next, () => next(undefined));
      return;
    }
    const next = waiting.shift();
    if (next) {
      busy.add(c);
      next(c);
    } else idle.push(c);
  };

  const ask = async (key: string): Promise<string | undefined> => {
    if (closed) throw new MapTempError(`Look up ${key} in socket map ${spec.name}: map closed`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    let current: Connection | undefined;
    const exchange = (async () => {
      const c = await acquire();
      if (!c) throw new Error("cannot connect");
      busy.add(c);
      current = c;
      let healthy = false;
      try {
        if (timedOut) {
          healthy = true; // unused: give it back
          return "";
        }
        await c.write(netstring(`${mapname} ${key}`));
        const answer = await c.readNetstring();
        healthy = !timedOut;
        return answer;
      } finally {
        current = undefined;
        release(c, healthy);
      }
    })();
    exchange.catch(() => {}); // settled by the race below; a late failure must not go unhandled
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        current?.close(); // ends the read in progress
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    deadline.catch(() => {});
    try {
      return interpret(await Promise.race([exchange, deadline]), key);
    } catch (err) {
      if (err instanceof MapTempError) throw err;
      throw new MapTempError(
        `Look up ${key} in socket map ${spec.name} (${where}): ${(err as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
    }
  };

  const interpret = (answer: string, key: string): string | undefined => {
    const space = answer.indexOf(" ");
    const status = (space < 0 ? answer : answer.slice(0, space)).toUpperCase();
    const rest = space < 0 ? "" : answer.slice(space + 1);
    if (status === "OK") return rest;
    if (status === "NOTFOUND") return undefined;
    throw new MapTempError(
      `Look up ${key} in socket map ${spec.name} (${where}): server answered ${status}${
        rest ? ` ${rest}` : ""
      }`,
    );
  };

  return {
    name: spec.name,
    source: where,
    get: (key) => ask(key.toLowerCase()),
    hasPrefix: () => undefined,
    close() {
      closed = true;
      for (const c of idle.splice(0)) c.close();
      for (const c of busy) c.close();
      for (const w of waiting.splice(0)) w(undefined);
    },
  };
}
