// Implicit TLS (RFC 8314, `tls { flags = { implicit }; }`, the port 465 style) against the real smtps
// worker with the test CA's certificates: openssl s_client (no -starttls) gets the greeting inside TLS,
// EHLO offers AUTH PLAIN and no STARTTLS, swaks --tlsc submits a message with AUTH, a plaintext client
// gets nothing, and clients leaving in the middle of the handshake never hurt the server. Real tools are
// required in CI (listed in .ci/packages.d/submission.txt) and skipped elsewhere when missing.

import assert from "node:assert/strict";
import type { SmtpsAuthConfig } from "../config/types.ts";
import { parseConfig } from "../config/mod.ts";
import { hashPassword } from "../components/smtps/password_hash.ts";
import { startSmtps, tlsFile } from "./helpers/smtps_dialogue.ts";
import { RawClient } from "./helpers/hostile_client.ts";
import { haveTool } from "./helpers/tools.ts";

const OPENSSL = "/usr/bin/openssl";
const SWAKS = "/usr/bin/swaks";
const TLS = { cert_file: tlsFile("server.pem"), key_file: tlsFile("server.key"), flags: ["implicit"] };

/** openssl s_client on `port`: waits for the greeting, then sends `lines`, one per reply; the transcript. */
async function sClient(port: number, lines: string[]): Promise<string> {
  const child = new Deno.Command(OPENSSL, {
    args: [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-CAfile",
      tlsFile("ca.pem"),
      "-verify_return_error",
      "-crlf",
      "-quiet",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const replies = () => out.split("\n").filter((l) => /^\d{3} /.test(l)).length;
  const waitFor = async (n: number) => {
    while (replies() < n) {
      const { value, done } = await reader.read();
      if (done) return;
      out += value;
    }
  };
  await waitFor(1);
  for (const [i, line] of lines.entries()) {
    await writer.write(new TextEncoder().encode(`${line}\n`));
    await waitFor(i + 2);
  }
  await writer.close().catch(() => {});
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  await child.stderr.cancel();
  await child.status;
  return out;
}

Deno.test("smtps with flags = { implicit } speaks TLS before the greeting", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtps_implicit_" });
  const map = `${dir}/auth.txt`;
  await Deno.writeTextFile(map, `alice ${await hashPassword("secret", 1000)}\n`);
  const auth: SmtpsAuthConfig = {
    map_file: map,
    mechanisms: ["plain", "login"],
    trusted_mechs: ["plain", "login"],
    max_failures: 3,
    failure_delay: 20,
    flags: [],
  };
  const s = await startSmtps({ tls: TLS, auth }, {}, { read: [dir] });
  try {
    if (haveTool(OPENSSL)) {
      await t.step("openssl s_client (no -starttls): greeting over TLS, AUTH and no STARTTLS", async () => {
        const out = await sClient(s.port, ["EHLO client.example", "QUIT"]);
        assert.match(out, /^220 mx\.test\.example ESMTP/m, out);
        assert.match(out, /^250[- ]AUTH PLAIN LOGIN$/m, out);
        assert.doesNotMatch(out, /STARTTLS/, out);
        assert.match(out, /^221 /m, out);
      });
      await t.step("STARTTLS inside implicit TLS is refused as TLS already active", async () => {
        const out = await sClient(s.port, ["EHLO client.example", "STARTTLS", "QUIT"]);
        assert.match(out, /^503 5\.5\.1 Error: TLS already active/m, out);
      });
    }
    if (haveTool(SWAKS)) {
      await t.step("swaks --tlsc submits a message with AUTH PLAIN", async () => {
        const o = await new Deno.Command(SWAKS, {
          args: [
            "--tlsc",
            "--server",
            "127.0.0.1",
            "--port",
            String(s.port),
            "--helo",
            "client.example",
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.com",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
            "--timeout",
            "10",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const out = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
        assert.equal(o.code, 0, out);
        assert.match(out, /<~ +235 /, out);
        assert.match(out, /<~ +250 2\.0\.0 Ok: queued as /, out);
        const content = await Deno.readTextFile(s.envelopes.at(-1)!.cdbPath);
        assert.match(content, /\(using TLSv1\.[23] with cipher \S+\)/);
        assert.match(content, / with ESMTPSA id /);
      });
    }
    await t.step("a plaintext client gets no plaintext greeting and is dropped", async () => {
      const c = await RawClient.open(s.port);
      try {
        await c.send("EHLO client.example\r\n");
        assert.ok(await c.closedByServer(), "the server ends the failed handshake");
        assert.doesNotMatch(c.transcript, /220 /);
      } finally {
        await c.close();
      }
    });
    await t.step(
      "clients leaving mid-handshake (FIN, RST, half a record) never hurt the server",
      async () => {
        const leave: [label: string, go: (c: RawClient) => Promise<unknown>][] = [
          ["FIN at once", (c) => c.close()],
          ["RST at once", (c) => c.reset()],
          ["half a TLS record, then FIN", async (c) => {
            await c.send(new Uint8Array([22, 3, 1, 0x40, 0]));
            c.end();
          }],
          ["half a TLS record, then RST", async (c) => {
            await c.send(new Uint8Array([22, 3, 1, 0x40, 0]));
            await c.reset();
          }],
        ];
        for (const [, go] of leave) {
          const c = await RawClient.open(s.port);
          try {
            await go(c);
          } finally {
            await c.close();
          }
        }
        if (haveTool(OPENSSL)) {
          const out = await sClient(s.port, ["EHLO client.example", "QUIT"]);
          assert.match(out, /^221 /m, out);
        }
      },
    );
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the issue's SUBMISSIONS section parses with flags = { implicit }", () => {
  const c = parseConfig(
    `smtps SUBMISSIONS { listen_socket { type = inet; address = 127.0.0.1; port = 465; }
       tls { cert_file = "etc/smtps.pem"; key_file = "etc/smtps.key"; flags = { implicit }; } }`,
    "smx.conf",
  );
  const s = c.smtps.find((x) => x.name === "SUBMISSIONS")!;
  assert.equal((s.listen_socket[0] as { port: number }).port, 465);
  assert.deepEqual(s.tls?.flags, ["implicit"]);
});
