// End to end robustness of smtps at the command level: the whole MTA attacked over real TCP with STARTTLS
// surrounded by garbage (injected plaintext, random bytes, a TLS record that never completes, a 1 MB line,
// junk inside TLS), AUTH with malformed base64 and broken exchanges, BDAT with wrong sizes, and MAIL/RCPT
// with absurd parameters and addresses (SIZE=-1, 20-digit sizes, unknown parameters, 10 KB addresses,
// control characters, UTF-8 without SMTPUTF8, unbalanced brackets, quoted local parts with escapes), each
// with the exact reply expected. After each family the same checks as e2e_robustness_test.ts (no restart,
// no error, every session ended, no CDB file or queued message left), then a normal message byte for byte.

import assert from "node:assert/strict";
import { SmtpClient } from "./helpers/smtps_dialogue.ts";
import {
  bdat,
  codesOf,
  envelope,
  expectReply,
  MAX_SIZE,
  MB,
  SEED,
  startTarget,
} from "./helpers/attack_target.ts";

const b64 = (s: string) => btoa(s);

Deno.test("smtps under command-level attack refuses each abuse rightly, never restarts, keeps nothing aborted", async (t) => {
  const x = await startTarget();
  const { junk } = x;
  const step = x.family(t);
  console.log(`robustness seed ${SEED}`);
  try {
    await step("STARTTLS with garbage around it fails the handshake, never the server", async () => {
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "STARTTLS", 503);
        await expectReply(c, "EHLO attacker.test", 250);
        await expectReply(c, "STARTTLS now please", 501);
        await expectReply(c, "QUIT", 221);
      });
      const after: [label: string, bytes: () => string | Uint8Array][] = [
        ["plaintext commands injected behind STARTTLS, then text", () => "GARBAGE\r\n"],
        ["random binary", () => junk.bytes(junk.int(1, 2048))],
        ["a TLS record header announcing 16 KB that never come", () => new Uint8Array([22, 3, 1, 0x40, 0])],
        ["a 1 MB line", () => junk.printable(MB)],
      ];
      for (const [label, bytes] of after) {
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "EHLO attacker.test", 250);
          await c.send("STARTTLS\r\nMAIL FROM:<injected@sender.test>\r\n");
          await expectReply(c, null, 220);
          await c.send(bytes());
          c.end();
          assert.ok(await c.closedByServer(), `${label}: the server closes`);
          codesOf(c, () => true, true);
        });
      }
      // A real handshake, then junk inside TLS: refused like junk in plain text; no second STARTTLS.
      const tls = await SmtpClient.connect(x.port);
      try {
        assert.equal((await tls.reply()).code, 220);
        await tls.send("EHLO attacker.test\r\n");
        assert.equal((await tls.reply()).code, 250);
        await tls.send("STARTTLS\r\n");
        assert.equal((await tls.reply()).code, 220);
        await tls.startTls();
        await tls.send(junk.printable(100) + "\r\n");
        assert.equal((await tls.reply()).code, 500);
        await tls.send("MAIL FROM:<a@sender.test>\r\n");
        assert.equal((await tls.reply()).code, 503, "EHLO is needed again after STARTTLS");
        await tls.send("EHLO attacker.test\r\n");
        assert.equal((await tls.reply()).code, 250);
        await tls.send("STARTTLS\r\n");
        assert.equal((await tls.reply()).code, 503);
        await tls.send("QUIT\r\n");
        assert.equal((await tls.reply()).code, 221);
      } finally {
        tls.close();
      }
      await x.healthy("STARTTLS");
    });

    await step("AUTH with malformed base64 and broken exchanges is refused and counted", async () => {
      const cases: [line: string, code: number][] = [
        ["AUTH", 501],
        ["AUTH FOO", 504],
        ["AUTH PLAIN a b", 501],
        ["AUTH PLAIN !!!!", 501],
        ["AUTH PLAIN dGVzdA", 501],
        ["AUTH PLAIN ====", 501],
        ["AUTH PLAIN /w==", 501],
        ["AUTH PLAIN " + "QUFB".repeat(3500), 500], // longer than a command line may be
        ["AUTH LOGIN \x7f", 501],
      ];
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        for (const [line, code] of cases) await expectReply(c, line, code);
        for (const answer of ["%%%%", "*", "QUFB".repeat(5000), "\0\0", "dXNlcg", "=="]) {
          await expectReply(c, "AUTH LOGIN", 334);
          await expectReply(c, answer, 501);
        }
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, "AUTH PLAIN " + b64("\0alice\0secret"), 503);
        await expectReply(c, "RSET", 250);
        // Three failed attempts (an empty answer is no credentials) end the session.
        await expectReply(c, "AUTH PLAIN", 334);
        await expectReply(c, "", 535);
        await expectReply(c, "AUTH PLAIN " + b64("\0alice\0wrong"), 535);
        await expectReply(c, "AUTH PLAIN " + b64("only\0two"), 421);
        assert.ok(await c.closedByServer());
        codesOf(c, () => true);
      });
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        await c.send("AUTH PLAIN\r\n" + b64("\0alice\0secret") + "\r\n");
        assert.ok(await c.closedByServer());
        assert.deepEqual(codesOf(c, () => true), [220, 250, 554], "AUTH ends a pipelined group");
      });
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        await expectReply(c, "AUTH LOGIN", 334);
        await expectReply(c, b64("alice"), 334);
        await expectReply(c, b64("secret"), 235);
        await expectReply(c, "AUTH PLAIN " + b64("\0alice\0secret"), 503);
        await expectReply(c, "QUIT", 221);
      });
      await x.healthy("AUTH");
    });

    await step("BDAT with wrong sizes is refused or read to its end, and keeps nothing", async () => {
      for (
        const arg of ["-1", "99999999999999999999", "abc", "", "5 LAST junk", "5 FIRST", "0x10", "1e3"]
      ) {
        await x.session(async (c) => {
          await envelope(c);
          await expectReply(c, `BDAT ${arg}`.trimEnd(), 501);
          assert.ok(await c.closedByServer(), `BDAT ${arg}: its chunk cannot be found, the session ends`);
        });
      }
      await x.session(async (c) => {
        await envelope(c);
        // A chunk shorter than the client said: what follows is read as its rest.
        await c.send("BDAT 3\r\nabcdefgh\r\n");
        await expectReply(c, null, 250);
        await expectReply(c, null, 500);
        await expectReply(c, "DATA", 503);
        await expectReply(c, "RSET", 250);
        // Over max_message_size: read to its end and refused.
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, "RCPT TO:<big@example.com>", 250);
        await bdat(c, `BDAT ${MAX_SIZE + 1} LAST\r\n${"z".repeat(MAX_SIZE + 1)}`, 552);
        await bdat(c, "BDAT 4 LAST\r\nnope", 503);
        // Out of sequence: the chunk is still read, so the next command is found.
        await expectReply(c, "RSET", 250);
        await bdat(c, "BDAT 8\r\nBDAT 1\r\n", 503);
        await expectReply(c, "NOOP", 250);
        // Chunks of a transaction dropped by RSET, EHLO, and by the end of the session.
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, "RCPT TO:<r@example.com>", 250);
        await bdat(c, "BDAT 6\r\nchunk1", 250);
        await expectReply(c, "RSET", 250);
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, "RCPT TO:<r@example.com>", 250);
        await bdat(c, "BDAT 6\r\nchunk2", 250);
        await expectReply(c, "EHLO again.test", 250);
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, "RCPT TO:<r@example.com>", 250);
        await bdat(c, "BDAT 6\r\nchunk3", 250);
        await expectReply(c, "QUIT", 221);
        codesOf(c, () => true);
      });
      await x.session(async (c) => {
        await envelope(c);
        await c.send("BDAT 999999999999999 LAST\r\n" + "w".repeat(10_000));
        await c.close(); // a chunk bigger than anything allowed, abandoned
      });
      await x.session(async (c) => {
        await envelope(c);
        const body = "Subject: bdat-split\r\n\r\nsplit in two writes\r\n";
        x.expect("bdat-split", body);
        await c.send(`BDAT ${body.length} LAST\r\n${body.slice(0, 10)}`);
        await new Promise((r) => setTimeout(r, 50));
        await c.send(body.slice(10));
        await expectReply(c, null, 250);
        await expectReply(c, "QUIT", 221);
      });
      await x.healthy("BDAT");
    });

    await step("MAIL and RCPT with absurd parameters and addresses get the right refusal", async () => {
      const long = (n: number) => "a".repeat(n);
      const mail: [args: string, code: number][] = [
        ["<a@sender.test> SIZE=-1", 501],
        ["<a@sender.test> SIZE=99999999999999999999", 552],
        ["<a@sender.test> SIZE=999999999999999999999", 501],
        ["<a@sender.test> SIZE=", 501],
        ["<a@sender.test> SIZE=1e3", 501],
        ["<a@sender.test> SIZE=00000000000000000001", 250],
        ["<a@sender.test> SIZE=1 SIZE=2", 501],
        ["<a@sender.test> FOO=BAR", 555],
        ["<a@sender.test> X-UNKNOWN", 555],
        ["<a@sender.test> BODY=9BIT", 501],
        ["<a@sender.test> RET=ALL", 501],
        [`<a@sender.test> ENVID=${long(101)}`, 501],
        ["<a@sender.test> ENVID=+ZZ", 501],
        ["<a@sender.test> AUTH=<>", 250],
        [`<${long(10 * 1024)}@sender.test>`, 500],
        [`<${long(60)}@${long(60)}.${long(60)}.${long(60)}.${long(60)}.test>`, 501],
        [`<${long(65)}@sender.test>`, 553],
        ["<a\x01b@sender.test>", 501],
        ["<a\tb@sender.test>", 501],
        ["<a@sender.test>\x1b[31m", 501],
        ["<jörg@sender.test>", 553],
        ["<jörg@sender.test> SMTPUTF8", 250],
        ["<a@sender.test", 501],
        ["a@sender.test>", 501],
        ["<<a@sender.test>>", 501],
        ["<a@sender.test>>", 501],
        ["<", 501],
        [">", 501],
        ["", 501],
        ["<>", 250],
        ['<"a\\"b"@sender.test>', 250],
        ['<"a\\"@sender.test>', 501],
        ['<"a"b"@sender.test>', 501],
        ['<"\\\\"@sender.test>', 250],
        ['<""@sender.test>', 250],
        ["<@a.test,@b.test:a@sender.test>", 250],
        ["<@:a@sender.test>", 501],
        ["<a@[999.1.1.1]>", 501],
        ["<a@-sender.test>", 501],
      ];
      const rcpt: [args: string, code: number][] = [
        ["<r@example.com> NOTIFY=NEVER,SUCCESS", 501],
        ["<r@example.com> NOTIFY=SOMETIMES", 501],
        ["<r@example.com> NOTIFY=", 501],
        ["<r@example.com> ORCPT=junk", 501],
        ["<r@example.com> ORCPT=rfc822;a+2Bb@example.com", 250],
        ["<r@example.com> SIZE=10", 555],
        ["<jörg@example.com>", 553],
        ["<r@example.com", 501],
        ['<"r\\"q"@example.com>', 250],
        ['<"r\\"@example.com>', 501],
        [`<${long(10 * 1024)}@example.com>`, 500],
        ["<postmaster>", 250],
        ["<r\x00@example.com>", 501],
      ];
      const toBytes = (s: string) => {
        // UTF-8 text is sent as its bytes (the client writes latin1 strings byte for byte).
        return Array.from(new TextEncoder().encode(s), (b) => String.fromCharCode(b)).join("");
      };
      for (let i = 0; i < mail.length; i += 5) {
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "EHLO attacker.test", 250);
          for (const [args, code] of mail.slice(i, i + 5)) {
            const r = await expectReply(c, toBytes(`MAIL FROM:${args}`), code);
            if (r.startsWith("250")) await expectReply(c, "RSET", 250);
          }
          await expectReply(c, "QUIT", 221);
          codesOf(c, () => true);
        });
      }
      for (let i = 0; i < rcpt.length; i += 5) {
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "EHLO attacker.test", 250);
          await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
          for (const [args, code] of rcpt.slice(i, i + 5)) {
            await expectReply(c, toBytes(`RCPT TO:${args}`), code);
          }
          await expectReply(c, "QUIT", 221);
          codesOf(c, () => true);
        });
      }
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, toBytes("RCPT TO:<\xff@example.com>").replace("\xc3\xbf", "\xff"), 500);
        await expectReply(c, "QUIT", 221);
      });
      await x.healthy("MAIL and RCPT parameters");
    });

    await step(
      "a normal message still goes through, byte for byte, and every refusal was logged",
      () => x.normalMessage(50),
    );
  } finally {
    await x.stop();
  }
});
