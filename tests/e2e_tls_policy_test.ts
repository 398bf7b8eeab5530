// The access map's outbound TLS rules end to end: smtps takes the message, smar finds `tls_srv:` and
// `try_tls:` entries for the next hop (the mailertable host resolved through the in-test DNS server),
// qmgr carries them with the route, smtpc enforces them against test sinks with and without STARTTLS.
// A rule that is not met leaves the message queued (deferred) and the sink never sees a MAIL FROM.

import assert from "node:assert/strict";
import { startDnsServer } from "./helpers/dns_server.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";

const FIXTURES = new URL("./fixtures/tls_policy/", import.meta.url).pathname;
const pem = (name: string) => Deno.readTextFileSync(`${FIXTURES}${name}`);

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("tls_srv and try_tls in the access map decide how smx delivers to a next hop", async () => {
  const plain = await startSink();
  const tlsSink = await startSink({ tls: { key: pem("mx.key"), cert: pem("mx.pem") } });
  const dns = await startDnsServer([
    { name: "mx.secure.test", type: "A", data: "127.0.0.1" },
    { name: "mx.lax.test", type: "A", data: "127.0.0.1" },
    { name: "mx.verified.test", type: "A", data: "127.0.0.1" },
  ]);
  const mta = await startTestMta({
    nameservers: [dns.address],
    mailertable: [
      `secure.test\t${plain.port}^esmtp:mx.secure.test`,
      `lax.test\t${tlsSink.port}^esmtp:mx.lax.test`,
      `a.verified.test\t${tlsSink.port}^esmtp:mx.verified.test`,
    ].join("\n") + "\n",
    access: [
      "cltaddr:127.0.0.1\trelay",
      "tls_srv:secure.test\tencrypt",
      "try_tls:mx.lax.test\tNO",
      "tls_srv:.verified.test\tverify mx.secure.test",
    ].join("\n") + "\n",
    adjust: (c) => {
      c.smtpc.tls = { security_level: "may", CAcert_file: `${FIXTURES}ca.pem` };
    },
  });
  const mails = (s: Sink) => s.commands.filter((c) => /^MAIL /i.test(c));
  try {
    const send = (to: string) => smtpSend(mta.port, { from: "s@sender.test", to: [to], body: "\r\nx\r\n" });
    // encrypt, and the next hop offers no STARTTLS: smtpc says EHLO, then QUIT, never MAIL.
    assert.match(await send("u@secure.test"), /^250 /);
    await until("smtpc to give up on the plain sink", () => plain.commands.some((c) => /^QUIT/i.test(c)));
    assert.deepEqual(mails(plain), []);
    assert.equal(plain.count, 0);
    // try_tls:mx.lax.test NO: delivered without STARTTLS though the sink offers it.
    assert.match(await send("u@lax.test"), /^250 /);
    await tlsSink.waitFor(1, 15_000);
    assert.equal(tlsSink.messages[0].tls, false);
    // tls_srv:.verified.test (every subdomain) verify with a match list naming mx.secure.test (the
    // certificate's name): checked against that name, not mx.verified.test: delivered over verified TLS.
    assert.match(await send("u@a.verified.test"), /^250 /);
    await tlsSink.waitFor(2, 15_000);
    assert.equal(tlsSink.messages[1].tls, true);
    assert.deepEqual(tlsSink.messages[1].recipients, ["u@a.verified.test"]);
  } finally {
    await mta.stop();
    await plain.close();
    await tlsSink.close();
    await dns.close();
  }
});
