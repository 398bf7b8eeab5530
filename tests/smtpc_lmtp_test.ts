// smtpc speaks LMTP (RFC 2033) over the unix socket LMTP_socket and over TCP: LHLO, one reply per
// accepted recipient after the final dot, each recipient decided by its own reply (sent, temp, perm);
// and end to end, an `lmtp:` mailertable entry without a host takes mail through the whole MTA to the
// LMTP server on the socket.

import { relayText, replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { LMTP_SOCKET_ADDRESS } from "../components/protocol/messages.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type Sink, type SinkOptions, startSink } from "./helpers/smtp_sink.ts";
import { rcpts, statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const SOCKET_ROUTE = {
  protocol: "lmtp" as const,
  port: 24,
  hosts: [{ name: "localhost", address: LMTP_SOCKET_ADDRESS }],
};

/** Per recipient: ok@ gets 250, full@ 452 after DATA, gone@ 550 after DATA, norcpt@ 550 at RCPT. */
const MIXED: SinkOptions = {
  lmtp: true,
  rcptReply: (r) => r.startsWith("norcpt@") ? "550 5.1.1 No such user" : "250 2.1.5 Ok",
  dataReply: (m) =>
    m.recipients.map((r) =>
      r.startsWith("full@")
        ? "452 4.2.2 Mailbox full"
        : r.startsWith("gone@")
        ? "550 5.2.1 Mailbox disabled"
        : "250 2.0.0 Delivered"
    ),
};
const MIXED_RCPTS = rcpts("ok@local.test", "full@local.test", "norcpt@local.test", "gone@local.test");
const MIXED_WANT = [
  "0:sent 250 2.0.0 Delivered",
  "1:temp 452 4.2.2 Mailbox full",
  "2:perm 550 5.1.1 No such user",
  "3:perm 550 5.2.1 Mailbox disabled",
];

Deno.test("smtpc delivers over LMTP with one result per recipient", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_lmtp_" });
  const path = join(dir, "lmtp.sock");
  const port = freePort();
  let sink: Sink | undefined;
  try {
    await withSmtpc({ ports: [port], adjust: (c) => c.smtpc.LMTP_socket = path }, async ({ deliver }) => {
      await t.step("over the unix socket LMTP_socket: mixed replies after the final dot", async () => {
        sink = await startSink({ path, ...MIXED });
        const r = await deliver("Subject: lmtp\r\n\r\nhi\r\n", {
          recipients: MIXED_RCPTS,
          route: SOCKET_ROUTE,
        });
        assert.deepEqual(r.results.map((x) => `${x.index}:${x.status} ${replyLine(x.reply)}`), MIXED_WANT);
        assert.equal(relayText(r.relay), `localhost[${path}]`);
        assert.equal(sink.messages.length, 1);
        assert.deepEqual(sink.messages[0].recipients, [
          "ok@local.test",
          "full@local.test",
          "gone@local.test",
        ]);
        assert.equal(sink.messages[0].helo, "client.test");
        await sink.close();
        sink = undefined;
      });
      await t.step("over TCP: the same, to the route's port", async () => {
        sink = await startSink({ port, ...MIXED });
        const r = await deliver("Subject: lmtp\r\n\r\nhi\r\n", {
          recipients: MIXED_RCPTS,
          route: { protocol: "lmtp", port, hosts: [{ name: "lmtp.test", address: "127.0.0.1" }] },
        });
        assert.deepEqual(r.results.map((x) => `${x.index}:${x.status} ${replyLine(x.reply)}`), MIXED_WANT);
        await sink.close();
        sink = undefined;
      });
      await t.step("a socket nobody listens on defers", async () => {
        const r = await deliver("x\r\n", { route: SOCKET_ROUTE });
        assert.deepEqual(statuses(r), ["0:temp"]);
        assert.match(replyLine(r.results[0].reply), /^connect to localhost\[.*lmtp\.sock\]: /);
      });
    });
    await withSmtpc({ ports: [port], adjust: (c) => delete c.smtpc.LMTP_socket }, async ({ deliver }) => {
      await t.step("without LMTP_socket a socket route defers, saying why", async () => {
        const r = await deliver("x\r\n", { route: SOCKET_ROUTE });
        assert.deepEqual(statuses(r), ["0:temp"]);
        assert.equal(
          replyLine(r.results[0].reply),
          "connect to the LMTP socket: LMTP_socket is not configured",
        );
      });
    });
  } finally {
    await sink?.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an lmtp: mailertable entry without a host delivers through the MTA to LMTP_socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_lmtp_e2e_" });
  const path = join(dir, "lmtp.sock");
  const sink = await startSink({ path, lmtp: true });
  try {
    const mta = await startTestMta({
      dir,
      mailertable: "local.test\tlmtp:\n",
      adjust: (c) => c.smtpc.LMTP_socket = path,
    });
    try {
      const reply = await smtpSend(mta.port, {
        from: "a@origin.test",
        to: ["u1@local.test", "u2@local.test"],
        body: "Subject: to the socket\r\n\r\nhello\r\n",
      });
      assert.match(reply, /^250 /);
      await sink.waitFor(1, 15_000);
      assert.deepEqual(sink.messages[0].recipients, ["u1@local.test", "u2@local.test"]);
      assert.match(
        new TextDecoder().decode(sink.messages[0].data),
        /Subject: to the socket\r\n\r\nhello\r\n$/,
      );
    } finally {
      await mta.stop();
    }
  } finally {
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});
