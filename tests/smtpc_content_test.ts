// sendContent() and DotStuffer: what leaves smtpc after 354 for each kind of stored content, whatever the
// chunking: CRLF only, leading dots doubled, a final CRLF and ".\r\n".

import assert from "node:assert/strict";
import { CHUNK_SIZE, DotStuffer, sendContent } from "../components/smtpc/content.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs `input` through a DotStuffer in chunks of `size` bytes and returns what would be sent. */
function stuff(input: string, size: number): string {
  const bytes = enc.encode(input);
  const s = new DotStuffer();
  const out = new Uint8Array(DotStuffer.outputSize(bytes.length));
  let o = 0;
  for (let i = 0; i < bytes.length; i += size) o += s.transform(bytes.subarray(i, i + size), out.subarray(o));
  o += s.finish(out.subarray(o));
  return dec.decode(out.subarray(0, o));
}

const CASES: { name: string; stored: string; sent: string }[] = [
  { name: "an empty message is just the dot", stored: "", sent: ".\r\n" },
  { name: "CRLF content passes unchanged", stored: "a\r\nb\r\n", sent: "a\r\nb\r\n.\r\n" },
  { name: "a missing final CRLF is added", stored: "a\r\nb", sent: "a\r\nb\r\n.\r\n" },
  { name: "a bare LF becomes CRLF", stored: "a\nb\n", sent: "a\r\nb\r\n.\r\n" },
  { name: "a bare CR becomes CRLF", stored: "a\rb\r", sent: "a\r\nb\r\n.\r\n" },
  { name: "CR CR LF is a bare CR then a CRLF", stored: "a\r\r\nb", sent: "a\r\n\r\nb\r\n.\r\n" },
  { name: "a leading dot is doubled", stored: ".a\r\n..b\r\n", sent: "..a\r\n...b\r\n.\r\n" },
  { name: "a lone dot line is doubled", stored: "a\r\n.\r\nb\r\n", sent: "a\r\n..\r\nb\r\n.\r\n" },
  { name: "a dot at the very start is doubled", stored: ".", sent: "..\r\n.\r\n" },
  {
    name: "a dot after a bare LF is doubled (no <LF>.<LF> smuggling)",
    stored: "a\n.\nb",
    sent: "a\r\n..\r\nb\r\n.\r\n",
  },
  {
    name: "a dot after a bare CR is doubled (no <CR>.<CR> smuggling)",
    stored: "a\r.\rb",
    sent: "a\r\n..\r\nb\r\n.\r\n",
  },
  { name: "a dot inside a line is left alone", stored: "a.b\r\n", sent: "a.b\r\n.\r\n" },
  { name: "NUL bytes are removed", stored: "\0a\0b\0\r\n\0", sent: "ab\r\n.\r\n" },
  { name: "a NUL between CR and LF is removed first", stored: "a\r\0\nb", sent: "a\r\nb\r\n.\r\n" },
  { name: "a dot behind a NUL at a line start is doubled", stored: "\0.\r\n", sent: "..\r\n.\r\n" },
];

Deno.test("DotStuffer sends every stored content as CRLF lines with leading dots doubled", async (t) => {
  for (const c of CASES) {
    await t.step(c.name, () => {
      for (const size of [1, 2, 3, 1000]) assert.equal(stuff(c.stored, size), c.sent, `chunks of ${size}`);
    });
  }
});

Deno.test("sendContent() streams a large file in bounded chunks and ends it with one dot", async () => {
  const line = ".dotted line\n";
  const stored = line.repeat(Math.ceil((3 * CHUNK_SIZE) / line.length));
  const bytes = enc.encode(stored);
  let pos = 0;
  const file = {
    read(p: Uint8Array): Promise<number | null> {
      if (pos >= bytes.length) return Promise.resolve(null);
      const n = Math.min(p.length, bytes.length - pos, 5000);
      p.set(bytes.subarray(pos, pos + n));
      pos += n;
      return Promise.resolve(n);
    },
  };
  const writes: Uint8Array[] = [];
  await sendContent(file, (b) => {
    writes.push(b.slice());
    return Promise.resolve();
  });
  const sent = dec.decode(new Uint8Array(writes.flatMap((w) => [...w])));
  assert.equal(
    sent,
    ".dotted line\r\n".replaceAll(".dotted", "..dotted").repeat(stored.length / line.length) + ".\r\n",
  );
  assert.ok(writes.every((w) => w.length <= DotStuffer.outputSize(CHUNK_SIZE)));
  assert.ok(writes.at(-1)!.length > 3, "the last chunk leaves together with the final dot");
});

Deno.test("no stored content ever sends an end of data before the end, nor a bare CR or LF", async (t) => {
  // The SMTP smuggling sequences: each would end DATA early at a lenient server if it left us as it is.
  const sequences = [
    "\n.\n",
    "\n.\r\n",
    "\r\n.\n",
    "\r.\r",
    "\r.\r\n",
    "\r\n.\r",
    "\r.\n",
    "\n.\r",
    "\r\n\0.\r\n",
  ];
  for (const seq of sequences) {
    await t.step(JSON.stringify(seq), () => {
      for (const size of [1, 2, 1000]) {
        const sent = stuff(`Subject: x\r\n\r\nbefore${seq}MAIL FROM:<evil@test>\r\nafter`, size);
        assert.equal(sent.indexOf("\r\n.\r\n"), sent.length - 5, JSON.stringify(sent));
        assert.doesNotMatch(sent.replaceAll("\r\n", ""), /[\r\n]/, JSON.stringify(sent));
        assert.ok(sent.includes("MAIL FROM:<evil@test>"), "the content itself is kept");
      }
    });
  }
});

/** The rule byte by byte, the obvious way: what DotStuffer's line-at-a-time copy must match. */
function reference(input: Uint8Array): string {
  let out = "";
  let atLineStart = true;
  let pendingCR = false;
  for (const b of input) {
    if (pendingCR) {
      pendingCR = false;
      out += "\r\n";
      atLineStart = true;
      if (b === 10) continue;
    }
    if (b === 13) pendingCR = true;
    else if (b === 10) {
      out += "\r\n";
      atLineStart = true;
    } else {
      if (atLineStart && b === 46) out += ".";
      out += String.fromCharCode(b);
      atLineStart = false;
    }
  }
  if (pendingCR || !atLineStart) out += "\r\n";
  return out + ".\r\n";
}

Deno.test("DotStuffer equals the byte-by-byte rule on random content and random chunking", () => {
  let seed = 13;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const alphabet = [13, 10, 46, 97, 98, 32];
  for (let round = 0; round < 500; round++) {
    const input = Uint8Array.from({ length: rand(200) }, () => alphabet[rand(alphabet.length)]);
    const s = new DotStuffer();
    const out = new Uint8Array(DotStuffer.outputSize(input.length));
    let o = 0;
    for (let i = 0; i < input.length;) {
      const size = 1 + rand(40);
      o += s.transform(input.subarray(i, i + size), out.subarray(o));
      i += size;
    }
    o += s.finish(out.subarray(o));
    const got = String.fromCharCode(...out.subarray(0, o));
    assert.equal(got, reference(input), JSON.stringify(String.fromCharCode(...input)));
  }
});
