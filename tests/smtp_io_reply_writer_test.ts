// ReplyWriter over a real loopback connection: replies to a client that does not read wait for the socket
// to drain, and a client that resets while they wait ends the wait at once (the session must not hold its
// slot until the write timeout), while a client that just never reads gets InputTimeout.

import assert from "node:assert/strict";
import { createConnection, createServer, type Socket } from "node:net";
import { InputTimeout } from "../components/smtp_io/input.ts";
import { ReplyWriter } from "../components/smtp_io/reply_writer.ts";

/** A connected pair on 127.0.0.1: the server's socket and the client's (which never reads). */
async function pair(): Promise<{ server: Socket; client: Socket; close: () => Promise<void> }> {
  const listener = createServer();
  const accepted = new Promise<Socket>((resolve) => listener.once("connection", resolve));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as { port: number };
  const client = createConnection({ port, host: "127.0.0.1" });
  client.pause();
  await new Promise<void>((resolve) => client.once("connect", () => resolve()));
  const server = await accepted;
  server.on("error", () => {}); // the reset shows here; sessions handle it the same way
  const close = async () => {
    for (const s of [client, server]) {
      if (!s.destroyed) {
        const closed = new Promise((r) => s.once("close", r));
        s.destroy();
        await closed;
      }
    }
    await new Promise((r) => listener.close(r));
  };
  return { server, client, close };
}

/**
 * Flushes replies until the client's receive buffer and ours are full: the flush() returned is still
 * waiting for a drain 100 ms after it started.
 */
async function fill(writer: ReplyWriter): Promise<{ pending: Promise<void> }> {
  const line = "250 2.1.0 Ok\r\n".repeat(4096);
  for (let i = 0; i < 10_000; i++) {
    writer.push(line);
    const pending = writer.flush();
    let waiting = true;
    pending.then(() => waiting = false, () => waiting = false);
    await new Promise((r) => setTimeout(r, writer.socket.writableNeedDrain ? 100 : 0));
    if (waiting) return { pending };
  }
  throw new Error("the socket never filled up");
}

Deno.test("ReplyWriter.flush() ends its wait for a drain when the client resets", async () => {
  const { server, client, close } = await pair();
  try {
    const writer = new ReplyWriter(server, 60_000);
    const { pending } = await fill(writer); // waits while the client does not read
    const closed = new Promise((r) => server.once("close", r));
    client.resetAndDestroy();
    await closed;
    await pending; // resolves: the socket is gone, the next read sees the end of input
  } finally {
    await close();
  }
});

Deno.test("ReplyWriter.flush() rejects with InputTimeout when the client never reads", async () => {
  const { server, close } = await pair();
  try {
    const writer = new ReplyWriter(server, 300);
    await assert.rejects((await fill(writer)).pending, InputTimeout);
  } finally {
    await close();
  }
});
