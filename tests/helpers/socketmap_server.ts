// A sendmail socketmap server for tests: answers netstring requests `<mapname> <key>` from a fixed table
// (`OK value` / `NOTFOUND`) on 127.0.0.1 or a unix socket. Options make it answer TEMP for some keys or
// stay silent for others (the client times out). Records every request.

export interface SocketMapServer {
  /** The TCP port (0 for a unix socket). */
  port: number;
  /** Every request received, as `<mapname> <key>`. */
  requests: string[];
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

export interface SocketMapOptions {
  /** Listen on this unix socket path instead of a TCP port. */
  path?: string;
  /** Keys answered `TEMP`. */
  temp?: string[];
  /** Keys never answered. */
  silent?: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Serves `maps` (map name -> key -> value; keys as the client sends them, lower case). */
export function startSocketMapServer(
  maps: Record<string, Record<string, string>>,
  opts: SocketMapOptions = {},
): SocketMapServer {
  const listener = opts.path
    ? Deno.listen({ transport: "unix", path: opts.path })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const server: SocketMapServer = {
    port: opts.path ? 0 : (listener.addr as Deno.NetAddr).port,
    requests: [],
    connections: 0,
    close: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await accepting;
    },
  };

  const answer = (request: string): string | undefined => {
    const space = request.indexOf(" ");
    const name = request.slice(0, space);
    const key = request.slice(space + 1);
    if (opts.silent?.includes(key)) return undefined;
    if (opts.temp?.includes(key)) return "TEMP map is busy";
    const value = maps[name]?.[key];
    return value === undefined ? "NOTFOUND " : `OK ${value}`;
  };

  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    let buf = "";
    const chunk = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) return;
        buf += decoder.decode(chunk.subarray(0, n));
        while (true) {
          const colon = buf.indexOf(":");
          if (colon < 0) break;
          const len = Number(buf.slice(0, colon));
          if (buf.length < colon + 1 + len + 1) break;
          const request = buf.slice(colon + 1, colon + 1 + len);
          buf = buf.slice(colon + 2 + len);
          server.requests.push(request);
          const out = answer(request);
          if (out === undefined) continue;
          const payload = encoder.encode(out);
          await conn.write(encoder.encode(`${payload.length}:${out},`));
        }
      }
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        server.connections++;
        serve(conn);
      }
    } catch {
      // listener closed
    }
  })();
  return server;
}
