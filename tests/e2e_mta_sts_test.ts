// MTA-STS end to end (RFC 8461): the whole MTA, its smar fetching policies from a real HTTPS server on
// loopback (a certificate of the in-test CA, which smar and smtpc are told to trust), MX, A and TXT
// records from the in-test DNS server, and next hops that are test sinks on one port at several
// loopback addresses: one with a certificate for its MX name, one with a certificate for another name,
// one without STARTTLS. Enforce delivers only over TLS verified against an MX host the policy names and
// defers (4.7.5) otherwise, never in clear text; testing delivers anyway and logs what enforce would
// have refused; a policy host that is down with nothing cached delivers as usual.

import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { type DnsRecord, startDnsServer } from "./helpers/dns_server.ts";
import { until } from "./helpers/qmgr_inprocess.ts";
import { FIXTURES, policyText, startPolicyServer } from "./helpers/mta_sts_server.ts";

const read = (f: string) => Deno.readTextFileSync(FIXTURES + f);
const txt = (domain: string, id: string): DnsRecord => ({
  name: `_mta-sts.${domain}`,
  type: "TXT",
  data: `v=STSv1; id=${id}`,
});
const a = (name: string, ip: string): DnsRecord => ({ name, type: "A", data: ip });
const mx = (domain: string, pref: number, host: string): DnsRecord => ({
  name: domain,
  type: "MX",
  data: { preference: pref, exchange: host },
});

async function readLog(dir: string, name: string): Promise<string> {
  return await Deno.readTextFile(join(dir, "log", `${name}.log`)).catch(() => "");
}

Deno.test("MTA-STS end to end: enforce, testing and a policy host that is down", async () => {
  const port = freePort();
  const tls = (pem: string) => ({ cert: read(`${pem}.pem`), key: read(`${pem}.key`) });
  // 127.0.0.2: a certificate for another name; 127.0.0.3: mx2.sts.test's; 127.0.0.4: no STARTTLS.
  const wrongName = await startSink({ hostname: "127.0.0.2", port, tls: tls("wrong") });
  const good = await startSink({ hostname: "127.0.0.3", port, tls: tls("mx") });
  const plain = await startSink({ hostname: "127.0.0.4", port });
  const http = await startPolicyServer({
    "mta-sts.sts.test": { body: policyText("enforce", ["mx1.sts.test", "mx2.sts.test"]) },
    "mta-sts.bad.test": { body: policyText("enforce", ["*.bad.test"]) },
    "mta-sts.testing.test": { body: policyText("testing", ["mx.testing.test"]) },
  });
  const dns = await startDnsServer([
    // sts.test: mx1 presents the wrong certificate, mx2 the right one, mx9 is not in the policy.
    txt("sts.test", "20261204"),
    a("mta-sts.sts.test", "127.0.0.1"),
    mx("sts.test", 5, "mx9.sts.test"),
    mx("sts.test", 10, "mx1.sts.test"),
    mx("sts.test", 20, "mx2.sts.test"),
    a("mx9.sts.test", "127.0.0.4"),
    a("mx1.sts.test", "127.0.0.2"),
    a("mx2.sts.test", "127.0.0.3"),
    // bad.test: the one MX the policy names offers no STARTTLS: enforce defers.
    txt("bad.test", "1"),
    a("mta-sts.bad.test", "127.0.0.1"),
    mx("bad.test", 10, "mx1.bad.test"),
    a("mx1.bad.test", "127.0.0.4"),
    // testing.test: no STARTTLS and a name the policy does not list: delivered, logged.
    txt("testing.test", "1"),
    a("mta-sts.testing.test", "127.0.0.1"),
    mx("testing.test", 10, "mx.other.test"),
    a("mx.other.test", "127.0.0.4"),
    // down.test: a TXT record, but no policy host answers: mail goes as without MTA-STS.
    txt("down.test", "1"),
    a("mta-sts.down.test", "127.0.0.9"),
    mx("down.test", 10, "mx.down.test"),
    a("mx.down.test", "127.0.0.4"),
  ]);
  const dir = await Deno.makeTempDir({ prefix: "smx-mta-sts-" });
  await Deno.mkdir(join(dir, "log"));
  const mta = await startTestMta({
    dir,
    nameservers: [dns.address],
    configText: `log { directory = ${JSON.stringify(join(dir, "log"))}; }\n`,
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
    },
  }).catch(async (err) => {
    await Promise.all([wrongName.close(), good.close(), plain.close(), http.close(), dns.close()]);
    await Deno.remove(dir, { recursive: true });
    throw err;
  });
  try {
    const send = async (to: string) =>
      assert.match(await smtpSend(mta.port, { from: "s@src.test", to: [to], body: "\r\nx\r\n" }), /^250 /);
    await send("a@sts.test");
    await good.waitFor(1, 20_000);
    assert.equal(good.messages[0].tls, true);
    assert.deepEqual(good.messages[0].recipients, ["a@sts.test"]);
    assert.equal(plain.messages.length, 0, "mx9 is not in the policy and gets nothing");
    assert.equal(wrongName.count, 0, "the host whose certificate names another host gets nothing");

    await send("b@bad.test");
    const smtpcLog = () => readLog(mta.dir, "smtpc");
    await until(async () => /4\.7\.5/.test(await readLog(mta.dir, "qmgr")), "the 4.7.5 deferral", 20_000);
    assert.equal(plain.messages.length, 0, "enforce never delivers in clear text");
    assert.match(
      await smtpcLog(),
      /TLS policy mta-sts match=mx1\.bad\.test \(MTA-STS policy of bad\.test id=1\) not met with mx1\.bad\.test\[127\.0\.0\.4\]:\d+: the server does not offer STARTTLS/,
    );

    await send("c@testing.test");
    await plain.waitFor(1, 20_000);
    assert.deepEqual(plain.messages[0].recipients, ["c@testing.test"]);
    assert.equal(plain.messages[0].tls, false);
    // qmgr logs what enforce would have refused once smtpc's result is in.
    const testingLine =
      /MTA-STS policy of testing\.test \(testing\): validation-failure with mx\.other\.test \(MX host not in the policy\); enforce would have deferred/;
    await until(async () => testingLine.test(await readLog(mta.dir, "qmgr")), "the testing line", 20_000);

    await send("d@down.test");
    await plain.waitFor(2, 20_000);
    assert.deepEqual(plain.messages[1].recipients, ["d@down.test"]);
    const smar = await readLog(mta.dir, "smar");
    assert.match(
      smar,
      /MTA-STS down\.test: policy fetch failed: .*; no cached policy: delivering as without MTA-STS/,
    );
    assert.match(
      await smtpcLog(),
      /not met for mx9\.sts\.test\[127\.0\.0\.4\]:\d+: MX host mx9\.sts\.test is not in the MTA-STS policy of sts\.test/,
    );
    assert.equal(http.fetches("mta-sts.sts.test"), 1);
  } finally {
    await mta.stop();
    await Promise.all([wrongName.close(), good.close(), plain.close(), http.close(), dns.close()]);
    await Deno.remove(dir, { recursive: true });
  }
});
