// smtpc's deadlines (RFC 5321 section 4.5.3.2, scaled by io_timeout), and a server that stops reading
// the content: each data block has its own deadline, so the delivery ends (temp) instead of hanging.

import { replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import { deadlines } from "../components/smtpc/timeouts.ts";
import { freePort } from "./helpers/harness.ts";
import { statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

Deno.test("deadlines() gives the RFC 5321 values for io_timeout 5m and scales them with it", async (t) => {
  const MIN = 60_000;
  const cases: [string, number, Partial<ReturnType<typeof deadlines>>][] = [
    ["io_timeout 5m: the RFC values", 5 * MIN, {
      greeting: 5 * MIN,
      mail: 5 * MIN,
      rcpt: 5 * MIN,
      data: 2 * MIN,
      block: 3 * MIN,
      dot: 10 * MIN,
      command: 5 * MIN,
      connect: 30_000,
      quit: 2_000,
    }],
    ["io_timeout 1m: a fifth", MIN, {
      greeting: MIN,
      data: 24_000,
      block: 36_000,
      dot: 2 * MIN,
      connect: 30_000,
    }],
    ["io_timeout 10m: twice", 10 * MIN, { mail: 10 * MIN, data: 4 * MIN, dot: 20 * MIN }],
    ["io_timeout 500ms: short connect and QUIT too", 500, {
      greeting: 500,
      data: 200,
      connect: 500,
      quit: 500,
    }],
  ];
  for (const [label, io, want] of cases) {
    await t.step(label, () => {
      const got = deadlines(io);
      for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof typeof got], v, k);
    });
  }
});

/** A server that answers up to 354 and then never reads again (a full receive window). */
function stuckServer(port: number): { close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const conns = new Set<Deno.Conn>();
  const enc = new TextEncoder();
  const loop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        let text = "";
        await conn.write(enc.encode("220 stuck.test\r\n"));
        while (true) {
          const n = await conn.read(buf);
          if (n === null) return;
          text += new TextDecoder().decode(buf.subarray(0, n));
          let lf;
          while ((lf = text.indexOf("\r\n")) >= 0) {
            const verb = text.slice(0, 4).toUpperCase();
            text = text.slice(lf + 2);
            if (verb === "DATA") {
              await conn.write(enc.encode("354 go\r\n"));
              return; // and read no more
            }
            await conn.write(enc.encode(verb === "EHLO" ? "250 stuck.test\r\n" : "250 Ok\r\n"));
          }
        }
      })().catch(() => {});
    }
  })().catch(() => {});
  return {
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await loop;
    },
  };
}

Deno.test("a server that stops reading the content is given up at the data block deadline", async () => {
  const port = freePort();
  const server = stuckServer(port);
  try {
    await withSmtpc({ ports: [port], ioTimeout: 500 }, async ({ deliver }) => {
      // Far more than the socket buffers hold, so a write must wait for the server.
      const line = "x".repeat(998) + "\r\n";
      const r = await deliver(line.repeat(16 * 1024));
      assert.deepEqual(statuses(r), ["0:temp"]);
      assert.match(replyLine(r.results[0].reply), /timed out while sending message content$/);
    });
  } finally {
    await server.close();
  }
});
