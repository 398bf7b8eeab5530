// smtpc delivers through ESMTP and LMTP: the real smtpc worker, with only the permissions it gets in
// production (connect to the destination port anywhere, read the CDB directory), talks to the test sink
// (tests/helpers/smtp_sink.ts) on 127.0.0.1; the test plays qmgr and checks results and received bytes.

import { relayText, replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../config/defaults.ts";
import type { DeliveryTransaction, RecipientResult, SmtpcResult } from "../components/protocol/messages.ts";
import { freePort, type Harness, startComponent } from "./helpers/harness.ts";
import { startSink } from "./helpers/smtp_sink.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One smtpc worker allowed to reach `ports`, reading CDB files from a temp dir, for a whole test. */
async function withSmtpc(
  ports: number[],
  fn: (env: { deliver: (ta: DeliveryTransaction) => Promise<SmtpcResult>; dir: string }) => Promise<void>,
  ioTimeout = 5_000,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_test_" });
  const config = structuredClone(defaultConfig());
  config.hostname = "client.test";
  config.CDB_base_directory = dir;
  config.smtpc = { ...config.smtpc, io_timeout: ioTimeout, ports };
  let h: Harness | undefined;
  try {
    h = await startComponent("smtpc", config, {
      net: ports.map((p) => `0.0.0.0/0:${p}`),
      read: [dir],
    }, { qmgr: () => {} });
    const qmgr = h.peers.get("qmgr")!;
    await fn({
      dir,
      deliver: async (ta) => {
        const answer = await qmgr.request("smtpc", { type: "qmgr.deliver", ta }, 20_000);
        assert.equal(answer.type, "smtpc.result", JSON.stringify(answer));
        return answer as SmtpcResult;
      },
    });
  } finally {
    await h?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

let serial = 0;

/** Writes `content` as a CDB file in `dir` and builds a transaction for it. */
async function transaction(
  dir: string,
  content: string | Uint8Array,
  port: number,
  over: Partial<DeliveryTransaction> = {},
): Promise<DeliveryTransaction> {
  const id = `T${++serial}`;
  const path = join(dir, id);
  const bytes = typeof content === "string" ? enc.encode(content) : content;
  await Deno.writeFile(path, bytes);
  return {
    taId: `ta-${id}`,
    messageId: id,
    cdbPath: path,
    size: bytes.length,
    sender: "sender@origin.test",
    recipients: [{ address: "rcpt@dest.test", index: 0 }],
    route: { protocol: "esmtp", port, hosts: [{ name: "sink.test", address: "127.0.0.1" }] },
    ...over,
  };
}

const rcpts = (...addresses: string[]) => addresses.map((address, index) => ({ address, index }));
const statuses = (r: SmtpcResult) => r.results.map((x: RecipientResult) => `${x.index}:${x.status}`);

Deno.test("smtpc delivers through ESMTP", async (t) => {
  const ports = [freePort(), freePort(), freePort(), freePort()];
  await withSmtpc(ports, async ({ deliver, dir }) => {
    await t.step("content arrives byte for byte, dot-stuffed lines round-trip", async () => {
      const sink = await startSink({ port: ports[0] });
      try {
        const content = "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nmiddle . line\r\n" +
          "x".repeat(200_000) + "\r\nend\r\n";
        const ta = await transaction(dir, content, ports[0]);
        const result = await deliver(ta);
        assert.deepEqual(statuses(result), ["0:sent"]);
        assert.equal(replyLine(result.results[0].reply), "250 2.0.0 Ok: queued");
        assert.equal(relayText(result.relay), `sink.test[127.0.0.1]:${ports[0]}`);
        assert.equal(result.taId, ta.taId);
        assert.equal(sink.messages.length, 1);
        const msg = sink.messages[0];
        assert.equal(msg.sender, "sender@origin.test");
        assert.deepEqual(msg.recipients, ["rcpt@dest.test"]);
        assert.equal(msg.helo, "client.test");
        assert.equal(dec.decode(msg.data), content);
      } finally {
        await sink.close();
      }
    });

    await t.step("NUL bytes in a queued file are removed on the way out, never sent raw", async () => {
      const sink = await startSink({ port: ports[0] });
      try {
        // smtps refuses content with NULs; a file queued by an older version may still hold some.
        const ta = await transaction(dir, "Subject: nul\0s\r\n\r\n\0a\0b\r\n\0\r\n", ports[0]);
        assert.deepEqual(statuses(await deliver(ta)), ["0:sent"]);
        assert.equal(sink.messages.length, 1);
        assert.equal(sink.messages[0].data.indexOf(0), -1, "no NUL reached the server");
        assert.equal(dec.decode(sink.messages[0].data), "Subject: nuls\r\n\r\nab\r\n\r\n");
      } finally {
        await sink.close();
      }
    });

    await t.step("several recipients travel in one transaction, each decided by its RCPT reply", async () => {
      const sink = await startSink({
        port: ports[0],
        rcptReply: (r) =>
          r.startsWith("busy")
            ? "451 4.2.1 Mailbox busy"
            : r.startsWith("gone")
            ? "550 5.1.1 No such user"
            : "250 2.1.5 Ok",
      });
      try {
        const ta = await transaction(dir, "Subject: many\r\n\r\nhi\r\n", ports[0], {
          recipients: [
            { address: "one@dest.test", index: 3 },
            { address: "busy@dest.test", index: 5 },
            { address: "gone@dest.test", index: 7 },
            { address: "two@dest.test", index: 8 },
          ],
        });
        const result = await deliver(ta);
        assert.deepEqual(statuses(result), ["3:sent", "5:temp", "7:perm", "8:sent"]);
        assert.deepEqual(result.results.map((r) => replyLine(r.reply)), [
          "250 2.0.0 Ok: queued",
          "451 4.2.1 Mailbox busy",
          "550 5.1.1 No such user",
          "250 2.0.0 Ok: queued",
        ]);
        assert.equal(sink.count, 1);
        assert.deepEqual(sink.messages[0].recipients, ["one@dest.test", "two@dest.test"]);
      } finally {
        await sink.close();
      }
    });

    await t.step("when no recipient is accepted no message is sent", async () => {
      const sink = await startSink({ port: ports[0], rcptReply: () => "550 5.7.1 Relaying denied" });
      try {
        const result = await deliver(
          await transaction(dir, "x\r\n", ports[0], { recipients: rcpts("a@x", "b@x") }),
        );
        assert.deepEqual(statuses(result), ["0:perm", "1:perm"]);
        assert.equal(replyLine(result.results[0].reply), "550 5.7.1 Relaying denied");
        assert.equal(sink.count, 0);
      } finally {
        await sink.close();
      }
    });

    await t.step("without PIPELINING the same results come one command at a time", async () => {
      const sink = await startSink({
        port: ports[0],
        extensions: ["8BITMIME"],
        rcptReply: (r) => r.startsWith("busy") ? "452 4.5.3 Too many recipients" : "250 2.1.5 Ok",
      });
      try {
        const ta = await transaction(dir, "Subject: slow\r\n\r\nhi\r\n", ports[0], {
          recipients: rcpts("a@dest.test", "busy@dest.test"),
        });
        const result = await deliver(ta);
        assert.deepEqual(statuses(result), ["0:sent", "1:temp"]);
        assert.equal(dec.decode(sink.messages[0].data), "Subject: slow\r\n\r\nhi\r\n");
      } finally {
        await sink.close();
      }
    });

    await t.step(
      "bare LF and bare CR in stored content leave as CRLF, smuggling sequences included",
      async () => {
        const sink = await startSink({ port: ports[0] });
        try {
          const stored = "Subject: bare\n\nline one\nline two\rline three\r\n.\nMAIL FROM:<evil>\r.\rend";
          const result = await deliver(await transaction(dir, stored, ports[0]));
          assert.deepEqual(statuses(result), ["0:sent"]);
          assert.equal(sink.count, 1);
          assert.equal(
            dec.decode(sink.messages[0].data),
            "Subject: bare\r\n\r\nline one\r\nline two\r\nline three\r\n.\r\nMAIL FROM:<evil>\r\n.\r\nend\r\n",
          );
        } finally {
          await sink.close();
        }
      },
    );

    await t.step("binary content and an empty message arrive intact", async () => {
      const sink = await startSink({ port: ports[0] });
      try {
        // Every octet but CR, LF (line ends of their own) and NUL (removed, see below).
        const binary = new Uint8Array(70_000).map((_, i) =>
          [0, 10, 13].includes((i * 7 + 1) % 256) ? 65 : (i * 7 + 1) % 256
        );
        binary.set(enc.encode("\r\n"), binary.length - 2);
        await deliver(await transaction(dir, binary, ports[0]));
        await deliver(await transaction(dir, "", ports[0]));
        assert.equal(sink.count, 2);
        assert.deepEqual(sink.messages[0].data, binary);
        assert.equal(sink.messages[1].data.length, 0);
      } finally {
        await sink.close();
      }
    });

    await t.step("a message larger than the advertised SIZE fails perm without DATA", async () => {
      const sink = await startSink({ port: ports[0], extensions: ["PIPELINING", "SIZE 1000"] });
      try {
        const result = await deliver(
          await transaction(dir, "x".repeat(5000), ports[0], { recipients: rcpts("a@x", "b@x") }),
        );
        assert.deepEqual(statuses(result), ["0:perm", "1:perm"]);
        assert.equal(
          replyLine(result.results[0].reply),
          `552 5.3.4 message too big for sink.test[127.0.0.1]:${ports[0]}`,
        );
        assert.equal(sink.connections, 1);
        assert.equal(sink.count, 0);
      } finally {
        await sink.close();
      }
    });

    await t.step("a refused first host is skipped for the next one", async () => {
      const sink = await startSink({ port: ports[1] });
      try {
        const result = await deliver(
          await transaction(dir, "x\r\n", ports[1], {
            route: {
              protocol: "esmtp",
              port: ports[1],
              hosts: [{ name: "down.test", address: "127.0.0.2" }, { name: "up.test", address: "127.0.0.1" }],
            },
          }),
        );
        assert.deepEqual(statuses(result), ["0:sent"]);
        assert.equal(relayText(result.relay), `up.test[127.0.0.1]:${ports[1]}`);
        assert.equal(sink.count, 1);
      } finally {
        await sink.close();
      }
    });

    await t.step("when every host is down every recipient is temp with the connect failure", async () => {
      const result = await deliver(
        await transaction(dir, "x\r\n", ports[2], {
          recipients: rcpts("a@x", "b@x"),
          route: {
            protocol: "esmtp",
            port: ports[2],
            hosts: [{ name: "a.test", address: "127.0.0.1" }, { name: "b.test", address: "127.0.0.3" }],
          },
        }),
      );
      assert.deepEqual(statuses(result), ["0:temp", "1:temp"]);
      assert.equal(
        replyLine(result.results[0].reply),
        `connect to b.test[127.0.0.3]:${ports[2]}: Connection refused`,
      );
      assert.equal(result.relay, undefined);
    });

    await t.step("a missing CDB file defers without connecting", async () => {
      const sink = await startSink({ port: ports[0] });
      try {
        const ta = await transaction(dir, "x\r\n", ports[0]);
        await Deno.remove(ta.cdbPath);
        const result = await deliver(ta);
        assert.deepEqual(statuses(result), ["0:temp"]);
        assert.match(replyLine(result.results[0].reply), /^read message content .*T\d+: /);
        assert.equal(sink.connections, 0);
      } finally {
        await sink.close();
      }
    });

    await t.step("many transactions run concurrently, one connection each", async () => {
      const sink = await startSink({ port: ports[0], keepMessages: false });
      try {
        const tas = await Promise.all(
          Array.from({ length: 40 }, (_, i) => transaction(dir, `Subject: ${i}\r\n\r\nbody\r\n`, ports[0])),
        );
        const results = await Promise.all(tas.map(deliver));
        assert.ok(results.every((r) => r.results[0].status === "sent"));
        assert.equal(sink.count, 40);
        assert.equal(sink.connections, 40);
        assert.ok(sink.maxConcurrent > 1, `max concurrent ${sink.maxConcurrent}`);
      } finally {
        await sink.close();
      }
    });
  });
});

Deno.test("smtpc delivers through LMTP with one reply per recipient after DATA", async (t) => {
  const ports = [freePort()];
  await withSmtpc(ports, async ({ deliver, dir }) => {
    const lmtpRoute = {
      protocol: "lmtp" as const,
      port: ports[0],
      hosts: [{ name: "lmtp.test", address: "127.0.0.1" }],
    };

    await t.step("each accepted recipient gets its own final reply, in RCPT order", async () => {
      const sink = await startSink({
        port: ports[0],
        lmtp: true,
        rcptReply: (r) => r.startsWith("nobody") ? "550 5.1.1 No such user" : "250 2.1.5 Ok",
        dataReply:
          () => ["250 2.0.0 <a> delivered", "452 4.2.2 Mailbox full", "552 5.2.2 Over quota forever"],
      });
      try {
        const ta = await transaction(dir, "Subject: lmtp\r\n\r\nhi\r\n", ports[0], {
          route: lmtpRoute,
          recipients: rcpts("a@local", "nobody@local", "full@local", "quota@local"),
        });
        const result = await deliver(ta);
        assert.deepEqual(statuses(result), ["0:sent", "1:perm", "2:temp", "3:perm"]);
        assert.deepEqual(result.results.map((r) => replyLine(r.reply)), [
          "250 2.0.0 <a> delivered",
          "550 5.1.1 No such user",
          "452 4.2.2 Mailbox full",
          "552 5.2.2 Over quota forever",
        ]);
        assert.equal(relayText(result.relay), `lmtp.test[127.0.0.1]:${ports[0]}`);
        assert.equal(sink.messages[0].helo, "client.test");
        assert.deepEqual(sink.messages[0].recipients, ["a@local", "full@local", "quota@local"]);
      } finally {
        await sink.close();
      }
    });

    await t.step("an LMTP server is greeted with LHLO, never EHLO", async () => {
      const sink = await startSink({ port: ports[0], lmtp: true });
      try {
        const result = await deliver(await transaction(dir, "x\r\n", ports[0], { route: lmtpRoute }));
        assert.deepEqual(statuses(result), ["0:sent"]);
        assert.equal(sink.count, 1);
      } finally {
        await sink.close();
      }
    });
  });
});
