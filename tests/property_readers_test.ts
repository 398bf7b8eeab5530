// Property tests (npm:fast-check) of the socket-level readers smtps runs DATA and BDAT with: readData()
// and readChunk() over a SocketInput fed in arbitrary pieces (a stand-in socket: an EventEmitter with
// pause/resume). Whatever the pieces, DATA yields the content before CRLF.CRLF and leaves what follows
// (the next pipelined command) unread; BDAT takes exactly its size and leaves the rest; a client gone
// early is "eof" / false, never a hang or a crash.

import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import fc from "fast-check";
import { SocketInput } from "../components/smtp_io/input.ts";
import { readChunk, readData } from "../components/smtp_io/data_reader.ts";

class FakeSocket extends EventEmitter {
  pause() {}
  resume() {}
}

/** A SocketInput that receives `pieces` (then the end of input when `end`), as a socket would. */
function inputOf(pieces: Uint8Array[], end: boolean): SocketInput {
  const socket = new FakeSocket();
  const input = new SocketInput(socket as unknown as Socket);
  for (const p of pieces) socket.emit("data", p);
  if (end) socket.emit("end");
  return input;
}

function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const points = [...new Set(at.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...points, bytes.length]) {
    if (c > prev) out.push(bytes.slice(prev, c));
    prev = Math.max(prev, c);
  }
  return out;
}

/** Everything left in `input` until its end. */
async function rest(input: SocketInput): Promise<string> {
  let text = "";
  for (let c = await input.take(Date.now() + 1000); c !== null; c = await input.take(Date.now() + 1000)) {
    text += new TextDecoder().decode(c);
  }
  return text;
}

const line = fc.string({ unit: fc.constantFrom(..."ab .\t:xyz".split("")), maxLength: 12 });
const cuts = fc.array(fc.nat(500), { maxLength: 8 });

Deno.test("readData() reads the content up to CRLF.CRLF and leaves the next command unread, in any pieces", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 8 }), line, cuts, async (lines, next, at) => {
      const content = lines.map((l) => `${l}\r\n`).join("");
      const stuffed = content.replace(/^\./gm, "..");
      const wire = new TextEncoder().encode(`${stuffed}.\r\n${next}`);
      const input = inputOf(cut(wire, at), true);
      let got = "";
      const sink = { write: (b: Uint8Array) => void (got += new TextDecoder().decode(b)) };
      assert.equal(await readData(input, sink, 5_000), "end");
      assert.equal(got, content);
      assert.equal(await rest(input), next);
    }),
    { numRuns: 200 },
  );
});

Deno.test("readData() says eof when the client leaves before the end marker", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(line, { maxLength: 5 }), cuts, async (lines, at) => {
      const wire = new TextEncoder().encode(lines.map((l) => `${l.replace(/^\./, "x")}\r\n`).join(""));
      const result = await readData(inputOf(cut(wire, at), true), { write: () => {} }, 5_000);
      assert.equal(result, "eof");
    }),
    { numRuns: 100 },
  );
});

Deno.test("readChunk() takes exactly a BDAT chunk's size and leaves the rest, in any pieces", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 40 }),
      cuts,
      fc.boolean(),
      async (chunk, after, at, keep) => {
        const wire = new Uint8Array([...chunk, ...after]);
        const input = inputOf(cut(wire, at), true);
        const got: number[] = [];
        const ok = await readChunk(
          input,
          chunk.length,
          keep ? { write: (b) => void got.push(...b) } : undefined,
          5_000,
        );
        assert.equal(ok, true);
        assert.deepEqual(got, keep ? [...chunk] : []);
        let left: number[] = [];
        for (
          let c = await input.take(Date.now() + 1000);
          c !== null;
          c = await input.take(Date.now() + 1000)
        ) {
          left = [...left, ...c];
        }
        assert.deepEqual(left, [...after]);
        // A chunk the client does not finish: false, never a hang.
        const short = inputOf(cut(chunk, at), true);
        assert.equal(await readChunk(short, chunk.length + 1, undefined, 5_000), false);
      },
    ),
    { numRuns: 200 },
  );
});
