// The filters' parsers on their own: a policy service's action= answers (policy/action.ts), a milter's
// reply code text (milter/milter.ts), its frames (milter/protocol.ts) fed seeded random bytes, and the
// header fields milters read and write (milter/content.ts). Pure: no sockets.

import assert from "node:assert/strict";
import { parsePolicyAction } from "../components/smtps/policy/action.ts";
import { parseReplyCode } from "../components/smtps/milter/milter.ts";
import { encodeFrame, FrameReader, MilterProtocolError } from "../components/smtps/milter/protocol.ts";
import { newField, nthField, parseHeaders } from "../components/smtps/milter/content.ts";

const encoder = new TextEncoder();

Deno.test("parsePolicyAction() reads actions as Postfix's access(5) does", async (t) => {
  const cases: [string, unknown][] = [
    ["OK", { kind: "ok" }],
    ["dunno", { kind: "dunno" }],
    ["DEFER_IF_REJECT text", { kind: "dunno" }],
    ["REJECT", { kind: "refuse", reply: { code: 554, status: "5.7.1", text: "Access denied" } }],
    ["REJECT 5.7.2 Go away", { kind: "refuse", reply: { code: 554, status: "5.7.2", text: "Go away" } }],
    ["DEFER_IF_PERMIT 4.2.0 Greylisted", {
      kind: "refuse",
      reply: { code: 450, status: "4.2.0", text: "Greylisted" },
    }],
    ["DEFER 5.2.0 wrong class", {
      kind: "refuse",
      reply: { code: 450, status: "4.7.1", text: "5.2.0 wrong class" },
    }],
    ["450 Later", { kind: "refuse", reply: { code: 450, status: "4.7.1", text: "Later" } }],
    ["550 5.1.1 No such user", {
      kind: "refuse",
      reply: { code: 550, status: "5.1.1", text: "No such user" },
    }],
    ["PREPEND X-A: b", { kind: "prepend", header: "X-A: b" }],
    ["HOLD", { kind: "hold", reason: "held by a policy service" }],
    ["DISCARD why", { kind: "discard", reason: "why" }],
    ["REDIRECT a@b.test", { kind: "redirect", address: "a@b.test" }],
    ["WARN look", { kind: "log", text: "WARN look" }],
    ["350 no", { kind: "unknown", text: "350 no" }],
    ["MAYBE", { kind: "unknown", text: "MAYBE" }],
    ["PREPEND", { kind: "unknown", text: "PREPEND" }],
  ];
  for (const [text, want] of cases) await t.step(text, () => assert.deepEqual(parsePolicyAction(text), want));
});

Deno.test("parseReplyCode() reads a milter's SMFIR_REPLYCODE text, one line or several", () => {
  const r = (s: string) => parseReplyCode(encoder.encode(`${s}\0`));
  assert.deepEqual(r("550 5.7.1 Go away"), { code: 550, status: "5.7.1", text: "Go away" });
  assert.deepEqual(r("451 Later"), { code: 451, status: "4.7.1", text: "Later" });
  assert.deepEqual(r("550-5.7.1 one\r\n550 5.7.1 two"), { code: 550, status: "5.7.1", text: "one\ntwo" });
  assert.equal(r("250 fine"), undefined);
  assert.equal(r("550-one\r\n451 two"), undefined);
  assert.equal(parseReplyCode(encoder.encode("550 no terminator")), undefined);
});

Deno.test("FrameReader takes frames split anywhere and refuses bad lengths, whatever the bytes", () => {
  const frames = [encodeFrame("c"), encodeFrame("h", "X-A\0b\0"), encodeFrame("b", new Uint8Array(70_000))];
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) all.set(f, at), at += f.length;
  for (const step of [1, 3, 4096]) {
    const reader = new FrameReader();
    const got: string[] = [];
    for (let i = 0; i < all.length; i += step) {
      reader.push(all.subarray(i, i + step));
      for (let f = reader.next(); f; f = reader.next()) got.push(`${f.code}${f.data.length}`);
    }
    assert.deepEqual(got, ["c0", "h6", "b70000"]);
  }
  // Seeded garbage: every outcome is a frame, a wait for more bytes, or MilterProtocolError.
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let run = 0; run < 500; run++) {
    const reader = new FrameReader();
    const junk = Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256));
    reader.push(junk);
    try {
      while (reader.next());
    } catch (err) {
      assert.ok(err instanceof MilterProtocolError, String(err));
    }
  }
});

Deno.test("parseHeaders() splits fields with their folds; newField() refuses malformed ones", () => {
  const bytes = encoder.encode("Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Empty:\r\n\r\nbody\r\n");
  const c = parseHeaders(bytes, 50);
  assert.equal(c.separator, true);
  assert.equal(c.bodyOffset, 50);
  assert.deepEqual(c.headers.map((h) => h.name), ["Received", "Subject", "X-Empty"]);
  assert.equal(c.headers[0].raw, "Received: from a\r\n\tby b\r\n");
  assert.equal(nthField(c.headers, "subject", 1), 1);
  assert.equal(nthField(c.headers, "subject", 2), -1);
  assert.deepEqual(newField("X-A", "b\n\tc", false), {
    name: "X-A",
    value: " b\r\n\tc",
    raw: "X-A: b\r\n\tc\r\n",
  });
  for (
    const [name, value] of [["Bad Name", "v"], ["X:Y", "v"], ["", "v"], ["X-A", "a\nb"], ["X-A", "a\rb"], [
      "X-A",
      "a\n \n b",
    ], ["X-A", "x".repeat(1000)]]
  ) {
    assert.equal(typeof newField(name, value, false), "string", `${name}: ${value.slice(0, 20)}`);
  }
});
