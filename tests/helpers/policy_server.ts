// An in-test Postfix policy server: answers each request (attribute lines ended by an empty line) with
// the action `decide` returns for its attributes, records every request, and can misbehave (hang, close,
// answer garbage) for the failure tests. Listens on 127.0.0.1, port 0; counts its connections.

import { serveLoopback } from "./tcp_server.ts";

export interface PolicyServer {
  port: number;
  requests: Record<string, string>[];
  connections: number;
  close(): Promise<void>;
}

export type Decide = (request: Record<string, string>) => string | "hang" | "close" | "garbage";

export function startPolicyServer(decide: Decide): PolicyServer {
  const state: PolicyServer = {
    get port() {
      return server.port;
    },
    requests: [],
    get connections() {
      return server.connections;
    },
    close: () => server.close(),
  };
  const encoder = new TextEncoder();
  const serve = async (conn: Deno.Conn) => {
    const decoder = new TextDecoder();
    let text = "";
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
        for (let end = text.indexOf("\n\n"); end >= 0; end = text.indexOf("\n\n")) {
          const request = Object.fromEntries(
            text.slice(0, end).split("\n").map((
              l,
            ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
          );
          text = text.slice(end + 2);
          state.requests.push(request);
          const action = decide(request);
          if (action === "hang") continue;
          if (action === "close") return;
          await conn.write(
            encoder.encode(action === "garbage" ? "what is this\n\n" : `action=${action}\n\n`),
          );
        }
      }
    } catch {
      // The client went away.
    }
  };
  const server = serveLoopback(serve);
  return state;
}
