// Graceful shutdown, driven through handleSignal() (what the SIGTERM listener calls): open sessions get
// 421 4.3.2 (idle or in the middle of a transaction), the MTA stops with exit code 0, and nothing that
// got a 250 is lost: a message still queued at the stop is delivered after a new start on the same queue.

import assert from "node:assert/strict";
import { handleSignal } from "../components/mcp/signals.ts";
import type { SupervisorEnd } from "../components/mcp/supervisor.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { SmtpConnection, smtpSend } from "./helpers/smtp_client.ts";
import { startSink } from "./helpers/smtp_sink.ts";

const decoder = new TextDecoder();

Deno.test("SIGTERM answers 421 4.3.2 to open sessions and stops the MTA with exit code 0", async () => {
  const mta = await startTestMta();
  const idle = await SmtpConnection.open(mta.port);
  const busy = await SmtpConnection.open(mta.port);
  try {
    assert.match(await idle.reply(), /^220 /);
    assert.match(await idle.command("EHLO idle.test"), /^250[ -]/);
    assert.match(await busy.reply(), /^220 /);
    assert.match(await busy.command("EHLO busy.test"), /^250[ -]/);
    assert.match(await busy.command("MAIL FROM:<a@sender.test>"), /^250 /);
    const stopping = handleSignal(mta.mta, "SIGTERM") as Promise<SupervisorEnd>;
    assert.match(await idle.reply(), /^421 4\.3\.2 /);
    assert.match(await busy.reply(), /^421 4\.3\.2 /);
    assert.deepEqual(await stopping, { code: 0, reason: "stop requested" });
    assert.deepEqual(await mta.mta.done, { code: 0, reason: "stop requested" });
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: mta.port }), "no longer listening");
  } finally {
    await idle.close();
    await busy.close();
    await mta.stop();
  }
});

Deno.test("a message queued but not delivered at SIGTERM is delivered after a new start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-shutdown-" });
  const sinkPort = freePort(); // nothing listens there yet: the first delivery attempt is deferred
  const mailertable = `example.com\t${sinkPort}^esmtp:[127.0.0.1]\n`;
  let sink;
  try {
    const first = await startTestMta({ dir, mailertable });
    let id = "";
    try {
      const reply = await smtpSend(first.port, {
        from: "a@sender.test",
        to: ["b@example.com"],
        body: "Subject: survives a stop\r\n\r\nhello\r\n",
      });
      id = /queued as ([0-9A-F]+)$/.exec(reply)?.[1] ?? "";
      assert.ok(id, reply);
    } finally {
      assert.equal((await handleSignal(first.mta, "SIGTERM") as SupervisorEnd).code, 0);
    }
    sink = await startSink({ port: sinkPort });
    const second = await startTestMta({ dir, mailertable });
    try {
      await sink.waitFor(1, 20_000);
      const received = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*/.exec(decoder.decode(sink.messages[0].data))
        ?.[0];
      assert.match(received ?? "", new RegExp(`\\bid ${id}\\b`), received);
      assert.deepEqual(sink.messages[0].recipients, ["b@example.com"]);
    } finally {
      await second.stop();
    }
  } finally {
    await sink?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
