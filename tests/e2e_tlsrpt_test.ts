// TLS-RPT end to end (RFC 8460): the whole MTA with MTA-STS and `qmgr { TLS_RPT { report_interval } }`
// short, so the test sees the reports at once. A delivery to rpt.test over verified TLS counts as a
// success; one to testing.test (a testing policy, an MX host without STARTTLS that the policy does not
// name) as a failure. The aggregate reports go to each domain's `_smtp._tls` rua: rpt.test's by mail
// through our own queue (to a sink, RFC 8460 5.3 headers, the gzipped JSON attached), testing.test's by
// HTTPS POST to the in-test HTTPS server (smar posts it; the JSON gzipped). Real parts: the HTTPS server
// with a certificate of the in-test CA, the in-test DNS server, STARTTLS sinks.

import assert from "node:assert/strict";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type DnsRecord, startDnsServer } from "./helpers/dns_server.ts";
import { until } from "./helpers/qmgr_inprocess.ts";
import { FIXTURES, policyText, startPolicyServer } from "./helpers/mta_sts_server.ts";

const read = (f: string) => Deno.readTextFileSync(FIXTURES + f);
const a = (name: string, ip: string): DnsRecord => ({ name, type: "A", data: ip });
const txtRec = (name: string, data: string): DnsRecord => ({ name, type: "TXT", data });
const mx = (domain: string, host: string, preference = 10): DnsRecord => ({
  name: domain,
  type: "MX",
  data: { preference, exchange: host },
});

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("TLS-RPT: aggregate reports per policy domain, by mail through our queue and by HTTPS POST", async () => {
  const port = freePort();
  const good = await startSink({
    hostname: "127.0.0.3",
    port,
    tls: { cert: read("mx.pem"), key: read("mx.key") },
  });
  const plain = await startSink({ hostname: "127.0.0.4", port });
  const wrong = await startSink({
    hostname: "127.0.0.2",
    port,
    tls: { cert: read("wrong.pem"), key: read("wrong.key") },
  });
  const reports = await startSink();
  const http = await startPolicyServer({
    "mta-sts.rpt.test": { body: policyText("enforce", ["mx.rpt.test", "mx1.rpt.test"]) },
    "mta-sts.testing.test": { body: policyText("testing", ["mx.testing.test"]) },
  });
  const dns = await startDnsServer([
    txtRec("_mta-sts.rpt.test", "v=STSv1; id=1"),
    a("mta-sts.rpt.test", "127.0.0.1"),
    // The first MX presents a certificate for another name (a failed session), the second the right one.
    mx("rpt.test", "mx1.rpt.test", 10),
    mx("rpt.test", "mx.rpt.test", 20),
    a("mx1.rpt.test", "127.0.0.2"),
    a("mx.rpt.test", "127.0.0.3"),
    txtRec("_smtp._tls.rpt.test", "v=TLSRPTv1; rua=mailto:tls-reports@reports.test"),
    txtRec("_mta-sts.testing.test", "v=STSv1; id=1"),
    a("mta-sts.testing.test", "127.0.0.1"),
    mx("testing.test", "mx.other.test"),
    a("mx.other.test", "127.0.0.4"),
    txtRec("_smtp._tls.testing.test", `v=TLSRPTv1; rua=https://mta-sts.rpt.test:${http.port}/tlsrpt`),
  ]);
  const closeAll = () =>
    Promise.all([good.close(), plain.close(), wrong.close(), reports.close(), http.close(), dns.close()]);
  const mta = await startTestMta({
    nameservers: [dns.address],
    mailertable: `reports.test\t${reports.port}^[127.0.0.1]\n`,
    adjust: (c) => {
      c.smar.MTA_STS = {
        cache_file: join(c.qmgr.IBDB.base_directory, "../mta_sts.db"),
        CAcert_file: FIXTURES + "ca.pem",
        timeout: 2000,
        refresh_interval: 3_600_000,
        HTTPS_port: http.port,
        MX_port: port,
      };
      c.smtpc.tls = { security_level: "may", CAcert_file: FIXTURES + "ca.pem" };
      c.qmgr.TLS_RPT = { report_interval: 1500, organization_name: "smx test", contact_info: "ops@src.test" };
    },
  }).catch(async (err) => {
    await closeAll();
    throw err;
  });
  try {
    const send = async (to: string) =>
      assert.match(await smtpSend(mta.port, { from: "s@src.test", to: [to], body: "\r\nx\r\n" }), /^250 /);
    await send("a@rpt.test");
    await send("b@testing.test");
    await good.waitFor(1, 20_000);
    await plain.waitFor(1, 20_000);

    // The mailed report for rpt.test: RFC 8460 5.3 headers, the gzipped JSON attached.
    await reports.waitFor(1, 20_000);
    const mail = new TextDecoder().decode(reports.messages[0].data);
    assert.deepEqual(reports.messages[0].recipients, ["tls-reports@reports.test"]);
    assert.match(mail, /^TLS-Report-Domain: rpt\.test\r$/m);
    assert.match(mail, /^TLS-Report-Submitter: localhost\r$/m);
    assert.match(mail, /^Subject: Report Domain: rpt\.test Submitter: localhost Report-ID: <[^>]+>\r$/m);
    assert.match(mail, /^Content-Type: multipart\/report; report-type="tlsrpt"; boundary=/m);
    assert.match(mail, /Content-Type: application\/tlsrpt\+gzip; name="localhost!rpt\.test!\d+!\d+!/);
    const b64 = /Content-Transfer-Encoding: base64\r\n[^\r\n]*\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(
      mail,
    );
    assert.ok(b64, "a base64 attachment");
    const mailed: Json = JSON.parse(
      new TextDecoder().decode(
        gunzipSync(Uint8Array.from(atob(b64[1].replace(/\r\n/g, "")), (c) => c.charCodeAt(0))),
      ),
    );
    assert.equal(mailed["organization-name"], "smx test");
    assert.equal(mailed["contact-info"], "ops@src.test");
    assert.match(mailed["date-range"]["start-datetime"], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(mailed.policies.length, 1);
    const p = mailed.policies[0];
    assert.equal(p.policy["policy-type"], "sts");
    assert.equal(p.policy["policy-domain"], "rpt.test");
    assert.deepEqual(p.policy["mx-host"], ["mx.rpt.test", "mx1.rpt.test"]);
    assert.ok(p.policy["policy-string"].includes("mode: enforce"));
    assert.deepEqual(p.summary, { "total-successful-session-count": 1, "total-failure-session-count": 1 });
    assert.equal(p["failure-details"][0]["result-type"], "certificate-host-mismatch");
    assert.equal(p["failure-details"][0]["receiving-mx-hostname"], "mx1.rpt.test");
    assert.equal(p["failure-details"][0]["receiving-ip"], "127.0.0.2");
    assert.equal(wrong.count, 0, "nothing was sent to the host with the wrong certificate");

    // The posted report for testing.test: a failure, with its details.
    await until(
      () => http.requests.some((r) => r.method === "POST"),
      "the POST of testing.test's report",
      20_000,
    );
    const post = http.requests.find((r) => r.method === "POST")!;
    assert.equal(post.path, "/tlsrpt");
    assert.equal(post.type, "application/tlsrpt+gzip");
    const posted: Json = JSON.parse(new TextDecoder().decode(gunzipSync(post.body)));
    const q = posted.policies[0];
    assert.equal(q.policy["policy-domain"], "testing.test");
    assert.deepEqual(q.summary, { "total-successful-session-count": 0, "total-failure-session-count": 1 });
    assert.equal(q["failure-details"][0]["result-type"], "validation-failure");
    assert.equal(q["failure-details"][0]["receiving-mx-hostname"], "mx.other.test");
    assert.equal(q["failure-details"][0]["receiving-ip"], "127.0.0.4");
    assert.equal(q["failure-details"][0]["failed-session-count"], 1);
    assert.equal(reports.messages.length, 1, "one report per domain and period; testing.test's is posted");
  } finally {
    await mta.stop();
    await closeAll();
  }
});
