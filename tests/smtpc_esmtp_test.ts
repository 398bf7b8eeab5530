// smtpc's ESMTP against the test sink: a transaction's recipients in one envelope (qmgr cut the
// transactions to smtp_/lmtp_max_rcpts_per_transaction already); a server's 452 (too many recipients) sends the
// rest in a next transaction; mixed 2xx/4xx/5xx replies give sent/temp/perm; DSN parameters only to a
// server offering DSN (and the result says whether it did); SIZE, 8BITMIME and SMTPUTF8 as offered.

import { replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import type { Config } from "../config/types.ts";
import { freePort } from "./helpers/harness.ts";
import { type Sink, type SinkOptions, startSink } from "./helpers/smtp_sink.ts";
import { rcpts, statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

async function withSink(port: number, opts: SinkOptions, fn: (sink: Sink) => Promise<void>): Promise<void> {
  const sink = await startSink({ port, ...opts });
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

const FIVE = rcpts("r0@d.test", "r1@d.test", "r2@d.test", "r3@d.test", "r4@d.test");
const envelopes = (sink: Sink) => sink.messages.map((m) => m.recipients.map((r) => r[1]).join(""));

Deno.test("smtpc sends a transaction's recipients in one mail transaction: qmgr alone splits them", async (t) => {
  const port = freePort();
  const adjust = (c: Config) => {
    // qmgr's limits: smtpc does not read them (qmgr cut the transactions already).
    c.qmgr.smtpc.smtp_max_rcpts_per_transaction = 2;
    c.qmgr.smtpc.lmtp_max_rcpts_per_transaction = 3;
  };
  await withSmtpc({ ports: [port], adjust }, async ({ deliver }) => {
    await t.step("five recipients over SMTP: one envelope", async () => {
      await withSink(port, {}, async (sink) => {
        const r = await deliver("x\r\n", { recipients: FIVE });
        assert.deepEqual(statuses(r), ["0:sent", "1:sent", "2:sent", "3:sent", "4:sent"]);
        assert.deepEqual(envelopes(sink), ["01234"]);
        assert.equal(sink.connections, 1);
      });
    });
    await t.step("five recipients over LMTP: one envelope, a reply each", async () => {
      await withSink(port, { lmtp: true }, async (sink) => {
        const r = await deliver("x\r\n", {
          recipients: FIVE,
          route: { protocol: "lmtp", port, hosts: [{ name: "lmtp.test", address: "127.0.0.1" }] },
        });
        assert.deepEqual(statuses(r), ["0:sent", "1:sent", "2:sent", "3:sent", "4:sent"]);
        assert.deepEqual(envelopes(sink), ["01234"]);
      });
    });
  });
});

Deno.test("smtpc decides each recipient by its own reply", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port] }, async ({ deliver }) => {
    await t.step("a server's 452 sends the rest in a next transaction on the same connection", async () => {
      await withSink(port, { maxRcpts: 2 }, async (sink) => {
        const r = await deliver("x\r\n", { recipients: FIVE });
        assert.deepEqual(statuses(r), ["0:sent", "1:sent", "2:sent", "3:sent", "4:sent"]);
        assert.deepEqual(envelopes(sink), ["01", "23", "4"]);
        assert.equal(sink.connections, 1);
      });
    });
    await t.step("a 452 to every recipient leaves them temp, without another try", async () => {
      await withSink(port, { maxRcpts: 0 }, async (sink) => {
        const r = await deliver("x\r\n", { recipients: FIVE.slice(0, 2) });
        assert.deepEqual(statuses(r), ["0:temp", "1:temp"]);
        assert.equal(replyLine(r.results[0].reply), "452 4.5.3 Too many recipients");
        assert.equal(sink.commands.filter((c) => c.startsWith("MAIL")).length, 1);
      });
    });
    await t.step("2xx, 4xx and 5xx to RCPT: sent, temp (retried later), perm", async () => {
      const rcptReply = (r: string) =>
        r.startsWith("later@")
          ? "451 4.7.1 Greylisted"
          : r.startsWith("never@")
          ? "550 5.1.1 Unknown"
          : "250 Ok";
      await withSink(port, { rcptReply }, async (sink) => {
        const r = await deliver("x\r\n", { recipients: rcpts("ok@d.test", "later@d.test", "never@d.test") });
        assert.deepEqual(r.results.map((x) => `${x.status} ${replyLine(x.reply)}`), [
          "sent 250 2.0.0 Ok: queued",
          "temp 451 4.7.1 Greylisted",
          "perm 550 5.1.1 Unknown",
        ]);
        assert.deepEqual(sink.messages[0].recipients, ["ok@d.test"]);
      });
    });
  });
});

Deno.test("smtpc uses the extensions a server offers, and only those", async (t) => {
  const port = freePort();
  // Each step has a server with other extensions on the same port: no connection may outlive its step.
  const adjust = (c: Config) => c.smtpc.connection_cache_time_limit = 0;
  await withSmtpc({ ports: [port], adjust }, async ({ deliver }) => {
    const dsnTa = {
      ret: "HDRS" as const,
      envid: "id+1=x",
      recipients: [{ address: "a@d.test", index: 0, notify: ["SUCCESS", "DELAY"], orcpt: "rfc822;A@d.test" }],
    };
    await t.step("DSN offered: RET, ENVID, NOTIFY and ORCPT go on; the result says DSN", async () => {
      await withSink(port, { extensions: ["DSN", "PIPELINING"] }, async (sink) => {
        const r = await deliver("x\r\n", dsnTa);
        assert.equal(r.dsn, true);
        assert.ok(sink.commands.includes("MAIL FROM:<sender@origin.test> RET=HDRS ENVID=id+2B1+3Dx"));
        assert.ok(sink.commands.includes("RCPT TO:<a@d.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;A@d.test"));
      });
    });
    await t.step("no DSN: plain commands; the result says so (success notices are ours)", async () => {
      await withSink(port, { extensions: ["PIPELINING"] }, async (sink) => {
        const r = await deliver("x\r\n", dsnTa);
        assert.equal(r.dsn, false);
        assert.deepEqual(sink.commands.filter((c) => /^(MAIL|RCPT)/.test(c)), [
          "MAIL FROM:<sender@origin.test>",
          "RCPT TO:<a@d.test>",
        ]);
      });
    });
    await t.step("a message over the server's SIZE is not sent at all", async () => {
      await withSink(port, { extensions: ["SIZE 10"] }, async (sink) => {
        const r = await deliver("0123456789abcdef\r\n");
        assert.deepEqual(statuses(r), ["0:perm"]);
        assert.match(replyLine(r.results[0].reply), /^552 5\.3\.4 message too big for mx\.test/);
        assert.equal(sink.commands.filter((c) => c.startsWith("MAIL")).length, 0);
      });
    });
    await t.step("8-bit content to a server without 8BITMIME goes as it is, without BODY=", async () => {
      await withSink(port, { extensions: ["PIPELINING"] }, async (sink) => {
        const bytes = new Uint8Array([...new TextEncoder().encode("Subject: caf"), 0xc3, 0xa9, 13, 10]);
        const r = await deliver(bytes, { bodyType: "8BITMIME" });
        assert.deepEqual(statuses(r), ["0:sent"]);
        assert.ok(sink.commands.includes("MAIL FROM:<sender@origin.test>"), sink.commands.join(" | "));
        assert.deepEqual(sink.messages[0].data, bytes);
      });
    });
    await t.step("an SMTPUTF8 envelope needs SMTPUTF8: refused without, passed on with it", async () => {
      const utf8 = { smtputf8: true, recipients: [{ address: "josé@d.test", index: 0 }] };
      await withSink(port, { extensions: ["8BITMIME"] }, async (sink) => {
        const r = await deliver("x\r\n", utf8);
        assert.deepEqual(statuses(r), ["0:perm"]);
        assert.match(replyLine(r.results[0].reply), /^553 5\.6\.7 SMTPUTF8 is required/);
        assert.equal(sink.count, 0);
      });
      await withSink(port, { extensions: ["8BITMIME", "SMTPUTF8"] }, async (sink) => {
        const r = await deliver("x\r\n", utf8);
        assert.deepEqual(statuses(r), ["0:sent"]);
        assert.ok(
          sink.commands.includes("MAIL FROM:<sender@origin.test> SMTPUTF8"),
          sink.commands.join(" | "),
        );
      });
    });
  });
});
