// smtpc's STARTTLS against the test sink with a CA + leaf certificate (tests/fixtures/tls_client): each
// security level (none, may, encrypt, verify) with a trusted certificate, one from an unknown CA, one for
// another name, a handshake that fails, a server that does not offer STARTTLS, and a server that injects
// bytes after its 220; the result reports the TLS version, cipher and verification. Trust anchors come from
// CAcert_file or CAcert_directory; a TLS file smtpc cannot read is fatal.

import { replyLine } from "../components/mail/result.ts";
import assert from "node:assert/strict";
import type { Config } from "../config/types.ts";
import { freePort } from "./helpers/harness.ts";
import { type Sink, type SinkOptions, startSink } from "./helpers/smtp_sink.ts";
import { type SmtpcEnv, statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const FIXTURES = new URL("./fixtures/tls_client/", import.meta.url).pathname;
const pem = (name: string) => Deno.readTextFileSync(`${FIXTURES}${name}`);
const TRUSTED = { key: pem("server.key"), cert: pem("server.pem") };
const ROGUE = { key: pem("rogue.key"), cert: pem("rogue.pem") };
/** A key that does not belong to the certificate: every handshake fails. */
const BROKEN = { key: pem("rogue.key"), cert: pem("server.pem") };
const MESSAGE = "Subject: tls\r\n\r\nsecret\r\n";

function level(security_level: Config["smtpc"]["tls"]["security_level"], more = {}) {
  return (c: Config) => {
    c.smtpc.tls = { security_level, CAcert_file: `${FIXTURES}ca.pem`, ...more };
  };
}

/** Runs `fn` against a fresh sink on `port`. */
async function withSink(port: number, opts: SinkOptions, fn: (sink: Sink) => Promise<void>): Promise<void> {
  const sink = await startSink({ port, ...opts });
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

Deno.test("smtpc with security level may uses TLS when it can and plain text when it cannot", async (t) => {
  const port = freePort();
  const adjust = level("may", { cert_file: `${FIXTURES}client.pem`, key_file: `${FIXTURES}client.key` });
  await withSmtpc({ ports: [port], adjust }, async ({ deliver }: SmtpcEnv) => {
    await t.step(
      "a trusted certificate: verified TLS, EHLO again inside, the client certificate shown",
      async () => {
        await withSink(port, { tls: { ...TRUSTED, requestCert: true } }, async (sink) => {
          const r = await deliver(MESSAGE);
          assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
          assert.equal(r.tls?.verified, true, JSON.stringify(r.tls));
          assert.match(r.tls!.version, /^TLSv1\.[23]$/);
          assert.match(r.tls!.cipher, /^TLS_|^ECDHE/);
          assert.equal(sink.messages[0].tls, true);
          assert.equal(sink.messages[0].helo, "client.test");
          assert.deepEqual(sink.clientCertificates, ["client.test"]);
        });
      },
    );
    await t.step("a certificate from an unknown CA: still encrypted, reported unverified", async () => {
      await withSink(port, { tls: ROGUE }, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(r.tls?.verified, false);
        assert.match(r.tls!.verifyError!, /UNABLE_TO_VERIFY|unable to verify/i);
        assert.equal(sink.messages[0].tls, true);
      });
    });
    await t.step("a failed handshake: the same host again, without TLS", async () => {
      await withSink(port, { tls: BROKEN }, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(r.tls, undefined);
        assert.equal(sink.messages[0].tls, false);
        assert.equal(sink.connections, 2);
      });
    });
    await t.step(
      "bytes injected after the 220 to STARTTLS are discarded, never read as a reply",
      async () => {
        // Read as the reply to the EHLO inside TLS, the fake line would hide PIPELINING and SIZE.
        const inject = "250 fake.test\r\n";
        await withSink(port, { tls: { ...TRUSTED, inject } }, async (sink) => {
          const r = await deliver(MESSAGE);
          assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
          assert.equal(r.tls?.verified, true);
          assert.equal(sink.messages[0].tls, true);
          assert.equal(replyLine(r.results[0].reply), "250 2.0.0 Ok: queued");
        });
      },
    );
    await t.step("a server without STARTTLS gets plain text", async () => {
      await withSink(port, {}, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:sent"]);
        assert.equal(r.tls, undefined);
        assert.equal(sink.messages[0].tls, false);
      });
    });
  });
});

Deno.test("smtpc with security level verify delivers only over TLS with a verified certificate", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port], adjust: level("verify") }, async ({ deliver }) => {
    const cases: [string, SinkOptions, string, string | RegExp][] = [
      ["a trusted certificate for the host's name", { tls: TRUSTED }, "mx.test", "sent"],
      ["a certificate from an unknown CA", { tls: ROGUE }, "mx.test", /not verified: .*UNABLE_TO_VERIFY/i],
      ["a certificate for another name", { tls: TRUSTED }, "other.test", /not verified: .*ALTNAME/i],
      [
        "no STARTTLS",
        {},
        "mx.test",
        /^451 4\.7\.5 TLS policy verify \(security_level verify\) not met with mx\.test\[127\.0\.0\.1\]:\d+: the server does not offer STARTTLS/,
      ],
      ["a failed handshake, never retried in plain text", { tls: BROKEN }, "mx.test", /TLS handshake failed/],
    ];
    for (const [label, opts, name, want] of cases) {
      await t.step(label, async () => {
        await withSink(port, opts, async (sink) => {
          const r = await deliver(MESSAGE, {
            route: { protocol: "esmtp", port, hosts: [{ name, address: "127.0.0.1" }] },
          });
          if (want === "sent") {
            assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
            assert.equal(r.tls?.verified, true);
          } else {
            assert.deepEqual(statuses(r), ["0:temp"]);
            assert.match(replyLine(r.results[0].reply), want as RegExp);
            assert.equal(sink.count, 0);
            assert.equal(sink.connections, 1);
          }
        });
      });
    }
  });
});

Deno.test("smtpc with security level encrypt needs TLS but no verification; none never starts it", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port], adjust: level("encrypt") }, async ({ deliver }) => {
    await t.step("encrypt: a certificate from an unknown CA is good enough", async () => {
      await withSink(port, { tls: ROGUE }, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:sent"]);
        assert.equal(r.tls?.verified, false);
        assert.equal(sink.messages[0].tls, true);
      });
    });
    await t.step("encrypt: a server without STARTTLS is not used", async () => {
      await withSink(port, {}, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:temp"]);
        assert.match(
          replyLine(r.results[0].reply),
          /^451 4\.7\.5 TLS policy encrypt .* does not offer STARTTLS/,
        );
        assert.equal(sink.count, 0);
      });
    });
  });
  await withSmtpc({ ports: [port], adjust: level("none") }, async ({ deliver }) => {
    await t.step("none: STARTTLS offered, not used", async () => {
      await withSink(port, { tls: TRUSTED }, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:sent"]);
        assert.equal(r.tls, undefined);
        assert.equal(sink.messages[0].tls, false);
      });
    });
  });
});

Deno.test("smtpc reports a TLS file it cannot read as fatal, naming the file", async () => {
  const adjust = (c: Config) =>
    c.smtpc.tls = { security_level: "may", CAcert_file: `${FIXTURES}missing.pem` };
  await assert.rejects(
    withSmtpc({ ports: [freePort()], adjust }, () => Promise.resolve()),
    /smtpc reported fatal: Read TLS CAcert_file .*missing\.pem: /,
  );
});

Deno.test("smtpc reads its trust anchors from CAcert_directory too", async () => {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "smtpc_cadir_" });
  try {
    await Deno.copyFile(`${FIXTURES}ca.pem`, `${dir}/test-ca.pem`);
    await Deno.writeTextFile(`${dir}/README`, "not a certificate\n");
    const adjust = (c: Config) => c.smtpc.tls = { security_level: "verify", CAcert_directory: dir };
    await withSmtpc({ ports: [port], adjust }, async ({ deliver }) => {
      await withSink(port, { tls: TRUSTED }, async (sink) => {
        const r = await deliver(MESSAGE);
        assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
        assert.equal(r.tls?.verified, true);
        assert.equal(sink.messages[0].tls, true);
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
