// The server-side byte readers (components/smtp_io/, used by smtps and the lda): the DATA decoder
// (dot-unstuffing, CRLF.CRLF only; strict about bare CR and LF, or lenient for trusted clients) under every
// way of cutting the input into chunks, the BDAT chunk reader, and the command line reader (limits, bare
// line ends, UTF-8, pipelined remainders), fed through a SocketInput over a stand-in socket.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { dataDeadline, DotDecoder, MIN_DATA_RATE, readChunk } from "../components/smtp_io/data_reader.ts";
import { InputInterrupted, InputTimeout, SocketInput } from "../components/smtp_io/input.ts";
import { readLine } from "../components/smtp_io/line_reader.ts";

// One byte per character (latin1), so any byte value can be written in a case table.
const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const dec = (b: Uint8Array) => String.fromCharCode(...b);

/**
 * Feeds `chunks` to a fresh decoder; returns the content and what followed the end marker (or null), or
 * "bare" when a strict decoder stopped at a bare CR or LF.
 */
function decode(chunks: Uint8Array[], strict = false): { content: string; rest: string | null } | "bare" {
  const d = new DotDecoder(strict);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < chunks.length; i++) {
    const { runs, end, bareNewline } = d.feed(chunks[i]);
    if (bareNewline) return "bare";
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

Deno.test("DotDecoder (lenient) removes dot-stuffing and ends only at CRLF.CRLF, however the input is chunked", async (t) => {
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

Deno.test("DotDecoder (strict) stops at any bare CR or LF, however the input is chunked", async (t) => {
  const SMUGGLED = "MAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nevil\r\n.\r\n";
  const bare: [label: string, input: string][] = [
    ["LF.LF", `a\r\n\n.\n${SMUGGLED}`],
    ["LF.CRLF", `a\n.\r\n${SMUGGLED}`],
    ["CRLF.LF", `a\r\n.\n${SMUGGLED}`],
    ["CR.CR", `a\r.\r${SMUGGLED}`],
    ["CR.CRLF", `a\r.\r\n${SMUGGLED}`],
    ["CRLF.CR", `a\r\n.\r${SMUGGLED}`],
    ["CR.LF", `a\r.\n${SMUGGLED}`],
    ["LF.CR", `a\n.\r${SMUGGLED}`],
    ["a bare LF inside a line", "a\nb\r\n.\r\n"],
    ["a bare CR inside a line", "a\rb\r\n.\r\n"],
    ["a bare LF at a line start", "a\r\n\nb\r\n.\r\n"],
    ["CR CR LF", "a\r\r\n.\r\n"],
  ];
  for (const [label, input] of bare) {
    await t.step(`${label}: stops`, () => {
      for (const chunks of chunkings(input)) {
        assert.equal(decode(chunks, true), "bare", JSON.stringify(input));
      }
    });
  }
  await t.step("CRLF NUL . CRLF is content: the message ends only at the real CRLF.CRLF", () => {
    const input = `a\r\n\x00.\r\n${SMUGGLED}`;
    for (const chunks of chunkings(input)) {
      assert.deepEqual(decode(chunks, true), {
        content: `a\r\n\x00.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nevil\r\n`,
        rest: "",
      });
    }
  });
  await t.step("clean content with stuffing decodes as in lenient mode", () => {
    for (const chunks of chunkings("a\r\n..b\r\n.\r\nQUIT\r\n")) {
      assert.deepEqual(decode(chunks, true), { content: "a\r\n.b\r\n", rest: "QUIT\r\n" });
    }
  });
});

Deno.test("dataDeadline() gives io_timeout for the block, plus time for what a slow client sent", () => {
  assert.equal(dataDeadline(1000, 5000, 0), 6000);
  assert.equal(dataDeadline(1000, 5000, MIN_DATA_RATE), 7000);
  assert.equal(dataDeadline(1000, 5000, 10), 6000, "a trickle earns nothing worth having");
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
  socket.push("PT TO:<z@w>\r\n");
  assert.deepEqual(await third, { kind: "line", text: "RCPT TO:<z@w>" });
  socket.emit("end");
  assert.deepEqual(await readLine(inp, soon()), { kind: "eof" });
});

Deno.test("readLine() refuses bare line ends unless lenient, and invalid UTF-8", async (t) => {
  const cases: [label: string, text: string, strict: boolean, want: unknown][] = [
    ["a bare LF ends nothing in strict mode", "NOOP\n", true, { kind: "bare_newline" }],
    ["a bare CR inside the line", "NO\rOP\r\n", true, { kind: "bare_newline" }],
    ["a bare LF ends a line when lenient", "NOOP\n", false, { kind: "line", text: "NOOP" }],
    ["a bare CR stays when lenient", "NO\rOP\r\n", false, { kind: "line", text: "NO\rOP" }],
    ["UTF-8 is decoded", "RCPT TO:<j\xc3\xb6rg@x.example>\r\n", true, {
      kind: "line",
      text: "RCPT TO:<jörg@x.example>",
    }],
    ["invalid UTF-8 is refused", "RCPT TO:<j\xf6rg@x.example>\r\n", true, { kind: "bad_utf8" }],
  ];
  for (const [label, text, strict, want] of cases) {
    await t.step(label, async () => {
      const { socket, input: inp } = input();
      socket.push(text);
      assert.deepEqual(await readLine(inp, soon(), strict), want);
    });
  }
});

Deno.test("readChunk() reads exactly the chunk's size and leaves the rest", async (t) => {
  await t.step("across several socket chunks", async () => {
    const { socket, input: inp } = input();
    const got: string[] = [];
    const pending = readChunk(inp, 10, { write: (b) => void got.push(dec(b)) }, 5_000);
    socket.push("abc");
    socket.push("defghijQUIT\r\n");
    assert.equal(await pending, true);
    assert.equal(got.join(""), "abcdefghij");
    assert.deepEqual(await readLine(inp, soon()), { kind: "line", text: "QUIT" });
  });
  await t.step("discarded without a sink; false when the client leaves first", async () => {
    const { socket, input: inp } = input();
    const pending = readChunk(inp, 10, undefined, 5_000);
    socket.push("abc");
    socket.emit("end");
    assert.equal(await pending, false);
  });
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
