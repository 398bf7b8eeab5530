// SMTP AUTH (RFC 4954) against the real smtps worker: PLAIN and LOGIN against a credentials map of salted
// PBKDF2 hashes (built as `deno task createmap auth` builds it), offered only under TLS unless plain text
// is allowed, failures delayed and counted up to a 421, trusted mechanisms reaching smar as `authorized`,
// Received: saying ESMTPA / ESMTPSA (with the user when configured), and nodemailer logging in over TLS.

import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import type { SmtpsAuthConfig, SmtpsConfig } from "../config/types.ts";
import { hashPassword, verifyPassword } from "../components/smtps/password_hash.ts";
import { decodeResponse, parsePlain } from "../components/smtps/auth.ts";
import { createMap } from "../scripts/createmap.ts";
import { HOST, runDialogue, SmtpClient, type Smtps, startSmtps, tlsFile } from "./helpers/smtps_dialogue.ts";
import { cdbText } from "./helpers/cdb.ts";

const TLS = { cert_file: tlsFile("server.pem"), key_file: tlsFile("server.key"), flags: [] };
const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
const plain = (user: string, password: string) => b64(`\0${user}\0${password}`);

/** A temporary directory with a text credentials map of cheap hashes (alice, bob) and a SQLite one (carol). */
async function credentials(): Promise<{ dir: string; text: string; sqlite: string }> {
  const dir = await Deno.makeTempDir({ prefix: "smtps_auth_" });
  const text = `${dir}/auth.txt`;
  const lines = [
    "# user hash",
    `alice ${await hashPassword("secret", 1000)}`,
    `Bob ${await hashPassword("pass wörd", 1000)}`,
  ];
  await Deno.writeTextFile(text, lines.join("\n") + "\n");
  await Deno.writeTextFile(`${dir}/plain.txt`, "carol s3cret\n");
  const sqlite = `${dir}/auth.db`;
  const built = await createMap("auth", `${dir}/plain.txt`, sqlite);
  assert.deepEqual(built, { ok: true, entries: 1 });
  assert.equal((await Deno.stat(sqlite)).mode! & 0o777, 0o600, "the credentials map is for its owner only");
  return { dir, text, sqlite };
}

function authConfig(map_file: string, more: Partial<SmtpsAuthConfig> = {}): SmtpsAuthConfig {
  return {
    map_file,
    mechanisms: ["plain", "login"],
    trusted_mechs: ["plain"],
    max_failures: 3,
    failure_delay: 20,
    flags: ["allow_plaintext"],
    ...more,
  };
}

async function withServer(
  server: Partial<SmtpsConfig>,
  dir: string,
  fn: (s: Smtps) => Promise<void>,
): Promise<void> {
  const s = await startSmtps(server, {}, { read: [dir] });
  try {
    await fn(s);
  } finally {
    await s.stop();
  }
}

async function session(s: Smtps, fn: (c: SmtpClient) => Promise<void>): Promise<void> {
  const c = await SmtpClient.connect(s.port);
  try {
    await runDialogue(c, [[null, 220]]);
    await fn(c);
  } finally {
    c.close();
  }
}

Deno.test("smtps authenticates with PLAIN and LOGIN against the credentials map", async (t) => {
  const { dir, text, sqlite } = await credentials();
  try {
    await withServer({ auth: authConfig(text) }, dir, async (s) => {
      await t.step(
        "EHLO offers AUTH; PLAIN with an initial response; a trusted mechanism may relay",
        () =>
          session(s, async (c) => {
            const [ehlo] = await runDialogue(c, [["EHLO client.example", 250]]);
            assert.equal(ehlo.lines.at(-1), "250 AUTH PLAIN LOGIN");
            await runDialogue(c, [
              ["HELP", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP AUTH"],
              [`AUTH PLAIN ${plain("alice", "secret")}`, "235 2.7.0 Authentication successful"],
              [`AUTH PLAIN ${plain("alice", "secret")}`, "503 5.5.1 Error: already authenticated"],
              ["MAIL FROM:<alice@example.org> AUTH=<>", 250],
              ["RCPT TO:<someone@elsewhere.example>", 250],
              ["DATA", 354],
              ["Subject: x\r\n\r\ny\r\n.", 250],
              ["QUIT", 221],
            ]);
            const m = s.rcptMessages.at(-1)!;
            assert.equal(m.authorized, true);
            assert.equal(m.context?.authUser, "alice");
            const content = await cdbText(s.envelopes.at(-1)!.cdbPath);
            assert.match(content, / with ESMTPA id /);
            assert.ok(!content.includes("authenticated user"), "the user is named only when configured");
          }),
      );
      await t.step(
        "LOGIN in two challenges; an untrusted mechanism may not relay",
        () =>
          session(s, async (c) => {
            await runDialogue(c, [
              ["EHLO client.example", 250],
              ["AUTH LOGIN", "334 VXNlcm5hbWU6"],
              [b64("bob"), "334 UGFzc3dvcmQ6"],
              [b64("pass wörd"), "235 2.7.0"],
              ["MAIL FROM:<bob@example.org>", 250],
              ["RCPT TO:<someone@elsewhere.example>", 250],
            ]);
            assert.equal(s.rcptMessages.at(-1)!.authorized, false);
            assert.equal(s.rcptMessages.at(-1)!.context?.authUser, "bob");
          }),
      );
      await t.step(
        "PLAIN without an initial response: an empty challenge first",
        () =>
          session(s, async (c) => {
            await runDialogue(c, [
              ["EHLO client.example", 250],
              ["AUTH PLAIN", "334"],
              [plain("ALICE", "secret"), "235 2.7.0"], // user names are case-insensitive
            ]);
          }),
      );
      await t.step("refusals that end nothing", () =>
        session(s, async (c) => {
          await runDialogue(c, [
            ["AUTH PLAIN", "503 5.5.1 Error: send HELO/EHLO first"],
            ["EHLO client.example", 250],
            ["AUTH CRAM-MD5", "504 5.5.4 Unrecognized authentication type"],
            ["AUTH", "501 5.5.4"],
            ["AUTH PLAIN !!!", "501 5.5.2 Cannot decode the response"],
            ["AUTH LOGIN", 334],
            ["*", "501 5.0.0 Authentication aborted"],
            ["MAIL FROM:<a@example.org>", 250],
            [
              `AUTH PLAIN ${plain("alice", "secret")}`,
              "503 5.5.1 Error: AUTH not allowed in a mail transaction",
            ],
            ["QUIT", 221],
          ]);
        }));
      await t.step(
        "failures are answered 535 after a delay, the third ends the session",
        () =>
          session(s, async (c) => {
            await runDialogue(c, [
              ["EHLO client.example", 250],
              [`AUTH PLAIN ${plain("alice", "wrong")}`, "535 5.7.8 Authentication credentials invalid"],
              [`AUTH PLAIN ${plain("nobody", "secret")}`, "535 5.7.8"],
              [`AUTH PLAIN ${b64("alice\0alice\0secret")}`, "235"], // authzid equal to authcid is fine
            ]);
          }).then(() =>
            session(s, async (c) => {
              await runDialogue(c, [
                ["EHLO client.example", 250],
                [`AUTH PLAIN ${plain("alice", "1")}`, "535 5.7.8"],
                [`AUTH PLAIN ${b64("carol\0alice\0secret")}`, "535 5.7.8"], // no proxy authorization
                ["AUTH LOGIN", 334],
                [b64("alice"), 334],
                [b64("3"), `421 4.7.0 ${HOST} Too many authentication failures`],
              ]);
              assert.ok(await c.closedByServer());
            })
          ),
      );
    });
    await withServer({ auth: authConfig(sqlite) }, dir, async (s) => {
      await t.step("a SQLite map built by createmap auth", () =>
        session(s, async (c) => {
          await runDialogue(c, [["EHLO client.example", 250], [
            `AUTH PLAIN ${plain("carol", "s3cret")}`,
            235,
          ]]);
        }));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtps offers AUTH only under TLS unless plain text is allowed", async (t) => {
  const { dir, text } = await credentials();
  try {
    const auth = authConfig(text, { flags: ["received_user"] });
    await withServer({ auth, tls: TLS }, dir, async (s) => {
      await t.step("before STARTTLS: not offered, and 538 when tried", () =>
        session(s, async (c) => {
          const [ehlo] = await runDialogue(c, [["EHLO client.example", 250]]);
          assert.ok(!ehlo.lines.some((l) => l.includes("AUTH")), ehlo.lines.join(" | "));
          await runDialogue(c, [[
            `AUTH PLAIN ${plain("alice", "secret")}`,
            "538 5.7.11 Encryption required for requested authentication mechanism",
          ]]);
        }));
      await t.step(
        "after STARTTLS: offered; Received: says ESMTPSA and names the user",
        () =>
          session(s, async (c) => {
            await runDialogue(c, [["EHLO client.example", 250], ["STARTTLS", 220]]);
            await c.startTls();
            const [ehlo] = await runDialogue(c, [["EHLO client.example", 250]]);
            assert.ok(ehlo.lines.at(-1) === "250 AUTH PLAIN LOGIN", ehlo.lines.join(" | "));
            await runDialogue(c, [
              [`AUTH PLAIN ${plain("alice", "secret")}`, 235],
              ["MAIL FROM:<alice@example.org>", 250],
              ["RCPT TO:<x@elsewhere.example>", 250],
              ["DATA", 354],
              ["Subject: x\r\n\r\ny\r\n.", 250],
              ["QUIT", 221],
            ]);
            const content = await cdbText(s.envelopes.at(-1)!.cdbPath);
            assert.match(content, /\r\n\t\(authenticated user alice\)\r\n\tby .* with ESMTPSA id /);
          }),
      );
      await t.step("nodemailer logs in over STARTTLS", async () => {
        const transport = nodemailer.createTransport({
          host: "127.0.0.1",
          port: s.port,
          secure: false,
          requireTLS: true,
          name: "client.example",
          auth: { user: "bob", pass: "pass wörd" },
          tls: { ca: [Deno.readTextFileSync(tlsFile("ca.pem"))], servername: "localhost" },
        });
        try {
          const info = await transport.sendMail({ from: "bob@example.org", to: "x@example.com", text: "hi" });
          assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
          assert.equal(s.rcptMessages.at(-1)!.context?.authUser, "bob");
        } finally {
          transport.close();
        }
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtps refuses to start when its credentials map cannot be read", async () => {
  await assert.rejects(startSmtps({ auth: authConfig("/nonexistent/auth.db") }), /auth\.db/);
});

Deno.test("the AUTH building blocks: hashes, base64 responses, PLAIN messages", async (t) => {
  await t.step("a hash verifies its password and no other, and never holds it", async () => {
    const h = await hashPassword("secret", 1000);
    assert.match(h, /^\$pbkdf2-sha256\$i=1000\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    assert.ok(!h.includes("secret"));
    assert.equal(await verifyPassword("secret", h), true);
    assert.equal(await verifyPassword("Secret", h), false);
    assert.equal(await verifyPassword("secret", "secret"), false, "a plain-text value never matches");
    assert.notEqual(await hashPassword("secret", 1000), h, "salted");
  });
  await t.step("decodeResponse() takes base64 of UTF-8 and = for empty", () => {
    assert.equal(decodeResponse("="), "");
    assert.equal(decodeResponse(b64("wörd")), "wörd");
    assert.equal(decodeResponse("abc"), undefined);
    assert.equal(decodeResponse("/w=="), undefined, "not UTF-8");
  });
  await t.step("parsePlain() splits authzid, authcid and password", () => {
    assert.deepEqual(parsePlain("\0u\0p"), { user: "u", password: "p" });
    assert.deepEqual(parsePlain("u\0u\0p"), { user: "u", password: "p" });
    assert.equal(parsePlain("x\0u\0p"), undefined);
    assert.equal(parsePlain("\0u\0"), undefined);
    assert.equal(parsePlain("\0u"), undefined);
  });
});
