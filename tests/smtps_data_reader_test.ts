// The byte-level readers of smtps: the DATA decoder (dot-unstuffing, CRLF.CRLF only) under every way of
// cutting the input into chunks, and the command line reader (limits, pipelined remainders), fed through a
// SocketInput over a stand-in socket.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { DotDecoder } from "../components/smtps/data_reader.ts";
import { InputInterrupted, InputTimeout, SocketInput } from "../components/smtps/input.ts";
import { readLine } from "../components/smtps/line_reader.ts";

// One byte per character (latin1), so any byte value can be written in a case table.
const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const dec = (b: Uint8Array) => String.fromCharCode(...b);

/** Feeds `chunks` to a fresh decoder; returns the content and what followed the end marker (or null). */
function decode(chunks: Uint8Array[]): { content: string; rest: string | null } {
  const d = new DotDecoder();
  const parts: Uint8Array[] = [];
  for (let i = 0; i < chunks.length; i++) {
    const { runs, end } = d.feed(chunks[i]);
    // Runs are only valid until the next call: copy them as a sink would.
    for (const r of runs) parts.push(r.slice());
    if (end >= 0) {
      const rest = [chunks[i].subarray(end), ...chunks.slice(i + 1)].map(dec).join("");
      return { content: parts.map(dec).join(""), rest };
    }
  }
  return { content: parts.map(dec).join(""), rest: null };
}

/** Every way to cut `s` into one, two or three chunks, plus one byte at a time. */
function chunkings(s: string): Uint8Array[][] {
  const b = enc(s);
  const out: Uint8Array[][] = [[b], Array.from(b, (x) => new Uint8Array([x]))];
  for (let i = 1; i < b.length; i++) {
    out.push([b.subarray(0, i), b.subarray(i)]);
    for (let j = i + 1; j < b.length; j++) out.push([b.subarray(0, i), b.subarray(i, j), b.subarray(j)]);
  }
  return out;
}

Deno.test("DotDecoder removes dot-stuffing and ends only at CRLF.CRLF, however the input is chunked", async (t) => {
  const cases: [label: string, input: string, content: string, rest: string | null][] = [
    ["an empty message", ".\r\n", "", ""],
    ["one line", "Hello\r\n.\r\n", "Hello\r\n", ""],
    ["a stuffed dot at a line start", "..dot\r\n.\r\n", ".dot\r\n", ""],
    ["a line of two dots is one dot", "a\r\n..\r\n.\r\n", "a\r\n.\r\n", ""],
    ["a dot inside a line stays", "a.b\r\n.\r\n", "a.b\r\n", ""],
    ["a lone dot followed by text drops the dot", "a\r\n.x\r\n.\r\n", "a\r\nx\r\n", ""],
    ["CR LF kept as received, bare LF kept too", "a\nb\r\nc\r\n.\r\n", "a\nb\r\nc\r\n", ""],
    ["LF.LF does not end the data", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", ""],
    ["CR.CR does not end the data", "a\r.\rb\r\n.\r\n", "a\r.\rb\r\n", ""],
    ["CRLF.LF does not end the data (the dot is unstuffed)", "a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", ""],
    ["CRLF.CR without LF does not end the data", "a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", ""],
    ["LF.CRLF does not end the data", "a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", ""],
    ["CR CR LF then the end", "a\r\r\n.\r\n", "a\r\r\n", ""],
    ["the end marker with bytes after it", "a\r\n.\r\nQUIT\r\n", "a\r\n", "QUIT\r\n"],
    ["no end marker yet", "a\r\nb", "a\r\nb", null],
    ["a dot as the last byte so far", "a\r\n.", "a\r\n", null],
    ["binary bytes pass through", "\x00\xff\r\n.\r\n", "\x00\xff\r\n", ""],
  ];
  for (const [label, input, content, rest] of cases) {
    await t.step(label, () => {
      for (const chunks of chunkings(input)) {
        const cut = chunks.map(dec).join("|");
        assert.deepEqual(decode(chunks), { content, rest }, `chunks ${JSON.stringify(cut)}`);
      }
    });
  }
});

/** A stand-in for a node:net socket: emits what the test pushes, records pause/resume. */
class FakeSocket extends EventEmitter {
  paused = false;
  pause() {
    this.paused = true;
    return this;
  }
  resume() {
    this.paused = false;
    return this;
  }
  push(s: string) {
    this.emit("data", enc(s));
  }
}

function input(highWater?: number): { socket: FakeSocket; input: SocketInput } {
  const socket = new FakeSocket();
  return { socket, input: new SocketInput(socket as unknown as Socket, highWater) };
}

const soon = () => Date.now() + 5_000;

Deno.test("readLine() returns pipelined command lines one by one", async () => {
  const { socket, input: inp } = input();
  socket.push("EHLO a\r\nMAIL FROM:<x@y>\r\nRC");
  assert.deepEqual(await readLine(inp, soon()), { kind: "line", text: "EHLO a" });
  assert.deepEqual(await readLine(inp, soon()), { kind: "line", text: "MAIL FROM:<x@y>" });
  const third = readLine(inp, soon());
  socket.push("PT TO:<z@w>\n");
  assert.deepEqual(await third, { kind: "line", text: "RCPT TO:<z@w>" }, "a bare LF ends a command line too");
  socket.emit("end");
  assert.deepEqual(await readLine(inp, soon()), { kind: "eof" });
});

Deno.test("readLine() limits lines to 512 octets with their CRLF and discards longer ones to the LF", async (t) => {
  await t.step("510 octets + CRLF is a line", async () => {
    const { socket, input: inp } = input();
    socket.push("N".repeat(510) + "\r\n");
    assert.deepEqual(await readLine(inp, soon()), { kind: "line", text: "N".repeat(510) });
  });
  await t.step("511 octets + CRLF is too long, and the next line is intact", async () => {
    const { socket, input: inp } = input();
    socket.push("N".repeat(511) + "\r\nNOOP\r\n");
    assert.deepEqual(await readLine(inp, soon()), { kind: "too_long" });
    assert.deepEqual(await readLine(inp, soon()), { kind: "line", text: "NOOP" });
  });
  await t.step("a megabyte without LF is discarded chunk by chunk", async () => {
    const { socket, input: inp } = input(1024);
    const pending = readLine(inp, soon());
    for (let i = 0; i < 256; i++) socket.push("x".repeat(4096));
    socket.push("\r\nQUIT\r\n");
    assert.deepEqual(await pending, { kind: "too_long" });
    assert.deepEqual(await readLine(inp, soon()), { kind: "line", text: "QUIT" });
  });
});

Deno.test("SocketInput pauses the socket above its high-water mark and resumes when drained", async () => {
  const { socket, input: inp } = input(10);
  socket.push("12345");
  assert.equal(socket.paused, false);
  socket.push("678901");
  assert.equal(socket.paused, true);
  await inp.take(soon());
  await inp.take(soon());
  assert.equal(socket.paused, false);
  assert.equal(inp.hasBuffered, false);
});

Deno.test("SocketInput waits end with a timeout or an interruption", async (t) => {
  await t.step("a deadline in the past times out", async () => {
    const { input: inp } = input();
    await assert.rejects(readLine(inp, Date.now()), InputTimeout);
  });
  await t.step("interrupt() rejects the waiting reader", async () => {
    const { input: inp } = input();
    const pending = readLine(inp, soon());
    assert.equal(inp.interrupt(), true);
    await assert.rejects(pending, InputInterrupted);
    assert.equal(inp.interrupt(), false, "nobody is waiting any more");
  });
});
