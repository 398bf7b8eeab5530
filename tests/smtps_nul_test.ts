// NUL bytes in message content against the real smtps worker: RFC 5321 allows none, and a next hop that
// strips them would see another message than the one checked here, so smtps refuses such content with
// 554 5.6.0, in DATA (after the final dot: the content is read to its end) and in BDAT (the chunk holding
// one), keeps nothing of it (no envelope, no CDB file) and goes on with the session.

import assert from "node:assert/strict";
import { cdbFiles, runDialogue, SmtpClient, startSmtps } from "./helpers/smtps_dialogue.ts";

const bdat = (chunk: string, last = false) =>
  `BDAT ${new TextEncoder().encode(chunk).length}${last ? " LAST" : ""}\r\n${chunk}`;

Deno.test("smtps refuses content holding a NUL byte with 554 5.6.0 and keeps nothing of it", async (t) => {
  const s = await startSmtps();
  const envelope: [string, number][] = [["MAIL FROM:<a@example.org>", 250], ["RCPT TO:<b@example.com>", 250]];
  try {
    await t.step("DATA: refused after the final dot, the session goes on", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [[null, 220], ["EHLO client.example", 250], ...envelope, ["DATA", 354]]);
        await runDialogue(c, [
          [
            "Subject: nul\r\n\r\nbefore\0after\r\n" + "x".repeat(70_000) + "\r\n.",
            "554 5.6.0 Message content contains NUL characters",
          ],
          ["NOOP", 250],
        ]);
        assert.equal(s.envelopes.length, 0);
        assert.deepEqual(await cdbFiles(s.cdbDir), []);
        await runDialogue(c, [...envelope, ["DATA", 354], [
          "Subject: clean\r\n\r\nok\r\n.",
          "250 2.0.0 Ok: queued",
        ]]);
        assert.equal(s.envelopes.length, 1);
        await runDialogue(c, [["QUIT", 221]]);
      } finally {
        c.close();
      }
    });
    await t.step("BDAT: the chunk holding a NUL is refused, the transaction dropped", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        const before = await cdbFiles(s.cdbDir); // the clean message of the first step
        await runDialogue(c, [[null, 220], ["EHLO client.example", 250], ...envelope]);
        await c.send(bdat("Subject: chunked\r\n\r\n"));
        await runDialogue(c, [[null, "250 2.0.0 Ok: 20 octets received"]]);
        await c.send(bdat("a\0b\r\n"));
        await runDialogue(c, [[null, "554 5.6.0 Message content contains NUL characters"]]);
        await c.send(bdat("more\r\n", true));
        await runDialogue(c, [[null, 503], ["RSET", 250], ["NOOP", 250]]);
        assert.equal(s.envelopes.length, 1, "only the clean message of the first step");
        assert.deepEqual(await cdbFiles(s.cdbDir), before, "nothing of the refused message stays");
        await runDialogue(c, [["QUIT", 221]]);
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});
