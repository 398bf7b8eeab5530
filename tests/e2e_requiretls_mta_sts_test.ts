// REQUIRETLS (RFC 8689) over MTA-STS, end to end: Python's smtplib sends with REQUIRETLS over STARTTLS;
// smar fetches the recipient domains' MTA-STS policies from a real HTTPS server on loopback (in-test CA);
// the next hops are STARTTLS sinks with a certificate for their MX name. An enforce policy and a server
// offering REQUIRETLS: relayed over verified TLS with REQUIRETLS passed on. A server that does not offer
// REQUIRETLS, or an MX host a testing-mode policy does not list (testing counts as enforce for
// REQUIRETLS): returned to the sender with 5.7.10, never sent there.

import assert from "node:assert/strict";
import { haveTool } from "./helpers/filters.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { type DnsRecord, startDnsServer } from "./helpers/dns_server.ts";
import { FIXTURES, policyText, startPolicyServer } from "./helpers/mta_sts_server.ts";

const PYTHON = "/usr/bin/python3";
const SERVER_TLS = new URL("./fixtures/tls/", import.meta.url).pathname;
const read = (f: string) => Deno.readTextFileSync(FIXTURES + f);
const mx = (domain: string, host: string): DnsRecord => ({
  name: domain,
  type: "MX",
  data: { preference: 10, exchange: host },
});

Deno.test("REQUIRETLS goes only where MTA-STS verifies the next hop and the next hop offers REQUIRETLS", async () => {
  if (!await haveTool(PYTHON, "python3")) return;
  const port = freePort();
  const extensions = ["PIPELINING", "ENHANCEDSTATUSCODES", "REQUIRETLS"];
  const tls = { cert: read("mx.pem"), key: read("mx.key") };
  // 127.0.0.2: mx1.sts.test, offers REQUIRETLS; 127.0.0.3: mx2.sts.test, does not.
  const willing = await startSink({ hostname: "127.0.0.2", port, tls, extensions });
  const unwilling = await startSink({ hostname: "127.0.0.3", port, tls });
  const senders = await startSink();
  const http = await startPolicyServer({
    "mta-sts.sts.test": { body: policyText("enforce", ["mx1.sts.test"]) },
    "mta-sts.bad.test": { body: policyText("enforce", ["mx2.sts.test"]) },
    "mta-sts.testing.test": { body: policyText("testing", ["mx.testing.test"]) },
  });
  const dns = await startDnsServer([
    { name: "_mta-sts.sts.test", type: "TXT", data: "v=STSv1; id=1" },
    { name: "mta-sts.sts.test", type: "A", data: "127.0.0.1" },
    mx("sts.test", "mx1.sts.test"),
    { name: "_mta-sts.bad.test", type: "TXT", data: "v=STSv1; id=1" },
    { name: "mta-sts.bad.test", type: "A", data: "127.0.0.1" },
    mx("bad.test", "mx2.sts.test"),
    { name: "_mta-sts.testing.test", type: "TXT", data: "v=STSv1; id=1" },
    { name: "mta-sts.testing.test", type: "A", data: "127.0.0.1" },
    mx("testing.test", "mx1.sts.test"),
    { name: "mx1.sts.test", type: "A", data: "127.0.0.2" },
    { name: "mx2.sts.test", type: "A", data: "127.0.0.3" },
  ]);
  const mta = await startTestMta({
    nameservers: [dns.address],
    mailertable: `sender.test\t${senders.port}^esmtp:[127.0.0.1]\n`,
    adjust: (c) => {
      c.smtps[0].tls = {
        cert_file: `${SERVER_TLS}server.pem`,
        key_file: `${SERVER_TLS}server.key`,
        flags: [],
      };
      c.smar.MTA_STS = {
        cache_file: `${c.qmgr.IBDB.base_directory}/../mta_sts.db`,
        CAcert_file: FIXTURES + "ca.pem",
        timeout: 2000,
        refresh_interval: 3_600_000,
        HTTPS_port: http.port,
        MX_port: port,
      };
      c.smtpc.tls = { security_level: "may", CAcert_file: FIXTURES + "ca.pem" };
    },
  }).catch(async (err) => {
    await Promise.all([willing.close(), unwilling.close(), senders.close(), http.close(), dns.close()]);
    throw err;
  });
  try {
    const script = `
import smtplib, ssl
ctx = ssl.create_default_context(cafile=${JSON.stringify(`${SERVER_TLS}ca.pem`)})
s = smtplib.SMTP("127.0.0.1", ${mta.port})
s.ehlo("client.test")
s.starttls(context=ctx)
s.ehlo("client.test")
for to in ["a@sts.test", "b@bad.test", "c@testing.test"]:
    s.sendmail("s@sender.test", [to], "Subject: to %s\\r\\n\\r\\nsecret\\r\\n" % to, mail_options=["REQUIRETLS"])
s.quit()
`;
    const o = await new Deno.Command(PYTHON, { args: ["-c", script], stderr: "piped" }).output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));

    await willing.waitFor(1, 20_000);
    assert.deepEqual(willing.messages[0].recipients, ["a@sts.test"]);
    assert.equal(willing.messages[0].tls, true);
    assert.match(willing.commands.find((c) => /^MAIL /i.test(c))!, /REQUIRETLS/);

    await senders.waitFor(2, 20_000);
    const dsns = senders.messages.map((m) => new TextDecoder().decode(m.data));
    const about = (rcpt: string) => dsns.find((d) => d.includes(`Final-Recipient: rfc822; ${rcpt}`));
    assert.match(about("b@bad.test") ?? "", /Status: 5\.7\.10/, "mx2 does not offer REQUIRETLS");
    assert.match(about("b@bad.test") ?? "", /does not offer REQUIRETLS/);
    assert.match(about("c@testing.test") ?? "", /Status: 5\.7\.10/, "mx1 is not in the testing policy");
    assert.equal(unwilling.commands.filter((c) => /^MAIL /i.test(c)).length, 0);
    assert.equal(willing.count, 1, "testing.test's message never went to mx1");
  } finally {
    await mta.stop();
    await Promise.all([willing.close(), unwilling.close(), senders.close(), http.close(), dns.close()]);
  }
});
