// Property tests (npm:fast-check) of the parsers the network feeds in an SMTP session: paths and
// addresses, the MAIL/RCPT parameters, xtext, the DATA reader's dot-stuffing (against smtpc's stuffer),
// and smtpc's reply reader. Each asserts a round trip or an invariant: never a crash, never accepting what
// the grammar forbids, the same answer whatever the chunk boundaries. numRuns stays modest (fast suite);
// a failure prints its seed and shrunk counterexample (fc.assert), which `{ seed, path }` replays.

import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_DOMAIN, MAX_LOCAL_PART, octets, parsePath } from "../components/mail/address.ts";
import { decodeXtext, encodeXtext } from "../components/mail/xtext.ts";
import { DotDecoder } from "../components/smtp_io/data_reader.ts";
import { parseMailArgs, parseRcptArgs } from "../components/smtps/arguments.ts";
import { parseMailArgs as ldaMailArgs, parseRcptArgs as ldaRcptArgs } from "../components/lda/arguments.ts";
import { DotStuffer } from "../components/smtpc/content.ts";
import { ReplyError, takeReply } from "../components/smtpc/reply_reader.ts";

const RUNS = { numRuns: 300 };
const OFFERED = { esmtp: true, eightBit: true, smtputf8: true, auth: true };

const atext = fc.constantFrom(..."abcXYZ019!#$%&'*+-/=?^_`{|}~".split(""));
const atom = fc.string({ unit: atext, minLength: 1, maxLength: 8 });
const dotString = fc.array(atom, { minLength: 1, maxLength: 4 }).map((a) => a.join("."));
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/);
const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((a) => a.join("."));
/** Text with the characters that matter to SMTP's grammars over-represented. */
const smtpish = fc.string({
  unit: fc.oneof(
    fc.constantFrom(...'<>@":;,.[]\\ =+\r\n\t\0\x7fé'.split("")),
    fc.constantFrom(..."aZ09!#-_".split("")),
    fc.string({ minLength: 1, maxLength: 1 }),
  ),
  maxLength: 80,
});

/** Addresses near the grammar: valid ones, quoted local parts, literals, and each with a random insertion. */
const quoted = fc.string({ unit: fc.constantFrom(...'a b.@\\"\t<>,é'.split("")), maxLength: 10 })
  .map((q) => `"${q}"`);
const literal = fc.oneof(
  fc.ipV4().map((ip) => `[${ip}]`),
  fc.ipV6().map((ip) => `[IPv6:${ip}]`),
  fc.constantFrom("[300.1.1.1]", "[IPv6:zz::1]", "[]"),
);
const nearAddress = fc.tuple(fc.oneof(dotString, quoted), fc.oneof(domain, literal), smtpish, fc.nat(40))
  .map(([l, d, junk, at]) => {
    const a = `${l}@${d}`;
    return at % 3 === 0 ? a : `${a.slice(0, at)}${junk.slice(0, 3)}${a.slice(at)}`;
  });

Deno.test("parsePath() reads back every dot-atom address it is given, domain lower-cased", () => {
  fc.assert(
    fc.property(dotString, domain, (local, dom) => {
      fc.pre(octets(local) <= MAX_LOCAL_PART && octets(dom) <= MAX_DOMAIN && local.length + dom.length < 250);
      const r = parsePath(`<${local}@${dom.toUpperCase()}>`);
      assert.ok(r.ok, `refused <${local}@${dom}>`);
      assert.deepEqual(r.mailbox, { address: `${local}@${dom}`, local, domain: dom });
    }),
    RUNS,
  );
});

Deno.test("parsePath() never throws, and what it accepts keeps RFC 5321's limits and parses again the same", () => {
  const options = fc.record({ allowNull: fc.boolean(), allowPostmaster: fc.boolean(), utf8: fc.boolean() });
  fc.assert(
    fc.property(fc.oneof(smtpish, nearAddress), options, (text, o) => {
      const r = parsePath(`<${text}>`, o);
      if (!r.ok) return;
      const m = r.mailbox;
      // deno-lint-ignore no-control-regex
      assert.ok(!/[\x00-\x1f\x7f]/.test(m.address.replace(/"(?:[^"\\]|\\.)*"/g, "")), m.address);
      assert.ok(octets(m.local) <= MAX_LOCAL_PART && octets(m.domain) <= MAX_DOMAIN);
      if (m.address === "") return assert.ok(o.allowNull);
      const again = parsePath(`<${m.address}>`, o);
      assert.ok(again.ok, `canonical form <${m.address}> refused`);
      assert.deepEqual(again.mailbox, m);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("xtext decodes what it encodes, and decoding never yields what the grammar forbids", () => {
  const ascii = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)) });
  fc.assert(
    fc.property(ascii, (s) => {
      const x = encodeXtext(s);
      assert.match(x, /^[\x21-\x2a\x2c-\x3c\x3e-\x7e]*(?:\+[0-9A-F]{2}[\x21-\x2a\x2c-\x3c\x3e-\x7e]*)*$/);
      assert.equal(decodeXtext(x, true), s);
    }),
    RUNS,
  );
  fc.assert(
    fc.property(smtpish, (s) => {
      const d = decodeXtext(s);
      if (d !== undefined) assert.ok(!/[^\x20-\x7e]/.test(d), JSON.stringify(d));
    }),
    RUNS,
  );
});

/** ESMTP parameters, well formed or not. */
const param = fc.oneof(
  fc.constantFrom("SIZE=1000", "BODY=8BITMIME", "BODY=7BIT", "SMTPUTF8", "RET=HDRS", "RET=FULL", "AUTH=<>"),
  fc.string({ maxLength: 20 }).map((s) => `ENVID=${encodeXtext(s)}`),
  fc.constantFrom("NOTIFY=NEVER", "NOTIFY=SUCCESS,FAILURE", "NOTIFY=DELAY", "ORCPT=rfc822;a@b.example"),
  smtpish,
);

Deno.test("MAIL and RCPT arguments: never a crash; an accepted path is canonical, a refusal a 5xx", () => {
  fc.assert(
    fc.property(
      fc.oneof(smtpish, nearAddress.map((a) => `<${a}>`)),
      fc.array(param, { maxLength: 4 }),
      fc.boolean(),
      (path, params, smtputf8) => {
        const tail = params.length ? ` ${params.join(" ")}` : "";
        const mail = parseMailArgs(`FROM:${path}${tail}`, OFFERED);
        if (mail.ok) {
          const sender = mail.mail.sender;
          if (sender !== "") assert.ok(parsePath(`<${sender}>`, { utf8: true }).ok, sender);
          if (mail.mail.size !== undefined) {
            assert.ok(Number.isSafeInteger(mail.mail.size) || mail.mail.size > 0);
          }
          // deno-lint-ignore no-control-regex
          if (mail.mail.envid !== undefined) assert.ok(!/[\x00-\x1f\x7f]/.test(mail.mail.envid));
        } else {
          assert.ok(mail.reply.code >= 500 && mail.reply.code < 600, `${mail.reply.code}`);
        }
        const rcpt = parseRcptArgs(`TO:${path}${tail}`, true, smtputf8);
        if (rcpt.ok) {
          assert.notEqual(rcpt.recipient.address, "");
          if (rcpt.recipient.notify?.includes("NEVER")) assert.deepEqual(rcpt.recipient.notify, ["NEVER"]);
        } else {
          assert.ok(rcpt.reply.code >= 500 && rcpt.reply.code < 600, `${rcpt.reply.code}`);
        }
        // The lda reads the same grammar (LMTP MAIL/RCPT): never a crash, an accepted sender parses.
        const lm = ldaMailArgs(`FROM:${path}${tail}`);
        if (lm.ok && lm.sender !== "") assert.ok(parsePath(`<${lm.sender}>`, { utf8: true }).ok);
        ldaRcptArgs(`TO:${path}${tail}`);
      },
    ),
    { numRuns: 600 },
  );
});

Deno.test("parseMailArgs() refuses a parameter the session did not offer", () => {
  const offers = fc.record({
    esmtp: fc.boolean(),
    eightBit: fc.boolean(),
    smtputf8: fc.boolean(),
    auth: fc.boolean(),
  });
  fc.assert(
    fc.property(offers, fc.constantFrom("BODY=8BITMIME", "SMTPUTF8", "AUTH=<>", "SIZE=1"), (o, p) => {
      const r = parseMailArgs(`FROM:<a@b.example> ${p}`, o);
      const offered = o.esmtp &&
        (p === "BODY=8BITMIME"
          ? o.eightBit
          : p === "SMTPUTF8"
          ? o.smtputf8
          : p === "AUTH=<>"
          ? o.auth
          : true);
      assert.equal(r.ok, offered);
    }),
    { numRuns: 100 },
  );
});

/** Message content as smtpc sends it: stuffed by DotStuffer, in one run (no NULs: smtps refuses them). */
function stuff(content: Uint8Array, cuts: number[]): Uint8Array {
  const s = new DotStuffer();
  const parts: Uint8Array[] = [];
  for (const piece of split(content, cuts)) {
    const out = new Uint8Array(DotStuffer.outputSize(piece.length));
    parts.push(out.subarray(0, s.transform(piece, out)));
  }
  const end = new Uint8Array(8);
  parts.push(end.subarray(0, s.finish(end)));
  return concat(parts);
}

/** What the DATA reader decodes from `wire` fed in pieces cut at `cuts`; end is the offset past the marker. */
function decode(
  wire: Uint8Array,
  cuts: number[],
  strict = true,
): { content: Uint8Array; end: number; bare: boolean } {
  const d = new DotDecoder(strict);
  const runs: Uint8Array[] = [];
  let offset = 0;
  for (const piece of split(wire, cuts)) {
    const r = d.feed(piece);
    runs.push(...r.runs.map((x) => x.slice()));
    if (r.bareNewline) return { content: concat(runs), end: -1, bare: true };
    if (r.end >= 0) return { content: concat(runs), end: offset + r.end, bare: false };
    offset += piece.length;
  }
  return { content: concat(runs), end: -1, bare: false };
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    if (c > prev) out.push(bytes.subarray(prev, c));
    prev = Math.max(prev, c);
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Content with lines, dots, CRs and LFs over-represented (never NUL). */
const content = fc.array(
  fc.oneof(
    fc.constantFrom(13, 10, 46, 46, 13, 10),
    fc.integer({ min: 1, max: 255 }),
  ),
  { maxLength: 300 },
).map((a) => new Uint8Array(a));
const cuts = fc.array(fc.nat(400), { maxLength: 6 });

/** Bytes as one character each (TextDecoder's "latin1" is windows-1252). */
function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** smtpc's view of content: every bare CR or LF becomes CRLF, and it ends with CRLF. */
function normalized(bytes: Uint8Array): Uint8Array {
  const text = latin1(bytes).replace(/\r\n|\r|\n/g, "\r\n");
  const ended = text === "" || text.endsWith("\r\n") ? text : `${text}\r\n`;
  return Uint8Array.from(ended, (c) => c.charCodeAt(0));
}

Deno.test("the DATA reader undoes smtpc's dot-stuffing exactly, whatever the chunk boundaries", () => {
  fc.assert(
    fc.property(content, cuts, cuts, (bytes, sendCuts, readCuts) => {
      const wire = stuff(bytes, sendCuts);
      const r = decode(wire, readCuts);
      assert.equal(r.bare, false);
      assert.equal(r.end, wire.length, "the end marker is the last thing sent, and found there");
      assert.deepEqual(r.content, normalized(bytes));
    }),
    { numRuns: 500 },
  );
});

Deno.test("the DATA reader on any bytes: never a crash, the same result for any chunking, ends only at CRLF.CRLF", () => {
  const wire = fc.array(fc.oneof(fc.constantFrom(13, 10, 46), fc.integer({ min: 0, max: 255 })), {
    maxLength: 200,
  })
    .map((a) => new Uint8Array(a));
  fc.assert(
    fc.property(wire, cuts, fc.boolean(), (bytes, c, strict) => {
      const whole = decode(bytes, [], strict);
      assert.deepEqual(decode(bytes, c, strict), whole);
      if (whole.end >= 0) {
        // The end marker is CRLF "." CRLF (or "." CRLF at the very start), and nothing before it is one.
        const before = latin1(bytes.subarray(0, whole.end));
        assert.ok(before === ".\r\n" || before.endsWith("\r\n.\r\n"), JSON.stringify(before));
      }
      if (strict && whole.end >= 0) {
        // Strict mode: no bare CR or LF in what it accepted.
        const text = latin1(whole.content);
        assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(text), JSON.stringify(text));
      }
    }),
    { numRuns: 800 },
  );
});

Deno.test("smtpc's reply reader: a well-formed reply reads back its code and lines, in any pieces", () => {
  const code = fc.integer({ min: 200, max: 599 });
  const text = fc.string({
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    maxLength: 40,
  });
  fc.assert(
    fc.property(code, fc.array(text, { minLength: 1, maxLength: 5 }), (c, lines) => {
      const wire = new TextEncoder().encode(
        lines.map((l, i) => `${c}${i < lines.length - 1 ? "-" : " "}${l}\r\n`).join(""),
      );
      assert.deepEqual(takeReply(wire, 0, wire.length), { reply: { code: c, lines }, next: wire.length });
      // One byte short: the reader waits for more, it does not guess.
      assert.equal(takeReply(wire, 0, wire.length - 1), undefined);
    }),
    RUNS,
  );
});

Deno.test("smtpc's reply reader on any bytes: a reply, a wait for more, or a ReplyError, never anything else", () => {
  const wire = fc.array(fc.oneof(fc.constantFrom(13, 10, 45, 32, 50, 53), fc.integer({ min: 0, max: 255 })), {
    maxLength: 120,
  }).map((a) => new Uint8Array(a));
  fc.assert(
    fc.property(wire, (bytes) => {
      try {
        const r = takeReply(bytes, 0, bytes.length);
        if (r) {
          assert.ok(r.reply.code >= 200 && r.reply.code <= 599);
          assert.ok(r.next <= bytes.length && bytes[r.next - 1] === 10 && bytes[r.next - 2] === 13);
        }
      } catch (err) {
        assert.ok(err instanceof ReplyError, String(err));
      }
    }),
    { numRuns: 800 },
  );
});
