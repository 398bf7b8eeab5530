// Property tests (npm:fast-check) of the parsers operators and peers feed outside the SMTP dialogue: the
// configuration lexer, parser and printer, the text map formats, DNS answers (smar's packet decoder) and
// milter frames. Each asserts a round trip or an invariant: never a crash (only the parser's own error
// class), never accepting what the grammar forbids. numRuns stays modest so the suite stays fast; a
// failure prints its seed and shrunk counterexample.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import { ConfigError, formatConfig, parseConfig } from "../config/mod.ts";
import type { Config } from "../config/types.ts";
import { lex } from "../config/lexer.ts";
import { parse } from "../config/parser.ts";
import { parseMapText } from "../components/maps/map_text.ts";
import { decodeResponse } from "../components/smar/dns/packet.ts";
import {
  cstrings,
  encodeFrame,
  FrameReader,
  MAX_FRAME,
  MilterProtocolError,
  splitStrings,
} from "../components/smtps/milter/protocol.ts";

const RUNS = { numRuns: 300 };

/** Configuration-like text: the language's punctuation, quotes, escapes and comments over-represented. */
const confish = fc.string({
  unit: fc.oneof(
    fc.constantFrom(...'{}=;,"\\#\n \t'.split("")),
    fc.constantFrom("qmgr", "smtps", "listen_socket", "type", "inet", "port", "25", "5m", "0x1f", "on"),
    fc.string({ minLength: 1, maxLength: 1 }),
  ),
  maxLength: 60,
});

Deno.test("the configuration lexer, parser and builder throw only ConfigError, naming a place in the text", () => {
  fc.assert(
    fc.property(confish, (text) => {
      for (
        const step of [
          () => lex(text, "p.conf"),
          () => parse(text, "p.conf"),
          () => parseConfig(text, "p.conf"),
        ]
      ) {
        try {
          step();
        } catch (err) {
          assert.ok(err instanceof ConfigError, `not a ConfigError: ${err}`);
          assert.equal(err.file, "p.conf");
          assert.ok(err.line >= 1 && err.line <= text.split("\n").length + 1 && err.col >= 1, err.message);
        }
      }
    }),
    { numRuns: 500 },
  );
});

/** A token and how it is written: words bare, strings quoted with escapes. */
const token = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._\-/:@+\[\]]{1,12}$/).map((w) => ({ kind: "word", text: w, written: w })),
  fc.string({ maxLength: 12 }).filter((s) => !/[\n\0]/.test(s)).map((s) => ({
    kind: "string",
    text: s,
    written: `"${
      s.replace(/[\\"\t\r]/g, (c) => ({ "\\": "\\\\", '"': '\\"', "\t": "\\t", "\r": "\\r" })[c]!)
    }"`,
  })),
  fc.constantFrom(..."{}=;,".split("")).map((p) => ({ kind: p, text: p, written: p })),
);

Deno.test("the lexer reads back any sequence of words, strings and punctuation, with comments between", () => {
  fc.assert(
    fc.property(
      fc.array(token, { maxLength: 20 }),
      fc.array(fc.constantFrom(" ", "\n", "\t", " # note\n")),
      (ts, gaps) => {
        const text = ts.map((t, i) => t.written + (gaps[i % Math.max(gaps.length, 1)] ?? " ")).join(" ");
        const lexed = lex(text, "t.conf");
        assert.deepEqual(
          lexed.map((t) => [t.kind, t.text]),
          [...ts.map((t) => [t.kind, t.text]), ["eof", ""]],
        );
      },
    ),
    RUNS,
  );
});

/** Options with values the builder checks by kind, written with units, and what each must come out as. */
const SECOND = 1000;
const timeValue = fc.record({
  d: fc.nat(3),
  h: fc.nat(23),
  m: fc.nat(59),
  s: fc.integer({ min: 1, max: 59 }),
}).map(({ d, h, m, s }) => ({
  written: `${d ? `${d}d ` : ""}${h ? `${h}h ` : ""}${m ? `${m}m ` : ""}${s}s`,
  value: ((d * 24 + h) * 60 + m) * 60 * SECOND + s * SECOND,
}));
const sizeValue = fc.tuple(
  fc.integer({ min: 1, max: 900 }),
  fc.constantFrom(["KB", 1024], ["MB", 1024 * 1024]),
)
  .map(([n, [unit, size]]) => ({ written: `${n}${unit}`, value: n * (size as number) }));
const countValue = fc.integer({ min: 1, max: 5000 }).map((n) => ({ written: `${n}`, value: n }));

const OPTIONS: [string, fc.Arbitrary<{ written: string; value: number }>][] = [
  ["qmgr.retry_min_delay", timeValue],
  ["qmgr.queue_return_timeout", timeValue],
  ["qmgr.wait_for_server", timeValue],
  ["qmgr.AQ_max_entries", countValue],
  ["qmgr.IBDB.size", sizeValue],
  ["qmgr.IBDB.max_open_TAs", countValue],
  ["qmgr.smtpc.max_connections", countValue],
  ["qmgr.smtps.max_connection_rate", countValue],
  ["smtps.io_timeout", timeValue],
  ["smtps.max_message_size", sizeValue],
  ["smtps.max_threads", countValue],
  ["smtps.stress_timeout", timeValue],
  ["smtpc.io_timeout", timeValue],
  ["smtpc.connection_reuse_count_limit", countValue],
  ["smar.DNS_timeout", timeValue],
  ["mcp.heartbeat_interval", timeValue],
];

/** The text setting each dotted option path to its written value, every section written once. */
function settings(pairs: readonly (readonly [string, { written: string }])[]): string {
  type Tree = Map<string, Tree | string>;
  const root: Tree = new Map();
  for (const [option, v] of pairs) {
    const path = option.split(".");
    const name = path.pop()!;
    let at = root;
    for (const section of path) {
      if (!at.has(section)) at.set(section, new Map());
      at = at.get(section) as Tree;
    }
    at.set(name, v.written);
  }
  const write = (tree: Tree): string =>
    [...tree].map(([k, v]) => typeof v === "string" ? `${k} = ${v};` : `${k} {\n${write(v)}\n}`).join("\n");
  return write(root);
}

function valueAt(config: Config, option: string): unknown {
  let at: unknown = config;
  for (const part of option.split(".")) {
    at = (at as Record<string, unknown>)[part];
    if (part === "smtps" && Array.isArray(at)) at = at[0];
  }
  return at;
}

Deno.test("parseConfig() reads options written with units, and formatConfig() prints them back to the same Config", () => {
  const chosen = fc.uniqueArray(fc.integer({ min: 0, max: OPTIONS.length - 1 }), {
    minLength: 1,
    maxLength: 5,
  })
    .chain((idx) => fc.tuple(...idx.map((i) => OPTIONS[i][1].map((v) => [OPTIONS[i][0], v] as const))));
  fc.assert(
    fc.property(chosen, (pairs) => {
      const text = settings(pairs);
      const config = parseConfig(text, "r.conf");
      for (const [o, v] of pairs) assert.equal(valueAt(config, o), v.value, `${o} = ${v.written}`);
      const again = parseConfig(formatConfig(config), "r.conf");
      delete again.warnings;
      delete config.warnings;
      assert.deepEqual(again, config);
    }),
    { numRuns: 60 },
  );
});

const mapKey = fc.stringMatching(/^[A-Za-z0-9@.+_-]{1,16}$/);
const mapValue = fc.stringMatching(/^[A-Za-z0-9@.+_:<>^\[\]-]{1,10}(?: [A-Za-z0-9@.:<>-]{1,10}){0,2}$/);

Deno.test("parseMapText() reads back the entries of a map text, keys lower-cased, whatever the blanks and comments", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(mapKey, mapValue), { selector: ([k]) => k.toLowerCase(), maxLength: 12 }),
      fc.constantFrom(" ", "\t", "   "),
      fc.boolean(),
      (entries, gap, aliases) => {
        const lines = entries.map(([k, v]) => `${k}${aliases ? ":" : ""}${gap}${v}`);
        const text = ["# a map", ...lines.flatMap((l, i) => i % 3 === 0 ? ["", l] : [l])].join(
          i18nEnd(entries.length),
        );
        const r = parseMapText(text, "m.txt", { format: aliases ? "aliases" : "plain" });
        assert.deepEqual(r.errors, []);
        assert.deepEqual(
          [...r.entries].sort(),
          entries.map(([k, v]) => [k.toLowerCase(), v]).sort(),
        );
      },
    ),
    RUNS,
  );
});

/** Line ends of a map text: LF, or CRLF (a file edited on Windows), chosen by the entry count. */
function i18nEnd(n: number): string {
  return n % 2 === 0 ? "\n" : "\r\n";
}

Deno.test("parseMapText() on any text: reports bad lines as file:line, never throws, keeps no control character", () => {
  const text = fc.string({
    unit: fc.oneof(
      fc.constantFrom(..."\n\r\t :#a@\0\x1b".split("")),
      fc.string({ minLength: 1, maxLength: 1 }),
    ),
    maxLength: 120,
  });
  fc.assert(
    fc.property(text, fc.boolean(), (t, aliases) => {
      const r = parseMapText(t, "m.txt", { format: aliases ? "aliases" : "plain" });
      for (const e of r.errors) assert.match(e, /^m\.txt:\d+: /);
      for (const [k, v] of r.entries) {
        // deno-lint-ignore no-control-regex
        assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(k + v), JSON.stringify([k, v]));
        assert.ok(k !== "" && !/\s/.test(k), JSON.stringify(k));
      }
    }),
    { numRuns: 500 },
  );
});

const dnsName = fc.array(fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/), {
  minLength: 1,
  maxLength: 4,
})
  .map((l) => l.join("."));
const record = fc.oneof(
  fc.record({ type: fc.constant("A" as const), name: dnsName, ttl: fc.nat(86400), data: fc.ipV4() }),
  fc.record({
    type: fc.constant("MX" as const),
    name: dnsName,
    ttl: fc.nat(86400),
    data: fc.record({ preference: fc.nat(65535), exchange: dnsName }),
  }),
  fc.record({
    type: fc.constant("TXT" as const),
    name: dnsName,
    ttl: fc.nat(86400),
    data: fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      maxLength: 200,
    }),
  }),
  fc.record({ type: fc.constant("PTR" as const), name: dnsName, ttl: fc.nat(86400), data: dnsName }),
);

Deno.test("decodeResponse() reads back the records of any DNS answer dns-packet encodes", () => {
  fc.assert(
    fc.property(
      fc.nat(65535),
      fc.constantFrom("NOERROR", "NXDOMAIN", "SERVFAIL"),
      fc.array(record, { maxLength: 6 }),
      fc.boolean(),
      (id, rcode, answers, truncated) => {
        const wire = dnsPacket.encode({
          type: "response",
          id,
          flags: (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
            ({ NOERROR: 0, NXDOMAIN: 3, SERVFAIL: 2 } as Record<string, number>)[rcode],
          questions: [{ type: "A", name: "q.example" }],
          answers,
        });
        const r = decodeResponse(new Uint8Array(wire));
        assert.equal(r.id, id);
        assert.equal(r.isResponse, true);
        assert.equal(r.truncated, truncated);
        assert.equal(r.rcode, rcode);
        assert.deepEqual(r.question, { name: "q.example", type: "A" });
        assert.deepEqual(
          r.answers,
          answers.map((a) =>
            a.type === "A" ? { type: "A", name: a.name, ttl: a.ttl, address: a.data } : a.type === "MX"
              ? {
                type: "MX",
                name: a.name,
                ttl: a.ttl,
                preference: a.data.preference,
                exchange: a.data.exchange,
              }
              : a.type === "TXT"
              ? { type: "TXT", name: a.name, ttl: a.ttl, text: a.data }
              : { type: "PTR", name: a.name, ttl: a.ttl, target: a.data }
          ),
        );
      },
    ),
    RUNS,
  );
});

Deno.test("decodeResponse() on damaged packets: an Error or well-typed records, never anything else", () => {
  const good = fc.array(record, { minLength: 1, maxLength: 3 }).map((answers) =>
    new Uint8Array(
      dnsPacket.encode({ type: "response", id: 1, questions: [{ type: "MX", name: "q" }], answers }),
    )
  );
  const damaged = fc.tuple(good, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }), fc.nat())
    .map(([p, flips, cut]) => {
      const b = p.slice(0, p.length - (cut % 4 === 0 ? cut % p.length : 0));
      for (const [at, v] of flips) if (b.length) b[at % b.length] = v;
      return b;
    });
  fc.assert(
    fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 80 })), (bytes) => {
      let r;
      try {
        r = decodeResponse(bytes);
      } catch (err) {
        assert.ok(err instanceof Error, String(err));
        return;
      }
      for (const a of [...r.answers, ...r.authorities]) {
        assert.equal(typeof a.name, "string");
        assert.ok(Number.isInteger(a.ttl) && a.ttl >= 0);
        if (a.type === "MX") assert.ok(typeof a.preference === "number" && typeof a.exchange === "string");
        if (a.type === "A" || a.type === "AAAA") assert.equal(typeof a.address, "string");
        if (a.type === "TXT") assert.equal(typeof a.text, "string");
      }
    }),
    { numRuns: 500 },
  );
  assert.ok(Buffer.isBuffer(Buffer.alloc(0))); // node:buffer is what dns-packet reads with
});

const frame = fc.tuple(
  fc.constantFrom(..."abcdefhlqrstyz+-~".split("")),
  fc.uint8Array({ maxLength: 300 }),
);

Deno.test("milter frames read back in order, whatever the pieces the socket delivers them in", () => {
  fc.assert(
    fc.property(
      fc.array(frame, { maxLength: 8 }),
      fc.array(fc.nat(3000), { maxLength: 8 }),
      (frames, cuts) => {
        const wire = Buffer.concat(frames.map(([c, d]) => encodeFrame(c, d)));
        const reader = new FrameReader();
        const got: [string, Uint8Array][] = [];
        let prev = 0;
        for (const cut of [...cuts.map((c) => c % (wire.length + 1)).sort((a, b) => a - b), wire.length]) {
          if (cut < prev) continue;
          reader.push(new Uint8Array(wire.subarray(prev, cut)));
          prev = cut;
          for (let f = reader.next(); f; f = reader.next()) got.push([f.code, f.data]);
        }
        assert.deepEqual(got, frames.map(([c, d]) => [c, d]));
      },
    ),
    RUNS,
  );
});

Deno.test("milter frames from any bytes: the frames there are, then a wait, or MilterProtocolError at a bad length", () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.array(frame, { maxLength: 3 }).map((fs) => Buffer.concat(fs.map(([c, d]) => encodeFrame(c, d)))).chain(
      (b) => fc.uint8Array({ maxLength: 12 }).map((tail) => new Uint8Array(Buffer.concat([b, tail]))),
    ),
  );
  fc.assert(
    fc.property(bytes, (b) => {
      // What a reader must do, walked by hand: whole frames, then a bad length throws, a short one waits.
      const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
      let expected = 0;
      let bad = false;
      for (let pos = 0; b.length - pos >= 4;) {
        const length = view.getUint32(pos);
        if (length === 0 || length > MAX_FRAME) {
          bad = true;
          break;
        }
        if (pos + 4 + length > b.length) break;
        expected++;
        pos += 4 + length;
      }
      const reader = new FrameReader();
      reader.push(b);
      let frames = 0;
      try {
        while (reader.next()) frames++;
        assert.equal(bad, false, "a bad length was read as a frame");
      } catch (err) {
        assert.ok(err instanceof MilterProtocolError, String(err));
        assert.equal(bad, true);
      }
      assert.equal(frames, expected);
    }),
    { numRuns: 500 },
  );
});

Deno.test("milter strings: splitStrings() reads back what cstrings() writes; a NUL inside one is refused", () => {
  const item = fc.string({ maxLength: 20 }).filter((s) => !s.includes("\0"));
  fc.assert(
    fc.property(fc.array(item, { minLength: 1, maxLength: 6 }), (items) => {
      const data = new TextEncoder().encode(cstrings(...items));
      assert.deepEqual(splitStrings(data, "test"), items);
      assert.throws(() => cstrings(...items, "a\0b"), RangeError);
      const unterminated = data.slice();
      unterminated[unterminated.length - 1] = 0x78;
      assert.throws(() => splitStrings(unterminated, "test"), MilterProtocolError);
    }),
    RUNS,
  );
});
