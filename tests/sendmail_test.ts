// The `sendmail` command for local programs (scripts/sendmail.ts, installed through scripts/sendmail.sh):
// its command line and -t header parsing, then the real MTA: `echo test | mail -s hi user@example.org`
// with Debian's bsd-mailx (which runs `sendmail -i -t`) pointed at the wrapper, cron's invocation
// (`-FCronDaemon -i -B8BITMIME -oem rcpt`), PHP mail()'s (`-t -i`, with Cc: and Bcc:), -bs (SMTP on
// stdin/stdout), sendmail's exit codes: 75 when smx is down, 67 for a refused recipient, 64 for usage.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  addressList,
  EX,
  headerRecipients,
  type Invocation,
  parseArgs,
  prepareMessage,
  readMessage,
  submit,
} from "../scripts/sendmail.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { haveTool } from "./helpers/tools.ts";

const WRAPPER = "scripts/sendmail.sh";
const MAIL = "/usr/bin/mail";
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const streamOf = (s: string) => new Blob([s]).stream();

Deno.test("sendmail parses its command line as sendmail 8 does", () => {
  const a = parseArgs(["--smx-server=127.0.0.1:2525", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]);
  assert.equal(a.server, "127.0.0.1:2525");
  assert.equal(a.fullName, "CronDaemon");
  assert.equal(a.ignoreDots, true);
  assert.deepEqual(a.recipients, ["root"]);
  const b = parseArgs(["-t", "-oi", "-f", "www@example.net", "-F", "Web Site", "--", "-odd@example.org"]);
  assert.equal(b.fromHeaders, true);
  assert.equal(b.sender, "www@example.net");
  assert.equal(b.fullName, "Web Site");
  assert.deepEqual(b.recipients, ["-odd@example.org"]);
  assert.equal(parseArgs(["-rbounce@example.net", "-bs"]).mode, "smtp");
  assert.equal(parseArgs(["-rbounce@example.net"]).sender, "bounce@example.net");
  assert.throws(() => parseArgs(["-q"]), /illegal option -q/);
  assert.throws(() => parseArgs(["-bp"]), /not supported/);
  assert.throws(() => parseArgs(["-f"]), /requires an argument/);
});

Deno.test("sendmail -t finds the recipients in To:, Cc: and Bcc: and removes Bcc:", () => {
  assert.deepEqual(
    addressList(`"Doe, Jane" <jane@example.org>, bob@example.org (Bob), team: a@x.test, b@x.test;`),
    ["jane@example.org", "bob@example.org", "a@x.test", "b@x.test"],
  );
  const headers = ["To: a@example.org,", " B <b@example.org>", "Cc: c@example.org", "Bcc: d@example.org"];
  assert.deepEqual(headerRecipients(headers), [
    "a@example.org",
    "b@example.org",
    "c@example.org",
    "d@example.org",
  ]);
  assert.deepEqual(headerRecipients(["To: a@example.org", "Resent-To: r@example.org"]), ["r@example.org"]);
  const inv: Invocation = { ...parseArgs(["-t", "-F", "Web"]), domain: "example.net" };
  const out = prepareMessage(
    "To: a@example.org\nBcc: secret@example.org,\n  more@example.org\nSubject: s\n\n.dot\n",
    inv,
    "www@example.net",
    new Date(Date.UTC(2026, 11, 4, 20, 0, 0)),
  );
  assert.deepEqual(out.recipients, ["a@example.org", "secret@example.org", "more@example.org"]);
  assert.deepEqual(out.lines, [
    "To: a@example.org",
    "Subject: s",
    `From: "Web" <www@example.net>`,
    "Date: Fri, 04 Dec 2026 20:00:00 +0000",
    "",
    ".dot",
  ]);
  assert.deepEqual(prepareMessage("just a body\n", parseArgs(["root"]), "x@y").lines.slice(-2), [
    "",
    "just a body",
  ]);
});

Deno.test("sendmail without -i ends the message at a line with a single dot", async () => {
  assert.equal(await readMessage(streamOf("a\n.\nafter\n"), false), "a\n");
  assert.equal(await readMessage(streamOf("a\n.\nafter\n"), true), "a\n.\nafter\n");
  assert.equal(await readMessage(streamOf("a\n..\n"), false), "a\n..\n");
});

/** Runs `cmd` with `stdin`; the wrapper finds smx at `port` and uses this Deno. */
async function run(cmd: string, args: string[], stdin: string, env: Record<string, string>) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { DENO: Deno.execPath(), SMX_DOMAIN: "example.net", ...env },
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const o = await child.output();
  return { code: o.code, out: text(o.stdout), err: text(o.stderr) };
}

Deno.test("sendmail submits through the real MTA: mail(1), cron, PHP mail(), -bs, exit codes", async (t) => {
  const sink = await startSink();
  const mta = await startTestMta({
    mailertable: `example.org\t${sink.port}^esmtp:[127.0.0.1]\nexample.net\t${sink.port}^esmtp:[127.0.0.1]\n`,
  });
  const dir = await Deno.makeTempDir({ prefix: "sendmail_" });
  const env = { SMX_SUBMIT: `127.0.0.1:${mta.port}` };
  const arrived = async (n: number) => {
    for (let i = 0; i < 400 && sink.messages.length < n; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(sink.messages.length, n, "the message reached the sink");
    return sink.messages[n - 1];
  };
  try {
    if (haveTool(MAIL)) {
      await t.step("echo test | mail -s hi user@example.org (bsd-mailx) is delivered", async () => {
        await Deno.writeTextFile(join(dir, "mailrc"), `set sendmail=${Deno.cwd()}/${WRAPPER}\n`);
        const r = await run(MAIL, ["-s", "hi", "user@example.org"], "test\n", {
          ...env,
          MAILRC: join(dir, "mailrc"),
          HOME: dir,
        });
        assert.equal(r.code, 0, r.err);
        const m = await arrived(1);
        assert.deepEqual(m.recipients, ["user@example.org"]);
        assert.match(m.sender, /@example\.net$/);
        const data = text(m.data);
        assert.match(data, /^Subject: hi\r$/m);
        assert.match(data, /^From: \S+@example\.net\r$/m);
        assert.match(data, /\r\n\r\ntest\r\n$/);
      });
    }
    await t.step("cron's invocation: -FCronDaemon -i -B8BITMIME -oem rcpt", async () => {
      const job = "From: root (Cron Daemon)\nTo: root@example.org\nSubject: Cron <root@host> run-parts\n" +
        "Content-Type: text/plain; charset=UTF-8\n\nline one\n.\nläst line\n";
      const before = sink.messages.length;
      const r = await run(
        WRAPPER,
        ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root@example.org"],
        job,
        env,
      );
      assert.equal(r.code, 0, r.err);
      const m = await arrived(before + 1);
      assert.deepEqual(m.recipients, ["root@example.org"]);
      assert.match(text(m.data), /^From: root \(Cron Daemon\)\r$/m);
      assert.match(text(m.data), /\r\nline one\r\n\.\r\nläst line\r\n$/, "-i keeps the lone dot");
    });
    await t.step("PHP mail()'s invocation: -t -i, Bcc: used and removed", async () => {
      const msg = "To: a@example.org\nCc: B <b@example.org>\nBcc: c@example.org\nFrom: www@example.net\n" +
        "Subject: php\n\nhello\n";
      const before = sink.messages.length;
      const r = await run(WRAPPER, ["-t", "-i", "-fwww@example.net"], msg, env);
      assert.equal(r.code, 0, r.err);
      const m = await arrived(before + 1);
      assert.equal(m.sender, "www@example.net");
      assert.deepEqual([...m.recipients].sort(), ["a@example.org", "b@example.org", "c@example.org"]);
      assert.doesNotMatch(text(m.data), /^Bcc:/im);
    });
    await t.step("-bs speaks SMTP on stdin/stdout", async () => {
      const before = sink.messages.length;
      const child = new Deno.Command(WRAPPER, {
        args: ["-bs"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: { DENO: Deno.execPath(), ...env },
      }).spawn();
      const w = child.stdin.getWriter();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let out = "";
      const reply = async (code: number) => {
        while (!new RegExp(`(^|\n)${code} [^\n]*\n`).test(out)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`no ${code} in ${out}`);
          out += value;
        }
        out = "";
      };
      const say = (line: string) => w.write(new TextEncoder().encode(`${line}\r\n`));
      await reply(220);
      for (
        const [line, code] of [
          ["EHLO local", 250],
          ["MAIL FROM:<x@example.net>", 250],
          ["RCPT TO:<bs@example.org>", 250],
          ["DATA", 354],
          ["Subject: bs\r\n\r\nvia -bs\r\n.", 250],
          ["QUIT", 221],
        ] as const
      ) {
        await say(line);
        await reply(code);
      }
      await w.close();
      for (;;) if ((await reader.read()).done) break;
      await child.stderr.cancel();
      assert.equal((await child.status).code, 0);
      const m = await arrived(before + 1);
      assert.deepEqual(m.recipients, ["bs@example.org"]);
    });
    await t.step("no recipients is EX_USAGE (64)", async () => {
      const r = await run(WRAPPER, [], "x\n", env);
      assert.equal(r.code, EX.USAGE, r.err);
      const t2 = await run(WRAPPER, ["-t"], "Subject: nobody\n\nx\n", env);
      assert.equal(t2.code, EX.USAGE, t2.err);
    });
    await t.step("smx down: EX_TEMPFAIL (75)", async () => {
      const r = await run(WRAPPER, ["user@example.org"], "x\n", { SMX_SUBMIT: `127.0.0.1:${freePort()}` });
      assert.equal(r.code, EX.TEMPFAIL, r.err);
      assert.match(r.err, /cannot connect to smx/);
    });
  } finally {
    await mta.stop();
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sendmail exits EX_NOUSER (67) for a refused recipient, EX_TEMPFAIL for a 4xx", async () => {
  const sink = await startSink({
    rcptReply: (r) =>
      r.startsWith("nobody")
        ? "550 5.1.1 No such user"
        : r.startsWith("later")
        ? "451 4.3.0 Later"
        : "250 2.1.5 Ok",
  });
  try {
    const inv = (rcpts: string[]) => ({
      ...parseArgs(rcpts),
      server: `127.0.0.1:${sink.port}`,
      domain: "example.net",
    });
    const logged: string[] = [];
    assert.equal(await submit(inv(["nobody@example.org"]), "x\n", (s) => logged.push(s)), EX.NOUSER);
    assert.match(logged[0], /<nobody@example\.org>: 550 5\.1\.1 No such user/);
    assert.equal(await submit(inv(["later@example.org"]), "x\n", () => {}), EX.TEMPFAIL);
    assert.equal(await submit(inv(["ok@example.org", "nobody@example.org"]), "x\n", () => {}), EX.NOUSER);
    assert.equal(sink.messages.length, 1, "the accepted recipient got the message");
    assert.equal(await submit(inv(["ok@example.org"]), "x\n", () => {}), EX.OK);
  } finally {
    await sink.close();
  }
});
