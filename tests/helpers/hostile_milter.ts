// A misbehaving milter for the failure tests: it negotiates like a real one, then at a chosen command
// (by its code: 'M' MAIL, 'R' RCPT, 'B' body, 'E' end of message ...) it hangs, closes the connection or
// answers garbage; every other command gets CONTINUE (no reply to ABORT, QUIT and macros). Listens on
// 127.0.0.1, port 0. Counts the connections it had.

import { serveLoopback } from "./tcp_server.ts";
import { encodeFrame, FrameReader, uint32 } from "../../components/smtps/milter/protocol.ts";

export type Misbehaviour = "hang" | "close" | "garbage" | "bad_frame";

export interface HostileMilter {
  port: number;
  connections: number;
  close(): Promise<void>;
}

const NO_REPLY = new Set(["A", "Q", "D", "K"]);

export function startHostileMilter(at: string, how: Misbehaviour): HostileMilter {
  const state = {
    get port() {
      return server.port;
    },
    get connections() {
      return server.connections;
    },
    close: () => server.close(),
  };
  const serve = async (conn: Deno.Conn) => {
    const reader = new FrameReader();
    const buf = new Uint8Array(65536);
    const write = (b: Uint8Array) => conn.write(b).catch(() => 0);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        reader.push(buf.subarray(0, n));
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.code === "O") {
            await write(encodeFrame("O", uint32(6), uint32(0x1ff), uint32(0)));
            continue;
          }
          if (f.code === at) {
            if (how === "hang") continue;
            if (how === "close") return;
            if (how === "garbage") await write(encodeFrame("Z", "what?"));
            else await write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x61]));
            continue;
          }
          if (!NO_REPLY.has(f.code)) await write(encodeFrame("c"));
        }
      }
    } catch {
      // The client went away.
    }
  };
  const server = serveLoopback(serve);
  return state;
}
