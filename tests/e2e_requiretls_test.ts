// REQUIRETLS (RFC 8689) end to end: smtps offers it in EHLO only after STARTTLS and refuses the MAIL
// parameter without TLS (530 5.7.10); Python's smtplib (a real client) sends a message with REQUIRETLS
// over STARTTLS; the next hop has neither DANE nor MTA-STS, so smx never sends it there (the sink sees no
// MAIL) and returns it to the sender with a DSN saying 5.7.10, carrying only the headers. A `TLS-Required: No` header is kept with
// the envelope (the queue's tls_flags), REQUIRETLS winning over it.

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { haveTool } from "./helpers/filters.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { dialogue } from "./helpers/smtp_client.ts";
import { startSink } from "./helpers/smtp_sink.ts";

const PYTHON = "/usr/bin/python3";
const TLS_FIXTURES = new URL("./fixtures/tls/", import.meta.url).pathname;

async function python(script: string): Promise<string> {
  const o = await new Deno.Command(PYTHON, { args: ["-c", script], stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  assert.equal(o.code, 0, dec.decode(o.stdout) + dec.decode(o.stderr));
  return dec.decode(o.stdout);
}

Deno.test("a REQUIRETLS message is accepted only over TLS and returned with 5.7.10 when no next hop qualifies", async () => {
  if (!await haveTool(PYTHON, "python3")) return;
  const next = await startSink({ extensions: ["PIPELINING", "ENHANCEDSTATUSCODES", "REQUIRETLS"] });
  const senders = await startSink();
  const mta = await startTestMta({
    // elsewhere.test: nobody listens there, so its message stays queued for the look at tls_flags.
    mailertable: [
      `secure.test\t${next.port}^esmtp:[127.0.0.1]`,
      `sender.test\t${senders.port}^esmtp:[127.0.0.1]`,
      `elsewhere.test\t${freePort()}^esmtp:[127.0.0.1]`,
    ].join("\n") + "\n",
    adjust: (c) => {
      c.smtps[0].tls = {
        cert_file: `${TLS_FIXTURES}server.pem`,
        key_file: `${TLS_FIXTURES}server.key`,
        flags: [],
      };
    },
  });
  try {
    // In clear text: not offered, and the parameter is refused.
    const plain = await dialogue(mta.port, [
      "EHLO client.test",
      "MAIL FROM:<s@sender.test> REQUIRETLS",
      "QUIT",
    ]);
    assert.doesNotMatch(plain[1], /REQUIRETLS/);
    assert.match(plain[2], /^530 5\.7\.10 /);

    const script = `
import smtplib, ssl
ctx = ssl.create_default_context(cafile=${JSON.stringify(`${TLS_FIXTURES}ca.pem`)})
s = smtplib.SMTP("127.0.0.1", ${mta.port})
s.ehlo("client.test")
before = s.has_extn("requiretls")
s.starttls(context=ctx)
s.ehlo("client.test")
print("offered", before, s.has_extn("requiretls"))
msg = "Subject: secret\\r\\nTLS-Required: No\\r\\n\\r\\nfor TLS eyes only\\r\\n"
s.sendmail("s@sender.test", ["u@secure.test"], msg, mail_options=["REQUIRETLS"])
msg2 = "Subject: anyhow\\r\\nTLS-Required: No\\r\\n\\r\\nplain is fine\\r\\n"
s.sendmail("s@sender.test", ["v@elsewhere.test"], msg2)
s.quit()
`;
    assert.equal((await python(script)).trim(), "offered False True");

    // The DSN: the next hop had neither DANE nor MTA-STS.
    await senders.waitFor(1, 20_000);
    const dsn = new TextDecoder().decode(senders.messages[0].data);
    assert.deepEqual(senders.messages[0].recipients, ["s@sender.test"]);
    assert.match(dsn, /Status: 5\.7\.10/);
    assert.match(dsn, /u@secure\.test/);
    assert.match(dsn, /text\/rfc822-headers/, "only the headers come back");
    assert.doesNotMatch(dsn, /for TLS eyes only/);
    assert.equal(next.commands.filter((c) => /^MAIL /i.test(c)).length, 0, "never sent to the next hop");

    // What the queue kept of the second message: TLS-Required: No (the first had REQUIRETLS).
    const db = new DatabaseSync(join(mta.config.qmgr.IBDB.base_directory, "queue.sqlite"), {
      readOnly: true,
    });
    try {
      const rows = db.prepare(
        "SELECT r.address, m.tls_flags FROM messages m JOIN recipients r ON r.message_id = m.id",
      )
        .all();
      assert.deepEqual(
        rows.find((r) => r.address === "v@elsewhere.test")?.tls_flags,
        2,
        JSON.stringify(rows),
      );
    } finally {
      db.close();
    }
  } finally {
    await mta.stop();
    await next.close();
    await senders.close();
  }
});
