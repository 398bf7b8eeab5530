// End to end robustness of smtps at the transport level: the whole MTA (MCP + four workers) attacked over
// real TCP with a seeded pseudo-random generator (ROBUSTNESS_SEED repeats a run): binary garbage, printable
// junk, NUL bytes, 1 MB lines, thousands of pipelined commands in one write, commands and content a byte
// at a time, connections dropped (FIN and RST) at every phase, half-closed sockets, a crowd of connections
// opened and dropped. After each family: every reply was well formed and of the expected class, no worker
// died or was restarted, no component logged an error, every session ended, and nothing of an aborted
// transaction is left (no CDB file, no message for qmgrctl). Then a normal message still arrives at the
// sink byte for byte. STARTTLS, AUTH, BDAT and MAIL/RCPT parameters: e2e_robustness_commands_test.ts;
// hostile servers against smtpc: e2e_robustness_smtpc_test.ts.

import assert from "node:assert/strict";
import { RawClient } from "./helpers/hostile_client.ts";
import {
  afterReceived,
  codesOf,
  envelope,
  expectReply,
  MAX_SIZE,
  MB,
  refusal,
  SEED,
  startTarget,
} from "./helpers/attack_target.ts";

Deno.test("smtps under transport-level attack answers well-formed replies, never restarts, keeps nothing aborted", async (t) => {
  const x = await startTarget();
  const { junk } = x;
  const step = x.family(t);
  console.log(`robustness seed ${SEED}`);
  try {
    await step(
      "random binary garbage before the greeting, after it, after EHLO and as DATA content",
      async () => {
        for (let i = 0; i < 12; i++) {
          const where = i % 4; // 0 before the greeting, 1 after it, 2 after EHLO, 3 inside DATA
          await x.session(async (c) => {
            if (where === 3) await envelope(c);
            else if (where >= 1) await expectReply(c, null, 220);
            if (where === 2) await expectReply(c, "EHLO attacker.test", 250);
            if (where === 3) await expectReply(c, "DATA", 354);
            await c.send(junk.bytes(junk.int(1, 4096)));
            await c.send("\r\n");
            let message = false;
            if (!await c.closedByServer(2_000)) {
              // Garbage without a bare CR or LF: as content it makes a message (of random bytes).
              message = where === 3;
              if (message) x.maybe++;
              await c.send(where === 3 ? "\r\n.\r\nQUIT\r\n" : "QUIT\r\n");
              assert.ok(await c.closedByServer(), "the server closes after QUIT");
            }
            const codes = codesOf(c, (code) => refusal(code) || code < 400);
            if (where === 0) assert.ok(codes[0] === 554 || codes[0] === 220, `before the greeting: ${codes}`);
            // After the greeting (and EHLO, MAIL, RCPT, DATA): only refusals, and 221 to our QUIT.
            const skip = where === 0 ? (codes[0] === 220 ? 1 : 0) : [0, 1, 2, 5][where];
            for (const code of codes.slice(skip)) {
              assert.ok(refusal(code) || code === 221 || (message && code === 250), `garbage got ${codes}`);
            }
          });
        }
        await x.healthy("binary garbage");
      },
    );

    await step("random printable junk as commands and as arguments of every verb", async () => {
      for (let i = 0; i < 3; i++) {
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "EHLO attacker.test", 250);
          for (let n = 0; n < 25; n++) await c.command(junk.printable(junk.int(0, 700)));
          // 20 bad commands is the session's limit: 500 each, then 421 and the connection closed.
          const codes = codesOf(c, () => true);
          assert.deepEqual(codes, [220, 250, ...Array(20).fill(500), 421]);
          assert.ok(await c.closedByServer());
        });
      }
      const verbs = "EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH".split(" ");
      for (let i = 0; i < 4; i++) {
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "EHLO attacker.test", 250);
          for (let n = 0; n < 40 && !c.ended; n++) {
            const r = await c.command(`${junk.pick(verbs)} ${junk.printable(junk.int(1, 300))}`);
            if (r === "" || r.startsWith("421")) break;
          }
          // Junk arguments are refused (5xx) or ignored where the verb takes any (250 EHLO, NOOP; 252
          // VRFY; 214 HELP); they never start anything (no 334, 354, 235).
          codesOf(c, (code) => refusal(code) || [214, 220, 250, 252].includes(code));
        });
      }
      await x.healthy("printable junk");
    });

    await step(
      "NUL bytes in commands and in content are refused, and nothing of the content is kept",
      async () => {
        const cases: [line: string, code: number][] = [
          ["\0", 500],
          ["\0\0\0\0\0\0\0\0", 500],
          ["NOOP\0", 500],
          ["NOOP \0", 250],
          ["\0MAIL FROM:<a@sender.test>", 500],
          ["MAIL FROM:<a\0b@sender.test>", 501],
          ["MAIL FROM:<a@sender.test>\0", 501],
          ["MAIL FROM:<a@sender.test> \0", 501],
          ["MAIL FROM:<a@sender.test> SIZE=1\0", 501],
          ["VRFY \0", 252],
          ["EHLO \0", 250],
        ];
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "EHLO attacker.test", 250);
          for (const [line, code] of cases) await expectReply(c, line, code);
          await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
          await expectReply(c, "RCPT TO:<nul@example.com>", 250);
          await expectReply(c, "RCPT TO:<nul\0@example.com>", 501);
          await expectReply(c, "DATA", 354);
          const body = "Subject: nul-content\r\n\r\n\0\0 line with NULs \0 in it\r\n\0\r\n";
          await c.send(body + ".\r\n");
          await expectReply(c, null, 554); // 5.6.0, read to its end: the session goes on
          await expectReply(c, "NOOP", 250);
          await expectReply(c, "QUIT", 221);
          codesOf(c, () => true);
        });
        await x.healthy("NUL bytes");
      },
    );

    await step("a 1 MB line is refused as a command and kept whole as content", async () => {
      const huge = junk.printable(MB);
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await c.send(huge);
        await expectReply(c, "", 500);
        await expectReply(c, "EHLO attacker.test", 250);
        await c.send("MAIL FROM:<" + huge);
        await expectReply(c, ">", 500);
        await expectReply(c, "QUIT", 221);
        codesOf(c, () => true);
      });
      for (const end of ["close", "reset"] as const) {
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await c.send(huge);
          if (end === "close") await c.close();
          else await c.reset();
        });
      }
      await x.session(async (c) => {
        await envelope(c);
        await expectReply(c, "DATA", 354);
        const body = `Subject: huge-line\r\n\r\n${huge}\r\n`;
        x.expect("huge-line", body);
        await c.send(body.replace(/(^|\r\n)\./g, "$1..") + ".\r\n");
        await expectReply(c, null, 250);
        // Over max_message_size: refused after the dot, nothing kept.
        await expectReply(c, "MAIL FROM:<a@sender.test>", 250);
        await expectReply(c, "RCPT TO:<big@example.com>", 250);
        await expectReply(c, "DATA", 354);
        const line = "y".repeat(998) + "\r\n";
        await c.send(line.repeat(Math.ceil((MAX_SIZE + 1000) / line.length)) + ".\r\n");
        await expectReply(c, null, 552);
        await expectReply(c, "QUIT", 221);
        codesOf(c, () => true);
      });
      for (const end of ["close", "reset"] as const) {
        await x.session(async (c) => {
          await envelope(c);
          await expectReply(c, "DATA", 354);
          await c.send(
            `Subject: too big\r\n\r\n${"z".repeat(998)}\r\n`.repeat(Math.ceil(MAX_SIZE / 1000) + 10),
          );
          if (end === "close") await c.close(); // over max_message_size and never ended: nothing kept
          else await c.reset();
        });
      }
      await x.healthy("huge lines");
    });

    await step("thousands of pipelined commands in one write get one reply each, in order", async () => {
      const rounds = 700;
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        const one = "MAIL FROM:<p@sender.test>\r\nRCPT TO:<r@example.com>\r\nRSET\r\n";
        await c.send(one.repeat(rounds) + "QUIT\r\n");
        assert.ok(await c.closedByServer(30_000), "the server closes after QUIT");
        // max_recipients_per_session (1000): later recipients get 452, everything else 250.
        const want = [220, 250];
        for (let i = 0; i < rounds; i++) want.push(250, i < 1000 ? 250 : 452, 250);
        assert.deepEqual(codesOf(c, () => true), [...want, 221]);
      });
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        await c.send("NOOP\r\n".repeat(3000));
        assert.ok(await c.closedByServer());
        assert.deepEqual(codesOf(c, () => true), [220, 250, 554], "NOOP ends a group: 554 and closed");
      });
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "HELO attacker.test", 250);
        await c.send("MAIL FROM:<p@sender.test>\r\nRCPT TO:<r@example.com>\r\n".repeat(1000));
        assert.ok(await c.closedByServer());
        assert.deepEqual(codesOf(c, () => true), [220, 250, 554], "no pipelining without EHLO");
      });
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        await c.send(
          "MAIL FROM:<p@sender.test>\r\nRCPT TO:<r@example.com>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\n",
        );
        assert.ok(await c.closedByServer());
        assert.deepEqual(codesOf(c, () => true), [220, 250, 250, 250, 554], "content pipelined behind DATA");
      });
      await x.session(async (c) => {
        // A client that pipelines megabytes of replies' worth without reading, then resets: the session
        // stuck writing its replies ends with the connection.
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
        c.socket.pause();
        c.socket.write("MAIL FROM:<p@sender.test> SIZE=99999999999\r\n".repeat(30_000));
        await new Promise((r) => setTimeout(r, 500));
        await c.reset();
      });
      await x.healthy("pipelining floods");
    });

    await step("commands and content split byte by byte across writes", async () => {
      await x.session(async (c) => {
        await expectReply(c, null, 220);
        const say = async (line: string, code: number) => {
          await c.trickle(line + "\r\n");
          await expectReply(c, null, code);
        };
        await say("EHLO trickle.test", 250);
        await say("MAIL FROM:<slow@sender.test> SIZE=300", 250);
        await say('RCPT TO:<"slow\\"quoted"@example.com>', 250);
        await say("DATA", 354);
        const body = "Subject: byte-by-byte\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n\r\nlast\r\n";
        x.expect("byte-by-byte", body);
        await c.trickle(body.replace(/(^|\r\n)\./g, "$1..") + ".\r\n");
        await expectReply(c, null, 250);
        await say("MAIL FROM:<slow@sender.test>", 250);
        await say("RCPT TO:<chunks@example.com>", 250);
        const chunk = "Subject: bdat-by-byte\r\n\r\nno dot stuffing here:\r\n.\r\n";
        x.expect("bdat-by-byte", chunk);
        await c.trickle(`BDAT ${chunk.length} LAST\r\n${chunk}`);
        await expectReply(c, null, 250);
        await say("QUIT", 221);
        codesOf(c, () => true);
      });
      await x.healthy("byte by byte");
      const sent = x.sink.messages.find((m) => afterReceived(m.data).includes("byte-by-byte"));
      assert.deepEqual(sent?.recipients, ['"slow\\"quoted"@example.com']);
    });

    await step("connections dropped (FIN and RST) at every phase leave nothing behind", async () => {
      const ehlo = async (c: RawClient) => {
        await expectReply(c, null, 220);
        await expectReply(c, "EHLO attacker.test", 250);
      };
      const data = async (c: RawClient) => {
        await envelope(c);
        await expectReply(c, "DATA", 354);
      };
      const phases: [label: string, drive: (c: RawClient, end: string, tag: string) => Promise<void>][] = [
        ["before the greeting", async () => {}],
        ["after the greeting", (c) => expectReply(c, null, 220).then(() => {})],
        ["in the middle of a command", async (c) => {
          await expectReply(c, null, 220);
          await c.send("EHLO attack");
        }],
        ["after EHLO", ehlo],
        ["after MAIL", async (c) => {
          await ehlo(c);
          await expectReply(c, "MAIL FROM:<attacker@sender.test>", 250);
        }],
        ["after RCPT", (c) => envelope(c)],
        ["after the 354 to DATA", data],
        ["in the middle of the content", async (c) => {
          await data(c);
          await c.send("Subject: partial\r\n\r\nhalf a line");
        }],
        ["inside the end marker", async (c) => {
          await data(c);
          await c.send("Subject: partial\r\n\r\nbody\r\n.\r");
        }],
        ["in the middle of a BDAT chunk", async (c) => {
          await envelope(c);
          await c.send("BDAT 100 LAST\r\n0123456789");
        }],
        ["between BDAT chunks", async (c) => {
          await envelope(c);
          await c.send("BDAT 5\r\nhello");
          await expectReply(c, null, 250);
        }],
        ["in the middle of AUTH", async (c) => {
          await ehlo(c);
          await expectReply(c, "AUTH LOGIN", 334);
        }],
        ["after the 220 to STARTTLS", async (c) => {
          await ehlo(c);
          await expectReply(c, "STARTTLS", 220);
        }],
        ["right after the final dot, before reading the 250", async (c, end, tag) => {
          await data(c);
          const body = `Subject: abrupt-${tag}\r\n\r\nsent, then gone\r\n`;
          if (end === "close") x.expect(`abrupt-${tag}`, body); // data and FIN arrive in order: committed
          else x.maybe++; // a reset may overtake the content
          await c.send(body + ".\r\n");
        }],
      ];
      const dropAt = async ([label, drive]: typeof phases[number], end: string, tag: string) => {
        const c = await x.open();
        try {
          await drive(c, end, tag);
          codesOf(c, (code) => code < 400, true);
        } catch (err) {
          throw new Error(`${label}, then ${end}: ${(err as Error).message}`);
        } finally {
          if (end === "close") await c.close();
          else await c.reset();
          x.clients.delete(c);
        }
      };
      for (const phase of phases) {
        for (const end of ["close", "reset"]) await dropAt(phase, end, end);
      }
      await x.healthy("abrupt closes, one at a time");
      // The same, 40 sessions at once (qmgr allows 50 per client), each dropped at a random phase.
      await Promise.all(
        Array.from(
          { length: 40 },
          (_, i) => dropAt(junk.pick(phases), junk.pick(["close", "reset"]), `crowd-${i}`),
        ),
      );
      await x.healthy("abrupt closes, 40 at once");
    });

    await step("half-closed sockets get every reply owed, then the server closes", async () => {
      const cases: [label: string, drive: (c: RawClient) => Promise<unknown>, codes: number[]][] = [
        ["FIN right after the greeting", (c) => expectReply(c, null, 220), [220]],
        ["FIN after EHLO", async (c) => {
          await expectReply(c, null, 220);
          await c.send("EHLO half.test\r\n");
        }, [220, 250]],
        ["FIN after junk pipelined behind EHLO", async (c) => {
          await expectReply(c, null, 220);
          await c.send("EHLO half.test\r\nFOO\r\nBAR baz\r\n");
        }, [220, 554]],
        ["FIN in the middle of a command", async (c) => {
          await expectReply(c, null, 220);
          await c.send("NOOP");
        }, [220]],
        ["FIN in the middle of the content", async (c) => {
          await envelope(c);
          await expectReply(c, "DATA", 354);
          await c.send("Subject: half\r\n\r\nunfinished");
        }, [220, 250, 250, 250, 354]],
        ["FIN in the middle of a BDAT chunk", async (c) => {
          await envelope(c);
          await c.send("BDAT 50 LAST\r\nabc");
        }, [220, 250, 250, 250]],
        ["FIN after a whole message and QUIT", async (c) => {
          await envelope(c);
          await expectReply(c, "DATA", 354);
          const body = "Subject: half-closed-sent\r\n\r\ncomplete\r\n";
          x.expect("half-closed-sent", body);
          await c.send(body + ".\r\nQUIT\r\n");
        }, [220, 250, 250, 250, 354, 250, 221]],
      ];
      for (const [label, drive, want] of cases) {
        await x.session(async (c) => {
          await drive(c);
          c.end();
          assert.ok(await c.closedByServer(), `${label}: the server closes`);
          assert.deepEqual(codesOf(c, () => true), want, label);
        });
      }
      await x.healthy("half-closed sockets");
    });

    await step(
      "a crowd of connections opened and dropped at once leaves the connection limit intact",
      async () => {
        const crowd = await Promise.all(Array.from({ length: 150 }, () => x.open()));
        await Promise.all(crowd.map((c, i) => i % 2 === 0 ? c.close() : c.reset()));
        for (const c of crowd) x.clients.delete(c);
        // qmgr allows 50 sessions per client (qmgr.smtps.max_connections): once the crowd's sessions are
        // counted as ended, 50 at once all get the greeting and the 51st gets 421.
        let held: RawClient[] = [];
        const deadline = Date.now() + 15_000;
        for (;;) {
          held = await Promise.all(Array.from({ length: 50 }, () => x.open()));
          const firsts = await Promise.all(held.map((c) => c.reply()));
          if (firsts.every((r) => r.startsWith("220 "))) break;
          assert.ok(
            Date.now() < deadline,
            `the crowd's sessions still count: ${firsts.filter((r) => !r.startsWith("220"))[0]}`,
          );
          for (const c of held) await c.close();
          await new Promise((r) => setTimeout(r, 200));
        }
        await x.session(async (c) => {
          assert.match(await c.reply(), /^421 4\.7\.0 /);
          assert.ok(await c.closedByServer());
        });
        for (const c of held) {
          await expectReply(c, "QUIT", 221);
          codesOf(c, () => true);
        }
        await x.healthy("crowd");
        await x.session(async (c) => {
          await expectReply(c, null, 220);
          await expectReply(c, "QUIT", 221);
        });
      },
    );

    await step(
      "a normal message still goes through, byte for byte, and every refusal was logged",
      () => x.normalMessage(100),
    );
  } finally {
    await x.stop();
  }
});
