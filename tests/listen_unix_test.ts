// smtps and the lda on unix sockets (`listen_socket { type = unix; path; umask; }`, sendmail X README 3.7):
// the whole MTA with an smtps section listening on a unix socket beside its TCP one, and the lda listening
// for LMTP on another, reached by smtpc through LMTP_socket from the README's mailertable line
// `localhost lmtp:`. A message sent over real SMTP on the unix socket lands in the user's Maildir; the
// sockets have the modes their umasks give; the client counts as 127.0.0.1; a sendmail X process option
// in the configuration is warned about once at start.

import assert from "node:assert/strict";
import { join } from "node:path";
import { log } from "../components/util/log.ts";
import { startTestMta } from "./helpers/mta.ts";
import { SmtpClient } from "./helpers/smtps_dialogue.ts";

async function waitForFiles(dir: string, n: number, ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (names.length >= n) return await Promise.all(names.map((f) => Deno.readTextFile(join(dir, f))));
    if (Date.now() > deadline) throw new Error(`expected ${n} files in ${dir}, found ${names.length}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("smtps and the lda listen on unix sockets: SMTP in on one, LMTP out on the other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-unix-" });
  const q = (s: string) => JSON.stringify(s);
  const smtpsSock = join(dir, "smtps.sock");
  const lmtpSock = join(dir, "lmtp.sock");
  await Deno.writeTextFile(join(dir, "local_users"), "demo\n");
  const lines: string[] = [];
  log.setSink((line) => lines.push(line));
  let mta;
  try {
    mta = await startTestMta({
      dir,
      mailertable: "localhost lmtp:\n", // the README's form: LMTP over smtpc's LMTP_socket
      access: "",
      configText: `map local_users { type = hash; file = ${q(join(dir, "local_users"))}; }
log { directory = ${q(join(dir, "log"))}; ident = smX-mcp; }
smtps LOCAL {
  listen_socket { type = unix; path = ${q(smtpsSock)}; umask = 007; }
  user = smxs;
  log { facility = mail; ident = smX-LOCAL; }
}
smtpc { LMTP_socket = ${q(lmtpSock)}; }
lda {
  listen_socket { type = unix; path = ${q(lmtpSock)}; }
  mail_root = ${q(join(dir, "var/mail"))};
  local_user_map = local_users;
}
`,
    });
  } finally {
    log.setSink(undefined);
  }
  try {
    const smtpsInfo = await Deno.stat(smtpsSock);
    assert.ok(smtpsInfo.isSocket, "smtps listens on its unix socket");
    assert.equal(smtpsInfo.mode! & 0o777, 0o770, "umask 007");
    const lmtpInfo = await Deno.stat(lmtpSock);
    assert.ok(lmtpInfo.isSocket, "the lda listens on its unix socket");
    assert.equal(lmtpInfo.mode! & 0o777, 0o700, "the default umask, 077: only the owner may connect");
    const warned = lines.filter((l) =>
      / smX-mcp\[\d+\]: warning: .*user in smtps LOCAL has no effect: .*Deno permissions/.test(l)
    );
    assert.equal(warned.length, 1, `warned once at start:\n${lines.join("\n")}`);

    const c = await SmtpClient.connectUnix(smtpsSock);
    try {
      const dialogue: [string | null, number][] = [
        [null, 220],
        ["EHLO client.test", 250],
        ["MAIL FROM:<someone@remote.test>", 250],
        ["RCPT TO:<nobody@localhost>", 550],
        ["RCPT TO:<demo@localhost>", 250],
        ["DATA", 354],
        ["Subject: over a unix socket\r\n\r\nHello.\r\n.", 250],
        ["QUIT", 221],
      ];
      for (const [line, code] of dialogue) {
        if (line !== null) await c.send(`${line}\r\n`);
        const reply = await c.reply(10_000);
        assert.equal(reply.code, code, `${line}: ${reply.lines.join(" | ")}`);
      }
    } finally {
      c.close();
    }
    const [text] = await waitForFiles(join(dir, "var/mail/demo/Maildir/new"), 1);
    assert.match(text, /^Return-Path: <someone@remote\.test>\n/);
    assert.match(
      text,
      /\nReceived: from client\.test \(.*\[127\.0\.0\.1\]\)/,
      "the client counts as 127.0.0.1",
    );
    assert.match(text, /\nSubject: over a unix socket\n\nHello\.\n$/);
    // The log ident names the component in its lines (README 3.4).
    const smtpsLog = await Deno.readTextFile(join(dir, "log/smtps.log"));
    assert.match(smtpsLog, / smX-LOCAL\[\d+\]: LOCAL \(id 0\): listening on unix:/);
    assert.match(smtpsLog, / smX-LOCAL\[\d+\]: connect from \S*\[127\.0\.0\.1\]/);
    assert.doesNotMatch(smtpsLog, / smx\/smtpd\[/, "no line under the default ident");
  } finally {
    await mta.stop();
  }
  // A stop leaves no socket file that a restart could not replace.
  for (const path of [smtpsSock, lmtpSock]) {
    try {
      const info = await Deno.lstat(path);
      assert.ok(info.isSocket);
    } catch (err) {
      assert.ok(err instanceof Deno.errors.NotFound);
    }
  }
});
