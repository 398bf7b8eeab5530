// STARTTLS (RFC 3207) against the real smtps worker with the test CA's certificates (tests/fixtures/tls):
// the upgrade with Deno.startTls and with nodemailer, the session state forgotten after the handshake,
// bytes injected behind STARTTLS dropped (CVE-2011-0411), a second STARTTLS refused, client certificates
// verified or not and handed to smar DN-encoded, a failed handshake, a client gone in the middle of the
// handshake (its session ends at once), and a missing certificate file
// stopping the start. Received: says ESMTPS with the TLS version and cipher.

import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import { X509Certificate } from "node:crypto";
import { encodeDn, onelineDn, verifyChain } from "../components/smtps/tls.ts";
import { HOST, runDialogue, SmtpClient, type Smtps, startSmtps, tlsFile } from "./helpers/smtps_dialogue.ts";
import { RawClient } from "./helpers/hostile_client.ts";
import { cdbText } from "./helpers/cdb.ts";

const TLS = { cert_file: tlsFile("server.pem"), key_file: tlsFile("server.key"), flags: [] };
const CA = Deno.readTextFileSync(tlsFile("ca.pem"));

/** Connects, says EHLO and STARTTLS, and completes the handshake. */
async function secureClient(s: Smtps): Promise<SmtpClient> {
  const c = await SmtpClient.connect(s.port);
  await runDialogue(c, [[null, 220], ["EHLO client.example", 250], [
    "STARTTLS",
    "220 2.0.0 Ready to start TLS",
  ]]);
  await c.startTls();
  return c;
}

Deno.test("smtps speaks TLS after STARTTLS and forgets the plaintext session", async (t) => {
  const s = await startSmtps({ tls: TLS });
  try {
    await t.step("EHLO offers STARTTLS before TLS and not after", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        const [, before] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
        assert.ok(before.lines.some((l) => /^250[- ]STARTTLS$/.test(l)), before.lines.join(" | "));
        const help = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
        await runDialogue(c, [["HELP", `${help} STARTTLS`], ["STARTTLS", 220]]);
        await c.startTls();
        const [after] = await runDialogue(c, [["EHLO client.example", 250]]);
        assert.ok(!after.lines.some((l) => l.includes("STARTTLS")), after.lines.join(" | "));
        const [helpAfter] = await runDialogue(c, [["HELP", help]]);
        assert.ok(!helpAfter.lines[0].includes("STARTTLS"), "HELP names no STARTTLS under TLS");
        await runDialogue(c, [["QUIT", 221]]);
      } finally {
        c.close();
      }
    });
    await t.step("a message over TLS: Received: says ESMTPS with the version and cipher", async () => {
      const c = await secureClient(s);
      try {
        await runDialogue(c, [
          ["MAIL FROM:<a@example.org>", "503 5.5.1 Error: send HELO/EHLO first"], // EHLO is forgotten
          ["EHLO client.example", 250],
          ["MAIL FROM:<a@example.org>", 250],
          ["RCPT TO:<b@example.com>", 250],
          ["DATA", 354],
          ["Subject: secret\r\n\r\nbody\r\n.", 250],
          ["STARTTLS", "503 5.5.1 Error: TLS already active"],
          ["QUIT", 221],
        ]);
        const content = await cdbText(s.envelopes.at(-1)!.cdbPath);
        assert.match(
          content,
          /^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.[23] with cipher \S+\)\r\n\tby /,
        );
        assert.match(content, / with ESMTPS id /);
        assert.equal(s.rcptMessages.at(-1)!.context?.cert, undefined, "no client certificate was sent");
      } finally {
        c.close();
      }
    });
    await t.step("bytes sent behind STARTTLS are dropped, not run inside TLS", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
        await c.send("STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n");
        await runDialogue(c, [[null, 220]]);
        await c.startTls();
        // The first reply inside TLS answers our EHLO; no 250 for the injected MAIL comes first.
        const [r] = await runDialogue(c, [["EHLO client.example", 250]]);
        assert.equal(r.lines[0], `250-${HOST}`);
        await runDialogue(c, [["RCPT TO:<b@example.com>", "503 5.5.1 Error: need MAIL"], ["QUIT", 221]]);
      } finally {
        c.close();
      }
    });
    await t.step("STARTTLS out of place", async () => {
      const c = await SmtpClient.connect(s.port);
      try {
        await runDialogue(c, [
          [null, 220],
          ["STARTTLS", "503 5.5.1 Error: send HELO/EHLO first"],
          ["EHLO client.example", 250],
          ["STARTTLS now", "501 5.5.4"],
          ["MAIL FROM:<a@example.org>", 250],
          ["STARTTLS", "503 5.5.1 Error: STARTTLS not allowed in a mail transaction"],
          ["QUIT", 221],
        ]);
      } finally {
        c.close();
      }
    });
    await t.step(
      "a client that sends garbage instead of a ClientHello is dropped, the server goes on",
      async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          await runDialogue(c, [[null, 220], ["EHLO client.example", 250], ["STARTTLS", 220]]);
          await c.send("this is not TLS\r\n".repeat(10));
          assert.ok(await c.closedByServer());
        } finally {
          c.close();
        }
        const again = await secureClient(s);
        try {
          await runDialogue(again, [["EHLO client.example", 250], ["QUIT", 221]]);
        } finally {
          again.close();
        }
      },
    );
    await t.step(
      "a client gone after the 220 to STARTTLS ends its session at once, not at io_timeout",
      async () => {
        const leave: [label: string, go: (c: RawClient) => Promise<unknown>][] = [
          ["FIN", (c) => c.close()],
          ["RST", (c) => c.reset()],
          ["half-close", (c) => Promise.resolve(c.end())],
          ["half a TLS record, then FIN", async (c) => {
            await c.send(new Uint8Array([22, 3, 1, 0x40, 0]));
            c.end();
          }],
        ];
        for (const [label, go] of leave) {
          const c = await RawClient.open(s.port);
          try {
            const ended = s.closed.length;
            assert.match(await c.reply(), /^220 /);
            assert.match(await c.command("EHLO client.example"), /^250[ -]/);
            assert.match(await c.command("STARTTLS"), /^220 /);
            await go(c);
            for (let i = 0; i < 300 && s.closed.length === ended; i++) {
              await new Promise((r) => setTimeout(r, 10));
            }
            assert.equal(s.closed.length, ended + 1, `${label}: the session ended`);
          } finally {
            await c.close();
          }
        }
      },
    );
  } finally {
    await s.stop();
  }
});

Deno.test("smtps without a tls section does not offer STARTTLS", async () => {
  const s = await startSmtps();
  const c = await SmtpClient.connect(s.port);
  try {
    const [, ehlo] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
    assert.ok(!ehlo.lines.some((l) => l.includes("STARTTLS")));
    await runDialogue(c, [["STARTTLS", "502 5.5.1"], ["QUIT", 221]]);
  } finally {
    c.close();
    await s.stop();
  }
});

/** Sends one message with nodemailer over STARTTLS, presenting `client` (a fixture name) if given. */
async function sendWithNodemailer(s: Smtps, client?: string): Promise<void> {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: s.port,
    secure: false,
    requireTLS: true,
    name: "client.example",
    tls: {
      ca: [CA],
      servername: "localhost",
      ...(client
        ? {
          cert: Deno.readTextFileSync(tlsFile(`${client}.pem`)),
          key: Deno.readTextFileSync(tlsFile(`${client}.key`)),
        }
        : {}),
    },
  });
  try {
    const info = await transport.sendMail({
      from: "a@example.org",
      to: "b@example.com",
      subject: "over TLS",
      text: "hello",
    });
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
  } finally {
    transport.close();
  }
}

Deno.test("smtps takes mail from nodemailer over STARTTLS and verifies client certificates", async (t) => {
  const s = await startSmtps({
    tls: { ...TLS, CAcert_file: tlsFile("ca.pem"), flags: ["allow_relaying_if_verified"] },
  });
  try {
    await t.step("without a client certificate: not authorized", async () => {
      await sendWithNodemailer(s);
      const m = s.rcptMessages.at(-1)!;
      assert.equal(m.authorized, false);
      assert.equal(m.context?.cert, undefined);
      assert.match(await cdbText(s.envelopes.at(-1)!.cdbPath), / with ESMTPS id /);
    });
    await t.step("a certificate our CA signed: verified, DN-encoded for smar, allowed to relay", async () => {
      await sendWithNodemailer(s, "client");
      const m = s.rcptMessages.at(-1)!;
      assert.deepEqual(m.context?.cert, {
        verified: true,
        issuer: "/C=XX/O=smx+20test/CN=smx+20test+20CA",
        subject: "/C=XX/O=smx+20test/OU=Mail+20+28relay+29/CN=client+20one",
      });
      assert.deepEqual(m.context?.tlsFlags, ["allow_relaying_if_verified"]);
      assert.equal(m.authorized, true);
    });
    await t.step("a certificate no configured CA signed: presented but not verified", async () => {
      await sendWithNodemailer(s, "stranger");
      const m = s.rcptMessages.at(-1)!;
      assert.equal(m.context?.cert?.verified, false);
      assert.equal(m.context?.cert?.subject, "/C=XX/O=elsewhere/CN=stranger");
      assert.equal(m.authorized, false);
    });
  } finally {
    await s.stop();
  }
});

Deno.test("smtps trusts the CA certificates of CAcert_directory, and only CA certificates", async () => {
  // The fixtures directory holds the CA and three leaf certificates: only the CA may verify clients.
  const s = await startSmtps({ tls: { ...TLS, CAcert_directory: tlsFile("") } });
  try {
    await sendWithNodemailer(s, "client");
    assert.equal(s.rcptMessages.at(-1)!.context?.cert?.verified, true);
    await sendWithNodemailer(s, "stranger");
    assert.equal(s.rcptMessages.at(-1)!.context?.cert?.verified, false);
  } finally {
    await s.stop();
  }
});

Deno.test("verifyChain() refuses a certificate outside its validity dates", () => {
  const ca = new X509Certificate(CA);
  const client = new X509Certificate(Deno.readTextFileSync(tlsFile("client.pem")));
  assert.equal(verifyChain(client, [], [ca]), true);
  assert.equal(verifyChain(client, [], [ca], new Date("2200-01-01")), false);
  assert.equal(verifyChain(client, [], [ca], new Date("2000-01-01")), false);
  assert.equal(verifyChain(client, [], []), false);
});

Deno.test('encodeDn() writes +XX for unprintables and < > ( ) " + space', () => {
  assert.equal(onelineDn("C=XX\nO=A B\nCN=x"), "/C=XX/O=A B/CN=x");
  assert.equal(encodeDn('/CN=<a>(b)"c"+d e\u00e9'), "/CN=+3Ca+3E+28b+29+22c+22+2Bd+20e+C3+A9");
  assert.equal(encodeDn("/O=plain,text;ok"), "/O=plain,text;ok");
});

Deno.test("smtps refuses to start when a TLS file cannot be read", async () => {
  await assert.rejects(
    startSmtps({ tls: { ...TLS, cert_file: tlsFile("missing.pem") } }),
    /missing\.pem/,
  );
});
