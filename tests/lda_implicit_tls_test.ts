// Implicit TLS for LMTP (issue 18 item 1, the lda part): the real lda with `tls { flags = { implicit }; }`
// does the TLS handshake before its greeting (a TLS client gets `220 ... LMTP ready` inside TLS, a
// plain-text client gets no greeting), and the whole MTA delivers to it through a mailertable `lmtps:`
// route: smtpc connects with TLS from the first byte (no STARTTLS), verifying the lda's certificate when
// security_level says verify, and the message lands in the Maildir. A tls section without the implicit
// flag is refused by the parser; `smtps:` and `lmtps:` parse with their default ports, and an `smtps:`
// route reaches smx's own implicit-TLS smtps (the port 465 style of a smart host) with no STARTTLS.

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { parseMailertableRhs } from "../components/smar/mailertable.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { startSmtps } from "./helpers/smtps_dialogue.ts";
import { statuses, withSmtpc } from "./helpers/smtpc_worker.ts";
import { relayText } from "../components/mail/result.ts";

const TLS_DIR = new URL("./fixtures/tls/", import.meta.url).pathname;
const CERT = join(TLS_DIR, "server.pem");
const KEY = join(TLS_DIR, "server.key");
const CA = join(TLS_DIR, "ca.pem");

/** Waits until `dir` holds a file; returns the first one's text. */
async function firstFile(dir: string, ms = 15_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (names.length > 0) return await Deno.readTextFile(join(dir, names[0]));
    if (Date.now() > deadline) throw new Error(`no file in ${dir}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads from `conn` until a line ends in CRLF or it closes; the text ("" when nothing came). */
async function readLine(conn: Deno.Conn, ms: number): Promise<string> {
  const buf = new Uint8Array(512);
  let text = "";
  const timer = setTimeout(() => conn.close(), ms);
  try {
    while (!text.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    // closed by the timer: nothing more came
  } finally {
    clearTimeout(timer);
  }
  return text;
}

Deno.test("mailertable lmtps: and smtps: routes are LMTP and SMTP over TLS from the first byte", () => {
  assert.deepEqual(parseMailertableRhs("lmtps:[127.0.0.1]"), {
    protocol: "lmtp",
    port: 24,
    hosts: [{ kind: "literal", address: "127.0.0.1" }],
    implicitTls: true,
  });
  assert.deepEqual(parseMailertableRhs("smtps:relay.example.net"), {
    protocol: "esmtp",
    port: 465,
    hosts: [{ kind: "name", name: "relay.example.net" }],
    implicitTls: true,
  });
  assert.equal(parseMailertableRhs("2424^LMTPS:[127.0.0.1]").port, 2424);
  assert.throws(() => parseMailertableRhs("lmtps:"), /no host/);
  assert.throws(
    () => parseMailertableRhs("smtpx:[127.0.0.1]"),
    /unknown protocol smtpx, expected esmtp, lmtp, smtps/,
  );
});

Deno.test("the lda's tls section: implicit only, its files in the lda's read set", async () => {
  const text = (flags: string) =>
    `lda { listen_socket { type = inet; address = 127.0.0.1; port = 2424; }
  tls { cert_file = ${JSON.stringify(CERT)}; key_file = ${JSON.stringify(KEY)}; ${flags} } }`;
  assert.throws(() => parseConfig(text(""), "x.conf"), /tls of lda needs flags = \{ implicit \}/);
  const config = parseConfig(text("flags = { implicit };"), "x.conf");
  assert.deepEqual(config.lda?.tls, { cert_file: CERT, key_file: KEY, flags: ["implicit"] });
  const sets = await computePermissions(config, { readFiles: false });
  const read = sets.lda?.read;
  assert.ok(Array.isArray(read) && read.includes(CERT) && read.includes(KEY), JSON.stringify(read));
});

Deno.test("end to end: smtpc delivers to the real lda over implicit TLS (lmtps:), verifying its certificate", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lmtps-" });
  const ldaPort = freePort();
  await Deno.writeTextFile(join(dir, "local_users"), "demo\t10MB\n");
  const mta = await startTestMta({
    dir,
    mailertable: `localhost\t${ldaPort}^lmtps:[127.0.0.1]\n`,
    access: "",
    configText: `map local_users { type = hash; file = ${JSON.stringify(join(dir, "local_users"))}; }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = ${ldaPort}; }
  mail_root = ${JSON.stringify(join(dir, "var/mail"))};
  local_user_map = local_users;
  tls { cert_file = ${JSON.stringify(CERT)}; key_file = ${JSON.stringify(KEY)}; flags = { implicit }; }
}
smtpc { tls { security_level = verify; CAcert_file = ${JSON.stringify(CA)}; } }
log { directory = ${JSON.stringify(join(dir, "log"))}; }
`,
  });
  try {
    await t.step("a TLS client gets the LMTP greeting inside TLS", async () => {
      const conn = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: ldaPort,
        caCerts: [await Deno.readTextFile(CA)],
      });
      try {
        assert.match(await readLine(conn, 5000), /^220 \S+ LMTP ready\r\n/);
        await conn.write(new TextEncoder().encode("QUIT\r\n"));
      } finally {
        conn.close();
      }
    });
    await t.step("a plain-text client gets no greeting", async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: ldaPort });
      assert.equal(await readLine(conn, 300), "");
      try {
        conn.close();
      } catch {
        // closed by readLine's timer
      }
    });
    await t.step("mail for a local user lands in the Maildir, delivered over implicit TLS", async () => {
      assert.match(
        await smtpSend(mta.port, {
          from: "someone@remote.test",
          to: ["demo@localhost"],
          body: "Subject: over lmtps\r\n\r\nsecret\r\n",
        }),
        /^250 /,
      );
      const text = await firstFile(join(dir, "var/mail/demo/Maildir/new"));
      assert.match(text, /\nSubject: over lmtps\n\nsecret\n$/);
      const smtpc = await Deno.readTextFile(join(dir, "log", "smtpc.log"));
      assert.match(
        smtpc,
        /implicit TLS with 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.[23] \S+, verified, authenticated by its CA/,
      );
      assert.ok(!/STARTTLS/.test(smtpc), "no STARTTLS on an implicit-TLS route");
      // qmgr logs the delivery once smtpc's result is in: wait for the line.
      const sent = new RegExp(
        `to=<demo@localhost>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${ldaPort}, .*status=sent`,
      );
      const deadline = Date.now() + 10_000;
      let qmgr = "";
      while (!sent.test(qmgr) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        qmgr = await Deno.readTextFile(join(dir, "log", "qmgr.log"));
      }
      assert.match(qmgr, sent);
    });
  } finally {
    await mta.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an implicit-TLS SMTP route (smtps:) reaches smtps's implicit-TLS listener, verified, without STARTTLS", async () => {
  const s = await startSmtps({ tls: { cert_file: CERT, key_file: KEY, flags: ["implicit"] } });
  const adjust = (c: Parameters<NonNullable<Parameters<typeof withSmtpc>[0]["adjust"]>>[0]) => {
    c.smtpc.tls = { security_level: "verify", CAcert_file: CA };
    c.smtpc.connection_cache_time_limit = 0;
  };
  try {
    await withSmtpc({ ports: [s.port], ioTimeout: 1000, adjust }, async ({ deliver }) => {
      const route = {
        protocol: "esmtp" as const,
        port: s.port,
        hosts: [{ name: "localhost", address: "127.0.0.1" }],
        implicitTls: true,
      };
      const r = await deliver("Subject: smtps\r\n\r\nover 465-style TLS\r\n", { route });
      assert.deepEqual(statuses(r), ["0:sent"], JSON.stringify(r));
      assert.equal(relayText(r.relay), `localhost[127.0.0.1]:${s.port}`);
      assert.equal(r.tls?.verified, true, JSON.stringify(r.tls));
      assert.equal(s.envelopes.length, 1);
      // Without implicit TLS the same port gives no greeting: the attempt fails and is deferred.
      const plain = await deliver("Subject: plain\r\n\r\nx\r\n", { route: { ...route, implicitTls: false } });
      assert.deepEqual(statuses(plain), ["0:temp"]);
    });
  } finally {
    await s.stop();
  }
});
