// Mail authentication end to end: the whole MTA, an in-test DNS server publishing SPF, DKIM and DMARC
// records, dkimpy (python3-dkim) signing what arrives and verifying what smx signs. Inbound mail from
// 127.0.0.2 gets our Authentication-Results: (forged ones naming us removed); a DMARC p=reject failure
// is refused from the access map; a DNS failure is never a permanent refusal. Mail a permitted client
// (127.0.0.1 may relay) sends through the MSA leaves DKIM-signed and verifies with dkimpy.

import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestMta, type TestMta } from "./helpers/mta.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { SmtpConnection } from "./helpers/smtp_client.ts";
import { type DnsServer, startDnsServer } from "./helpers/dns_server.ts";
import {
  authresParse,
  dkimpyArcSign,
  dkimpyArcVerify,
  dkimpySign,
  dkimpyVerify,
  type KeyPair,
  opendkimSign,
  rsaKeyPair,
} from "./mailauth/fixtures.ts";

const AUTHSERV = "mx.example.org";
const ACCESS = `
cltaddr:127.0.0.1	relay
to:@remote.test	relay
dmarc:reject	error:550 5.7.1 Rejected by DMARC policy
dmarc:temperror	error:550 5.7.1 Never permanent
spf:fail	error:550 5.7.23 SPF check failed
`;

interface World {
  mta: TestMta;
  sink: Sink;
  dns: DnsServer;
  key: KeyPair;
  keyFile: string;
  msaPort: number;
  delayPort: number;
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mailauth_e2e_" });
  const key = rsaKeyPair();
  const keyFile = join(dir, "signer.key");
  await Deno.writeTextFile(keyFile, key.privatePem);
  await Deno.writeTextFile(join(dir, "dkimkeys"), `signer.test s1 ${keyFile}\n`);
  const sink = await startSink();
  const dns = await startDnsServer([
    { name: "signer.test", type: "TXT", data: "v=spf1 ip4:127.0.0.0/8 -all" },
    { name: "signer.test", type: "A", data: "192.0.2.1" },
    { name: "s1._domainkey.signer.test", type: "TXT", data: key.txt },
    { name: "_dmarc.signer.test", type: "TXT", data: "v=DMARC1; p=reject" },
    { name: "client.test", type: "A", data: "127.0.0.2" },
    { name: "broken.test", type: "A", data: "192.0.2.3" },
    { name: "slow.test", type: "A", data: "192.0.2.4" },
    { name: "strict.test", type: "A", data: "192.0.2.7" },
    { name: "strict.test", type: "TXT", data: "v=spf1 -all" },
    { name: "nokey.test", type: "A", data: "192.0.2.5" },
    { name: "badkey.test", type: "A", data: "192.0.2.6" },
    { name: "s1._domainkey.badkey.test", type: "TXT", data: "v=DKIM1; k=rsa; p=bm90IGEga2V5" },
  ], { servfail: ["s1._domainkey.broken.test", "_dmarc.broken.test"], drop: ["s1._domainkey.slow.test"] });
  const msaPort = freePort();
  const delayPort = freePort();
  let mta: TestMta | undefined;
  try {
    mta = await startTestMta({
      dir,
      access: ACCESS,
      mailertable: `remote.test\t${sink.port}^esmtp:[127.0.0.1]\n`,
      nameservers: [dns.address],
      configText: `map dkimkeys { type = hash; file = ${JSON.stringify(join(dir, "dkimkeys"))}; }
smtps MSA {
  listen_socket { type = inet; address = 127.0.0.1; port = ${msaPort}; }
  dkim_signing { map = dkimkeys; }
}
smtps DELAY {
  listen_socket { type = inet; address = 127.0.0.1; port = ${delayPort}; }
  flags = { access, delay_checks };
  authentication { flags = { spf }; authserv_id = "${AUTHSERV}"; }
}
`,
      adjust(config) {
        config.smtps[0].flags = ["8bitmime", "access"];
        config.smtps[0].authentication = {
          flags: ["spf", "dkim", "dmarc", "arc"],
          authserv_id: AUTHSERV,
          // The seal uses the map's first key (signer.test s1): no entry for the authserv-id's domain.
          arc_seal: { map: { name: "dkimkeys", type: "hash", file: join(dir, "dkimkeys") } },
        };
        config.smar.DNS_timeout = 300;
      },
    });
    await fn({ mta, sink, dns, key, keyFile, msaPort, delayPort });
  } finally {
    await mta?.stop();
    await sink.close();
    await dns.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Sends `message` from 127.0.0.2 with envelope sender `from`; returns the reply to the final dot. */
async function send(port: number, from: string, message: string, local = "127.0.0.2"): Promise<string> {
  const c = await SmtpConnection.open(port, { localAddress: local, timeoutMs: 20_000 });
  try {
    await c.reply();
    assert.match(await c.command("EHLO client.test"), /^250/);
    const mail = await c.command(`MAIL FROM:<${from}>`);
    if (!mail.startsWith("250")) return mail;
    assert.match(await c.command("RCPT TO:<rcpt@remote.test>"), /^250/);
    assert.match(await c.command("DATA"), /^354/);
    c.write(message.replace(/(^|\r\n)\./g, "$1..") + ".\r\n");
    const reply = await c.reply();
    await c.command("QUIT");
    return reply;
  } finally {
    await c.close();
  }
}

function message(from: string, body = "Hello there.\r\n", extra = ""): string {
  return `${extra}From: Someone <${from}>\r\nTo: rcpt@remote.test\r\nSubject: test\r\n` +
    `Date: Fri, 04 Dec 2026 18:00:00 +0000\r\nMessage-ID: <${crypto.randomUUID()}@x>\r\n\r\n${body}`;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The delivered message holding `marker`, waited for. */
async function delivered(w: World, marker: string): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = w.sink.messages.map((x) => text(x.data)).find((x) => x.includes(marker));
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no message with ${marker} delivered`);
    await w.sink.waitFor(w.sink.count + 1, 15_000).catch(() => {});
  }
}

/** The unfolded Authentication-Results: fields of a delivered message. */
function authResults(m: string): string[] {
  const head = m.slice(0, m.indexOf("\r\n\r\n") + 2).replace(/\r\n[ \t]+/g, " ");
  return head.split("\r\n").filter((l) => /^authentication-results:/i.test(l));
}

Deno.test("mail authentication end to end (one MTA, one DNS server, dkimpy)", async (t) => {
  await withWorld(async (w) => {
    await t.step(
      "mail authentication: dkimpy-signed mail passes DKIM, SPF and DMARC; forged results naming us are removed",
      async () => {
        const plain = message("alice@signer.test", "Step one.\r\n");
        const signed = await dkimpySign(plain, w.keyFile, "s1", "signer.test") + plain;
        const forged = `Authentication-Results: ${AUTHSERV}; dkim=pass header.d=paypal.test\r\n` +
          `Authentication-Results: other.test; spf=pass\r\n`;
        assert.match(await send(w.mta.port, "alice@signer.test", forged + signed), /^250 /);
        const got = await delivered(w, "Step one.");
        const ar = authResults(got);
        assert.equal(ar.filter((l) => l.includes(AUTHSERV)).length, 1, got);
        assert.ok(ar.some((l) => l.includes("other.test")), "someone else's results stay");
        const ours = ar.find((l) => l.includes(AUTHSERV))!;
        assert.match(ours, /dkim=pass/);
        assert.match(ours, /header\.d=signer\.test/);
        assert.match(ours, /spf=pass/);
        assert.match(ours, /dmarc=pass/);
        assert.doesNotMatch(got, /paypal\.test/);
        // RFC 8601 syntax, as python3-authres reads it.
        assert.deepEqual(await authresParse(ours), [
          AUTHSERV,
          "spf=pass",
          "spf=none",
          "dkim=pass",
          "arc=none",
          "dmarc=pass",
        ]);
        assert.ok(
          got.indexOf("Authentication-Results: mx.example.org") < got.indexOf("Received:"),
          "ours on top",
        );
      },
    );
    await t.step("mail authentication: an SPF failure is refused at MAIL from the access map", async () => {
      const reply = await send(w.mta.port, "eve@strict.test", message("eve@strict.test"));
      assert.match(reply, /^550 5\.7\.23 SPF check failed/);
      // With delay_checks the refusal waits for RCPT.
      const c = await SmtpConnection.open(w.delayPort, { localAddress: "127.0.0.2" });
      try {
        await c.reply();
        await c.command("EHLO client.test");
        assert.match(await c.command("MAIL FROM:<eve@strict.test>"), /^250 /);
        assert.match(await c.command("RCPT TO:<rcpt@remote.test>"), /^550 5\.7\.23 SPF check failed/);
        await c.command("QUIT");
      } finally {
        await c.close();
      }
    });
    await t.step(
      "mail authentication: a changed body fails DKIM and DMARC p=reject refuses it from the access map",
      async () => {
        const plain = message("alice@signer.test");
        const sig = await dkimpySign(plain, w.keyFile, "s1", "signer.test");
        const changed = sig + message("alice@signer.test", "Hello there, changed.\r\n");
        // The envelope sender is elsewhere, so SPF cannot align; DKIM fails: DMARC fails, p=reject.
        const reply = await send(w.mta.port, "bounce@client.test", changed);
        assert.match(reply, /^550 5\.7\.1 Rejected by DMARC policy/);
        assert.equal(w.sink.messages.filter((m) => text(m.data).includes("Hello there")).length, 0);
      },
    );
    await t.step(
      "mail authentication: DNS failing gives temperror and never a permanent refusal",
      async () => {
        const plain = message("bob@broken.test");
        const sig = await dkimpySign(plain, w.keyFile, "s1", "broken.test");
        // SERVFAIL for the key and the DMARC record: the access map's 550 for dmarc:temperror becomes 451.
        const reply = await send(w.mta.port, "bob@client.test", sig + plain);
        assert.match(reply, /^451 4\.7\.5 /, "a 5xx entry for a temperror answers 4xx");
        assert.equal(w.sink.messages.filter((m) => text(m.data).includes("Hello there")).length, 0);
      },
    );
    await t.step(
      "mail authentication: a DNS timeout, a missing key and a broken key record are temperror, permerror, permerror",
      async () => {
        const cases = [["slow.test", "temperror"], ["nokey.test", "permerror"], ["badkey.test", "permerror"]];
        for (const [domain] of cases) {
          const plain = message(`carol@${domain}`);
          const sig = await dkimpySign(plain, w.keyFile, "s1", domain);
          assert.match(await send(w.mta.port, "carol@client.test", sig + plain), /^250 /, domain);
        }
        for (const [domain, want] of cases) {
          const m = await delivered(w, `carol@${domain}`);
          const ours = authResults(m).find((l) => l.includes(AUTHSERV))!;
          assert.match(ours, new RegExp(`dkim=${want}`), `${domain}: ${ours}`);
        }
      },
    );
    await t.step(
      "mail authentication: an oversized header section is checked without a crash and stored whole",
      async () => {
        const big = Array.from({ length: 3000 }, (_, i) => `X-Filler-${i}: ${"y".repeat(400)}\r\n`).join("");
        const forged = `Authentication-Results: ${AUTHSERV}; dmarc=pass\r\n`;
        const reply = await send(w.mta.port, "dave@client.test", forged + big + message("dave@client.test"));
        assert.match(reply, /^250 /);
        const got = await delivered(w, "X-Filler-2999: ");
        assert.ok(got.includes("X-Filler-2999: "), "the whole header section is kept");
        assert.equal(authResults(got).filter((l) => l.includes(AUTHSERV)).length, 1);
        assert.doesNotMatch(authResults(got).join("\n"), /dmarc=pass/);
      },
    );
    await t.step(
      "mail authentication: OpenDKIM's rsa-sha1 signature verifies but counts as policy (RFC 8301)",
      async () => {
        const plain = message("alice@signer.test", "Signed by OpenDKIM.\r\n");
        const signed = await opendkimSign(plain, w.keyFile, "s1", "signer.test");
        assert.match(signed, /a=rsa-sha1/);
        assert.match(await send(w.mta.port, "alice@signer.test", signed), /^250 /); // SPF aligns: DMARC passes
        const ours = authResults(await delivered(w, "Signed by OpenDKIM.")).find((l) =>
          l.includes(AUTHSERV)
        )!;
        assert.match(ours, /dkim=policy/);
        assert.match(ours, /header\.d=signer\.test/);
        // The body changed after OpenDKIM signed it: fail (the body hash is checked before the algorithm).
        const changed = signed.replace("Signed by OpenDKIM.", "Signed by OpenDKIM, changed.");
        await send(w.mta.port, "alice@signer.test", changed);
        const bad = authResults(await delivered(w, "Signed by OpenDKIM, changed.")).find((l) =>
          l.includes(AUTHSERV)
        )!;
        assert.match(bad, /dkim=fail/);
      },
    );
    await t.step("mail authentication: of 200 DKIM signatures only the first 10 are verified", async () => {
      const plain = message("frank@client.test", "Many signatures.\r\n");
      const sigs = Array.from(
        { length: 200 },
        (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; d=many.test; s=k${i}; h=from; bh=AAAA; b=AAAA\r\n`,
      ).join("");
      const before = w.dns.queries.length;
      assert.match(await send(w.mta.port, "frank@client.test", sigs + plain), /^250 /);
      const got = await delivered(w, "Many signatures.");
      const asked = w.dns.queries.slice(before).filter((q) => /^k\d+\._domainkey\.many\.test$/i.test(q.name));
      assert.ok(asked.length <= 10, `${asked.length} key lookups`);
      assert.equal(got.split("\r\nDKIM-Signature: ").length - 1, 200, "every signature is stored");
    });
    await t.step(
      "ARC: what arrives is sealed (cv=none), and a chain dkimpy sealed is verified and sealed again (cv=pass)",
      async () => {
        const first = await delivered(w, "Step one.");
        assert.match(first, /^ARC-Seal: i=1; /);
        assert.match(first.replace(/\r\n[ \t]+/g, " "), /ARC-Seal: i=1; a=rsa-sha256; .*cv=none/);
        assert.match(await dkimpyArcVerify(first, w.key.txt), /^pass/);

        const plain = `Authentication-Results: relay.signer.test; spf=pass smtp.mailfrom=signer.test\r\n` +
          message("alice@signer.test", "Relayed with ARC.\r\n");
        const arcSet = await dkimpyArcSign(plain, w.keyFile, "s1", "signer.test", "relay.signer.test");
        assert.match(arcSet, /ARC-Seal: i=1/);
        assert.match(await send(w.mta.port, "alice@signer.test", arcSet + plain), /^250 /);
        const got = await delivered(w, "Relayed with ARC.");
        const ours = authResults(got).find((l) => l.includes(AUTHSERV))!;
        assert.match(ours, /arc=pass/);
        assert.match(got.replace(/\r\n[ \t]+/g, " "), /ARC-Seal: i=2; .*cv=pass/);
        assert.match(await dkimpyArcVerify(got, w.key.txt), /^pass/);
      },
    );
    await t.step(
      "DKIM signing: mail a permitted client sends through the MSA leaves signed and verifies with dkimpy",
      async () => {
        const reply = await send(
          w.msaPort,
          "alice@signer.test",
          message("alice@signer.test", "Sent by the MSA.\r\n"),
          "127.0.0.1",
        );
        assert.match(reply, /^250 /);
        const got = await delivered(w, "Sent by the MSA.");
        assert.match(got, /^DKIM-Signature: /);
        assert.match(got, /d=signer\.test/);
        assert.equal(await dkimpyVerify(got, w.key.txt), "pass");
        const tampered = got.replace("Sent by the MSA.", "Sent by the MSA!");
        assert.equal(await dkimpyVerify(tampered, w.key.txt), "fail");
      },
    );
  });
});
