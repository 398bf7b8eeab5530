// A TCP server on 127.0.0.1, port 0, for the in-test filters (milters, policy servers): accepts
// connections, runs `handle` on each, counts them, and on close() stops accepting, closes every
// connection still open and waits for their handlers. A handler's error means its client went away.

export interface LoopbackServer {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export function serveLoopback(handle: (conn: Deno.Conn) => Promise<void>): LoopbackServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let connections = 0;
  const closeConn = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const serving = (async () => {
    const sessions: Promise<void>[] = [];
    try {
      for await (const conn of listener) {
        connections++;
        conns.add(conn);
        sessions.push(
          handle(conn).catch(() => {}).finally(() => {
            conns.delete(conn);
            closeConn(conn);
          }),
        );
      }
    } catch {
      // the listener was closed
    }
    await Promise.all(sessions);
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return connections;
    },
    async close() {
      listener.close();
      for (const c of conns) closeConn(c);
      await serving;
    },
  };
}
