// End to end: the whole MTA (MCP + four permission-scoped workers) started in-process, mail submitted over
// real TCP (by nodemailer, a client nobody here wrote, and by raw dialogue), relayed to in-test SMTP sinks.

import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { dialogue, smtpSend } from "./helpers/smtp_client.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { waitFor } from "./helpers/wait.ts";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** The delivery attempts recorded for the queue's recipients (the queue database, read only). */
function attempts(dir: string): number {
  const db = new DatabaseSync(join(dir, "var/ibdb/queue.sqlite"), { readOnly: true });
  try {
    return Number(db.prepare("SELECT COALESCE(SUM(tries), 0) AS n FROM recipients").get()?.n ?? 0);
  } finally {
    db.close();
  }
}

/** The message files in the queue (the CDB): none once every message is done. */
async function queueFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const sub of Deno.readDir(join(dir, "var/cdb"))) {
    if (!sub.isDirectory) continue;
    for await (const _ of Deno.readDir(join(dir, "var/cdb", sub.name))) n++;
  }
  return n;
}

const decoder = new TextDecoder();

/** Splits delivered content into its first header line (ours) and the rest. */
function splitReceived(data: Uint8Array): { received: string; rest: string } {
  const text = decoder.decode(data);
  const m = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*\r\n/.exec(text);
  assert.ok(m, `content does not start with a Received: header: ${text.slice(0, 120)}`);
  return { received: m[0], rest: text.slice(m[0].length) };
}

Deno.test("a message sent by nodemailer arrives byte for byte, plus Received:", async () => {
  const sink = await startSink();
  const mta = await startTestMta({ mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n` });
  try {
    const raw = [
      "From: Alice <alice@sender.test>",
      "To: Bob <bob@example.com>",
      "Subject: byte for byte",
      "Message-ID: <e2e-1@sender.test>",
      "",
      "Line one.",
      ".A line that starts with a dot.",
      "..Two dots.",
      ".",
      "  trailing spaces  ",
      "Last line.",
      "",
    ].join("\r\n");
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: mta.port,
      secure: false,
      ignoreTLS: true,
    });
    const info = await transport.sendMail({
      envelope: { from: "alice@sender.test", to: ["bob@example.com"] },
      raw,
    });
    transport.close();
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as [0-9A-F]{20}$/);
    await sink.waitFor(1, 15_000);
    const msg = sink.messages[0];
    assert.equal(msg.sender, "alice@sender.test");
    assert.deepEqual(msg.recipients, ["bob@example.com"]);
    const { received, rest } = splitReceived(msg.data);
    assert.equal(rest, raw);
    const id = info.response.split(" ").at(-1)!;
    assert.match(received, new RegExp(`by localhost .*id ${id}`, "s"));
    assert.match(received, /from \S+ \(\[127\.0\.0\.1\]\)/);
  } finally {
    await mta.stop();
    await sink.close();
  }
});

Deno.test("a message with recipients at two destinations reaches both", async () => {
  const one = await startSink();
  const two = await startSink();
  const mta = await startTestMta({
    mailertable: `one.test\t${one.port}^esmtp:[127.0.0.1]\ntwo.test\t${two.port}^[127.0.0.1]\n`,
  });
  try {
    const reply = await smtpSend(mta.port, {
      from: "s@sender.test",
      to: ["a@one.test", "b@two.test", "c@one.test"],
      body: "Subject: two\r\n\r\nhello\r\n",
    });
    assert.match(reply, /^250 /);
    await one.waitFor(1, 15_000);
    await two.waitFor(1, 15_000);
    assert.deepEqual(one.messages[0].recipients.toSorted(), ["a@one.test", "c@one.test"]);
    assert.deepEqual(two.messages[0].recipients, ["b@two.test"]);
    assert.ok(splitReceived(two.messages[0].data).rest.endsWith("hello\r\n"));
  } finally {
    await mta.stop();
    await one.close();
    await two.close();
  }
});

Deno.test("a destination that answers 451 gets the message on a later try", async () => {
  let tries = 0;
  const sink = await startSink({
    dataReply: () => (++tries === 1 ? "451 4.3.0 Try again later" : "250 2.0.0 Ok"),
  });
  const mta = await startTestMta({ mailertable: `later.test\t${sink.port}^[127.0.0.1]\n` });
  try {
    assert.match(
      await smtpSend(mta.port, { from: "s@sender.test", to: ["u@later.test"], body: "\r\nx\r\n" }),
      /^250 /,
    );
    await sink.waitFor(1, 20_000);
    assert.equal(tries, 2);
    assert.equal(sink.count, 1);
  } finally {
    await mta.stop();
    await sink.close();
  }
});

Deno.test("a destination that is down gets the message once it comes up", async () => {
  const port = freePort();
  const mta = await startTestMta({ mailertable: `down.test\t${port}^[127.0.0.1]\n` });
  let sink;
  try {
    assert.match(
      await smtpSend(mta.port, { from: "s@sender.test", to: ["u@down.test"], body: "\r\nx\r\n" }),
      /^250 /,
    );
    await waitFor(() => attempts(mta.dir) > 0, "a delivery attempt to the destination while it is down");
    sink = await startSink({ port });
    await sink.waitFor(1, 20_000);
    assert.deepEqual(sink.messages[0].recipients, ["u@down.test"]);
  } finally {
    await mta.stop();
    await sink?.close();
  }
});

Deno.test("qmgr terminated after the 250 and restarted: the message is delivered exactly once", async () => {
  const port = freePort();
  const mta = await startTestMta({ mailertable: `crash.test\t${port}^[127.0.0.1]\n` });
  let sink;
  try {
    assert.match(
      await smtpSend(mta.port, { from: "s@sender.test", to: ["u@crash.test"], body: "\r\nonce\r\n" }),
      /^250 /,
    );
    const before = mta.mta.supervisor.restarts("qmgr");
    mta.mta.supervisor.kill("qmgr");
    const deadline = Date.now() + 10_000;
    while (mta.mta.supervisor.restarts("qmgr") === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(mta.mta.supervisor.restarts("qmgr"), before + 1);
    sink = await startSink({ port });
    await sink.waitFor(1, 20_000);
    // Once the message is removed from the queue no retry can follow: then it must have come once.
    await waitFor(async () => await queueFiles(mta.dir) === 0, "the message to leave the queue", {
      timeout: 10_000,
    });
    assert.equal(sink.count, 1);
    assert.ok(splitReceived(sink.messages[0].data).rest.endsWith("once\r\n"));
  } finally {
    await mta.stop();
    await sink?.close();
  }
});

Deno.test("the real MTA answers the spine's reply codes", async () => {
  const mta = await startTestMta({ mailertable: `example.com\t${freePort()}^[127.0.0.1]\n` });
  try {
    const replies = await dialogue(mta.port, [
      "EHLO client.test",
      "BOGUS",
      "RCPT TO:<a@example.com>",
      "MAIL FROM:<s@sender.test> SIZE=999999999999",
      "MAIL FROM:<s@sender.test>",
      "MAIL FROM:<s@sender.test>",
      "DATA",
      "RCPT TO:<a@example.com>",
      "RSET",
      "VRFY a",
      "NOOP",
      "QUIT",
    ]);
    assert.deepEqual(replies.map((r) => r.slice(0, 3)), [
      "220",
      "250",
      "500",
      "503",
      "552",
      "250",
      "503",
      "554",
      "250",
      "250",
      "252",
      "250",
      "221",
    ]);
  } finally {
    await mta.stop();
  }
});

Deno.test("a client that may not relay gets 550 5.7.1 for a foreign domain", async () => {
  const mta = await startTestMta({ mailertable: `example.com\t${freePort()}^[127.0.0.1]\n` });
  try {
    // 127.0.0.2 is a loopback address the default access map does not let relay.
    const replies = await dialogue(mta.port, [
      "HELO c",
      "MAIL FROM:<s@sender.test>",
      "RCPT TO:<a@example.com>",
      "QUIT",
    ], {
      localAddress: "127.0.0.2",
    });
    assert.match(replies[3], /^550 5\.7\.1 /);
  } finally {
    await mta.stop();
  }
});

Deno.test("a mailertable host name is resolved through the DNS and the message delivered there", async () => {
  const sink = await startSink();
  const dns = await startDnsServer([{ name: "mailhost.dns.test", type: "A", data: "127.0.0.1" }]);
  const mta = await startTestMta({
    mailertable: `dns.test\t${sink.port}^esmtp:mailhost.dns.test\n`,
    nameservers: [dns.address],
  });
  try {
    assert.match(
      await smtpSend(mta.port, { from: "s@sender.test", to: ["u@dns.test"], body: "\r\nvia dns\r\n" }),
      /^250 /,
    );
    await sink.waitFor(1, 15_000);
    assert.deepEqual(sink.messages[0].recipients, ["u@dns.test"]);
    assert.ok(dns.queries.some((q) => q.name === "mailhost.dns.test" && q.type === "A"));
  } finally {
    await mta.stop();
    await sink.close();
    await dns.close();
  }
});

Deno.test("a domain the DNS says does not exist is not retried forever: the recipient fails", async () => {
  const dns = await startDnsServer([{ name: "other.test", type: "A", data: "127.0.0.1" }]);
  const mta = await startTestMta({ nameservers: [dns.address] });
  try {
    assert.match(
      await smtpSend(mta.port, { from: "s@sender.test", to: ["u@nowhere.invalid"], body: "\r\nx\r\n" }),
      /^250 /,
    );
    // The queue empties: the recipient failed permanently (NXDOMAIN), it is not deferred.
    const deadline = Date.now() + 10_000;
    let files: string[] = [];
    do {
      await new Promise((r) => setTimeout(r, 100));
      files = [];
      for await (const d of Deno.readDir(mta.config.CDB_base_directory)) {
        for await (const f of Deno.readDir(`${mta.config.CDB_base_directory}/${d.name}`)) files.push(f.name);
      }
    } while (files.length > 0 && Date.now() < deadline);
    assert.deepEqual(files, []);
    assert.ok(dns.queries.some((q) => q.name === "nowhere.invalid" && q.type === "MX"));
  } finally {
    await mta.stop();
    await dns.close();
  }
});
