// smtpc under a route's TLS policy (components/mail/tls_policy.ts), against test sinks on loopback with
// STARTTLS and certificates from an in-test CA (tests/fixtures/tls_policy): tls_srv encrypt/verify (and a
// match list), try_tls no, DANE-EE and DANE-TA (records computed by openssl, tlsa.txt), a failed TLSA
// lookup, REQUIRETLS. A policy that is not met defers with 4.7.5 (REQUIRETLS: bounces with 5.7.10) and the
// sink never sees a MAIL FROM.

import assert from "node:assert/strict";
import type { DeliveryTransaction } from "../components/protocol/messages.ts";
import type { RouteTls, TlsaRecord } from "../components/mail/tls_policy.ts";
import type { Config } from "../config/types.ts";
import { freePort } from "./helpers/harness.ts";
import { type Sink, type SinkOptions, startSink } from "./helpers/smtp_sink.ts";
import { statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const FIXTURES = new URL("./fixtures/tls_policy/", import.meta.url).pathname;
const pem = (name: string) => Deno.readTextFileSync(`${FIXTURES}${name}`);
/** The leaf for mx.secure.test, sent with its CA (a chain, for DANE-TA). */
const MX = { key: pem("mx.key"), cert: pem("mx.pem") + pem("ca.pem") };
const OTHER = { key: pem("other.key"), cert: pem("other.pem") + pem("ca.pem") };
const SELF = { key: pem("self.key"), cert: pem("self.pem") };
const TLSA: Record<string, TlsaRecord> = Object.fromEntries(
  pem("tlsa.txt").trim().split("\n").map((line) => {
    const [name, usage, selector, matchingType, data] = line.split(" ");
    return [name, { usage: +usage, selector: +selector, matchingType: +matchingType, data }];
  }),
);
const MESSAGE = "Subject: policy\r\n\r\nsecret\r\n";
const HOST = { name: "mx.secure.test", address: "127.0.0.1" };

const trustCa = (c: Config) => {
  c.smtpc.tls = { security_level: "may", CAcert_file: `${FIXTURES}ca.pem` };
};

async function withSink(port: number, opts: SinkOptions, fn: (sink: Sink) => Promise<void>): Promise<void> {
  const sink = await startSink({ port, ...opts });
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

function over(port: number, tls: Partial<RouteTls>, more: Partial<DeliveryTransaction> = {}) {
  return {
    route: { protocol: "esmtp" as const, port, hosts: [HOST], tls: { domain: "secure.test", ...tls } },
    ...more,
  };
}

const mails = (sink: Sink) => sink.commands.filter((c) => /^MAIL /i.test(c));

Deno.test("smtpc meets tls_srv and try_tls rules or defers with 4.7.5 before any MAIL", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port], adjust: trustCa }, async ({ deliver }) => {
    const deferred = (sink: Sink, r: Awaited<ReturnType<typeof deliver>>, why: RegExp) => {
      assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
      assert.equal(r.results[0].reply.enhanced, "4.7.5");
      assert.match(r.results[0].reply.lines.join(" "), why);
      assert.match(r.results[0].reply.lines.join(" "), /tls_srv:secure\.test/);
      assert.deepEqual(mails(sink), [], "nothing sent in clear text");
      assert.equal(r.tlsPolicy?.met, false);
    };
    const encrypt = { tlsSrv: { key: "tls_srv:secure.test", rhs: "encrypt" } };
    const verify = { tlsSrv: { key: "tls_srv:secure.test", rhs: "verify" } };
    await t.step("encrypt, and the server offers no STARTTLS: deferred", async () => {
      await withSink(port, {}, async (sink) => {
        deferred(sink, await deliver(MESSAGE, over(port, encrypt)), /does not offer STARTTLS/);
      });
    });
    await t.step("encrypt, a self-signed certificate: sent encrypted", async () => {
      await withSink(port, { tls: SELF }, async (sink) => {
        const r = await deliver(MESSAGE, over(port, encrypt));
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(sink.messages[0].tls, true);
        assert.deepEqual(r.tlsPolicy, {
          level: "encrypt",
          source: "tls_srv",
          rule: "tls_srv:secure.test encrypt",
          domain: "secure.test",
          met: true,
        });
      });
    });
    await t.step("verify, a certificate for the MX host from the trusted CA: sent", async () => {
      await withSink(port, { tls: MX }, async (sink) => {
        const r = await deliver(MESSAGE, over(port, verify));
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(r.tls?.verified, true);
        assert.equal(sink.messages[0].tls, true);
      });
    });
    await t.step("verify, a certificate for another name: deferred", async () => {
      await withSink(port, { tls: OTHER }, async (sink) => {
        deferred(sink, await deliver(MESSAGE, over(port, verify)), /not verified/);
      });
    });
    await t.step("verify, a self-signed certificate: deferred", async () => {
      await withSink(port, { tls: SELF }, async (sink) => {
        deferred(sink, await deliver(MESSAGE, over(port, verify)), /not verified/);
      });
    });
    await t.step("verify with a match list naming the certificate's name: sent", async () => {
      await withSink(port, { tls: OTHER }, async (sink) => {
        const listed = { tlsSrv: { key: "tls_srv:secure.test", rhs: "verify other.test" } };
        const r = await deliver(MESSAGE, over(port, listed));
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(sink.messages.length, 1);
      });
    });
    await t.step("try_tls no: no STARTTLS even where it is offered", async () => {
      await withSink(port, { tls: MX }, async (sink) => {
        const tryTls = { "mx.secure.test": { key: "try_tls:mx.secure.test", rhs: "no" } };
        const r = await deliver(MESSAGE, over(port, { tryTls }));
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(sink.messages[0].tls, false);
        assert.ok(!sink.commands.some((c) => /^STARTTLS/i.test(c)));
        assert.equal(r.tlsPolicy?.source, "try_tls");
      });
    });
  });
});

Deno.test("smtpc authenticates a server by DANE-EE and DANE-TA, and defers when nothing matches", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port] }, async ({ deliver }) => {
    const dane = (...names: string[]) => ({
      dane: { "mx.secure.test": { status: "secure" as const, records: names.map((n) => TLSA[n]) } },
    });
    for (const name of ["self-ee-spki-sha256", "self-ee-cert-sha512", "self-ee-spki-full"]) {
      await t.step(`DANE-EE ${name}: a self-signed certificate is authenticated`, async () => {
        await withSink(port, { tls: SELF }, async (sink) => {
          const r = await deliver(MESSAGE, over(port, dane("other-ee-spki-sha256", name)));
          assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
          assert.equal(sink.messages[0].tls, true);
          assert.equal(r.tlsPolicy?.level, "dane");
        });
      });
    }
    for (const name of ["ca-ta-cert-sha256", "ca-ta-spki-sha512"]) {
      await t.step(`DANE-TA ${name}: the CA in the chain is the trust anchor`, async () => {
        await withSink(port, { tls: MX }, async (sink) => {
          const r = await deliver(MESSAGE, over(port, dane(name)));
          assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
          assert.equal(sink.messages[0].tls, true);
        });
      });
    }
    await t.step("DANE-TA, but the certificate is for another name: deferred", async () => {
      await withSink(port, { tls: OTHER }, async (sink) => {
        const r = await deliver(MESSAGE, over(port, dane("ca-ta-cert-sha256")));
        assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
        assert.match(r.results[0].reply.lines.join(" "), /DANE: certificate names other\.test/);
        assert.deepEqual(mails(sink), []);
      });
    });
    await t.step("a TLSA record that matches nothing: deferred with 4.7.5, no MAIL", async () => {
      await withSink(port, { tls: SELF }, async (sink) => {
        const r = await deliver(MESSAGE, over(port, dane("other-ee-spki-sha256")));
        assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
        assert.equal(r.results[0].reply.enhanced, "4.7.5");
        assert.match(r.results[0].reply.lines.join(" "), /DANE TLSA _25\._tcp\.mx\.secure\.test/);
        assert.deepEqual(mails(sink), []);
      });
    });
    await t.step("DANE, and the server offers no STARTTLS: deferred, nothing sent in clear", async () => {
      await withSink(port, {}, async (sink) => {
        const r = await deliver(MESSAGE, over(port, dane("self-ee-spki-sha256")));
        assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
        assert.deepEqual(mails(sink), []);
      });
    });
    await t.step("a failed TLSA lookup: deferred without connecting", async () => {
      await withSink(port, { tls: SELF }, async (sink) => {
        const failed = { dane: { "mx.secure.test": { status: "temp" as const, reason: "SERVFAIL" } } };
        const r = await deliver(MESSAGE, over(port, failed));
        assert.deepEqual(statuses(r), ["0:temp"], JSON.stringify(r));
        assert.equal(r.results[0].reply.enhanced, "4.7.5");
        assert.equal(sink.connections, 0);
      });
    });
  });
});

Deno.test("smtpc relays a REQUIRETLS message only under DANE to a server offering REQUIRETLS", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port] }, async ({ deliver }) => {
    const dane = {
      dane: { "mx.secure.test": { status: "secure" as const, records: [TLSA["self-ee-spki-sha256"]] } },
    };
    const extensions = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "REQUIRETLS"];
    await t.step("DANE and REQUIRETLS offered: sent, REQUIRETLS passed on", async () => {
      await withSink(port, { tls: SELF, extensions }, async (sink) => {
        const r = await deliver(MESSAGE, over(port, dane, { requireTls: true }));
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.match(mails(sink)[0], /REQUIRETLS/);
      });
    });
    await t.step("the next hop does not offer REQUIRETLS: returned with 5.7.10", async () => {
      await withSink(port, { tls: SELF }, async (sink) => {
        const r = await deliver(MESSAGE, over(port, dane, { requireTls: true }));
        assert.deepEqual(statuses(r), ["0:perm"], JSON.stringify(r));
        assert.equal(r.results[0].reply.enhanced, "5.7.10");
        assert.deepEqual(mails(sink), []);
      });
    });
    await t.step(
      "TLS-Required: No: DANE is ignored, a server without STARTTLS gets the message",
      async () => {
        await withSink(port, {}, async (sink) => {
          const r = await deliver(MESSAGE, over(port, dane, { tlsRequiredNo: true }));
          assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
          assert.equal(sink.messages[0].tls, false);
          assert.equal(r.tlsPolicy?.source, "tls-required");
        });
      },
    );
    await t.step(
      "no DANE and no MTA-STS (only a verify rule): returned with 5.7.10, no connection",
      async () => {
        await withSink(port, { tls: MX, extensions }, async (sink) => {
          const verify = { tlsSrv: { key: "tls_srv:secure.test", rhs: "verify" } };
          const r = await deliver(MESSAGE, over(port, verify, { requireTls: true }));
          assert.deepEqual(statuses(r), ["0:perm"], JSON.stringify(r));
          assert.equal(r.results[0].reply.enhanced, "5.7.10");
          assert.equal(sink.connections, 0);
        });
      },
    );
  });
});
