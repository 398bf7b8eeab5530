// Mail operators' own tools read smx's log unchanged: a scripted day (mail delivered over SMTP and LMTP,
// one through an alias, one deferred, one bounced with its DSN, relay attempts and an unknown local user
// refused, AUTH failures) runs through the whole MTA, whose components send their lines to a syslog
// server (TCP, as rsyslog's imtcp takes them) and to their log files. The real pflogsumm (Debian's, with
// --syslog-name=smx) and fail2ban-regex with fail2ban's stock `postfix` filter (its `_daemon` set to
// smx's names) then read that log, and their counts are checked against what the day did.
// Needs the Debian packages pflogsumm and fail2ban (.ci/packages.d/operations.txt): without them the test
// fails in CI and is skipped elsewhere.

import assert from "node:assert/strict";
import { join } from "node:path";
import { hashPassword } from "../components/smtps/password_hash.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { SmtpConnection, smtpSend } from "./helpers/smtp_client.ts";

/** The tool's path in the Debian package that ships it, if it is installed. */
function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const PFLOGSUMM = "/usr/sbin/pflogsumm";
const FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex";
const TOOLS = [PFLOGSUMM, FAIL2BAN_REGEX];
const missing = TOOLS.filter((t) => !installed(t));
const inCi = Deno.env.get("CI") === "true";

/** A syslog server on loopback TCP: one message per line (RFC 6587 non-transparent framing). */
function startSyslogServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lines: string[] = [];
  const conns = new Set<Deno.Conn>();
  const done = (async () => {
    const reads: Promise<void>[] = [];
    for await (const conn of listener) {
      conns.add(conn);
      reads.push((async () => {
        let rest = "";
        const decoder = new TextDecoder();
        try {
          for await (const chunk of conn.readable) {
            rest += decoder.decode(chunk, { stream: true });
            const parts = rest.split("\n");
            rest = parts.pop()!;
            lines.push(...parts);
          }
        } catch { /* closed */ }
        conns.delete(conn);
      })());
    }
    await Promise.all(reads);
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    lines,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* gone */ }
      }
      await done;
    },
  };
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

/** pflogsumm's "Grand Totals" count for `label` (`received`, `delivered`, `deferred`, ...). */
function total(report: string, label: string): number {
  const m = new RegExp(`^\\s*(\\d+)\\s+${label}\\b`, "m").exec(report);
  assert.ok(m, `pflogsumm printed no "${label}" total:\n${report}`);
  return Number(m[1]);
}

/** fail2ban-regex's count of matched lines. */
function matched(output: string): number {
  const m = /^Lines: \d+ lines, \d+ ignored, (\d+) matched/m.exec(output);
  assert.ok(m, output);
  return Number(m[1]);
}

Deno.test({
  name: "pflogsumm and fail2ban's postfix filter count smx's log of a scripted day correctly",
  ignore: missing.length > 0 && !inCi,
  async fn() {
    assert.deepEqual(missing, [], `missing tools (install the Debian packages pflogsumm, fail2ban)`);
    const syslog = startSyslogServer();
    const remote = await startSink({
      rcptReply: (rcpt) =>
        rcpt.startsWith("defer@")
          ? "451 4.2.0 Mailbox busy, try again later"
          : rcpt.startsWith("reject@")
          ? "550 5.1.1 No such mailbox here"
          : "250 2.1.5 Ok",
    });
    const local = await startSink({ lmtp: true });
    const dir = await Deno.makeTempDir({ prefix: "smx-ops-" });
    await Deno.writeTextFile(join(dir, "aliases"), "info: alice\n");
    await Deno.writeTextFile(join(dir, "users"), "alice\npostmaster\n");
    await Deno.writeTextFile(join(dir, "auth.txt"), `carol ${await hashPassword("right", 1000)}\n`);
    const mta = await startTestMta({
      dir,
      mailertable: [
        `example.com\t${remote.port}^esmtp:[127.0.0.1]`,
        `sender.test\t${remote.port}^esmtp:[127.0.0.1]`,
        `local.test\t${local.port}^lmtp:[127.0.0.1]`,
        "",
      ].join("\n"),
      access: "to:@example.com\tRELAY\n",
      adjust(c) {
        c.log = { directory: join(dir, "log"), syslog_server: `tcp:127.0.0.1:${syslog.port}` };
        c.smar.aliases = { name: "aliases", type: "hash", file: join(dir, "aliases") };
        c.smar.alias_flags = ["localpart", "preserve_domain"];
        c.smar.local_user_map = { name: "users", type: "hash", file: join(dir, "users") };
        c.qmgr.retry_min_delay = 3600_000; // one deferral, no retry within the test
        c.qmgr.retry_max_delay = 3600_000;
        c.qmgr.DSN_handling.merge_delay_max = 0; // the bounce leaves at once
        c.smtps[0].auth = {
          map_file: join(dir, "auth.txt"),
          mechanisms: ["plain", "login"],
          trusted_mechs: ["plain", "login"],
          max_failures: 0,
          failure_delay: 1,
          flags: ["allow_plaintext"],
        };
      },
    });
    const b64 = (s: string) => btoa(s);
    const ok = async (c: SmtpConnection, line: string, code: string) => {
      const r = await c.command(line);
      assert.ok(r.startsWith(code), `${line}: ${r}`);
    };
    let logText = "";
    try {
      // Delivered: over SMTP, over SMTP after AUTH, over LMTP through an alias.
      const body = (n: string) => `Message-ID: <${n}@sender.test>\r\nSubject: ${n}\r\n\r\nhello\r\n`;
      assert.match(
        await smtpSend(mta.port, { from: "alice@sender.test", to: ["bob@example.com"], body: body("one") }),
        /^250 /,
      );
      const auth = await SmtpConnection.open(mta.port);
      try {
        await auth.reply();
        await ok(auth, "EHLO client.test", "250");
        // AUTH failures: two PLAIN, one LOGIN; then the right password.
        await ok(auth, `AUTH PLAIN ${b64("\0carol\0wrong")}`, "535");
        await ok(auth, `AUTH PLAIN ${b64("\0carol\0wrong again")}`, "535");
        await ok(auth, "AUTH LOGIN", "334");
        await ok(auth, b64("carol"), "334");
        await ok(auth, b64("nope"), "535");
        await ok(auth, `AUTH PLAIN ${b64("\0carol\0right")}`, "235");
        await ok(auth, "MAIL FROM:<carol@sender.test>", "250");
        await ok(auth, "RCPT TO:<dave@example.com>", "250");
        await ok(auth, "DATA", "354");
        await ok(auth, `${body("two")}.`, "250");
        await ok(auth, "QUIT", "221");
      } finally {
        await auth.close();
      }
      assert.match(
        await smtpSend(mta.port, { from: "alice@sender.test", to: ["info@local.test"], body: body("three") }),
        /^250 /,
      );
      // Deferred and bounced: one message, two recipients the remote server refuses.
      assert.match(
        await smtpSend(mta.port, {
          from: "alice@sender.test",
          to: ["defer@example.com", "reject@example.com"],
          body: body("four"),
        }),
        /^250 /,
      );
      // Rejected: two relay attempts and an unknown local user.
      const spam = await SmtpConnection.open(mta.port);
      try {
        await spam.reply();
        await ok(spam, "EHLO spammer.test", "250");
        await ok(spam, "MAIL FROM:<spammer@spam.test>", "250");
        await ok(spam, "RCPT TO:<victim@elsewhere.test>", "550");
        await ok(spam, "RCPT TO:<other@elsewhere.test>", "550");
        await ok(spam, "RCPT TO:<nobody@local.test>", "550");
        await ok(spam, "QUIT", "221");
      } finally {
        await spam.close();
      }
      // The day is over once every result is logged: 4 sent (the DSN of the bounce too), 1 deferred,
      // 1 bounced, and the messages that are done are removed.
      const status = (s: string) => syslog.lines.filter((l) => l.includes(`, status=${s} (`)).length;
      for (const until = Date.now() + 20_000; Date.now() < until;) {
        if (status("sent") >= 4 && status("deferred") >= 1 && status("bounced") >= 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(
        [status("sent"), status("deferred"), status("bounced")],
        [4, 1, 1],
        syslog.lines.join("\n"),
      );
    } finally {
      await mta.stop();
      await remote.close();
      await local.close();
    }
    try {
      // What the syslog server received, as a syslog daemon writes it to /var/log/mail.log: without <PRI>.
      const pri = /^<(\d+)>/;
      assert.ok(syslog.lines.length > 0, "the syslog server received lines");
      for (const l of syslog.lines) {
        const p = pri.exec(l);
        assert.ok(p, l);
        assert.equal(Number(p[1]) >> 3, 2, `facility mail: ${l}`);
      }
      logText = syslog.lines.map((l) => l.replace(pri, "")).join("\n") + "\n";
      const shape = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d localhost smx\/(smtpd|qmgr|smtpc|smar)\[\d+\]: /;
      for (const l of logText.trimEnd().split("\n")) assert.match(l, shape);
      assert.ok(!/ postfix\//.test(logText), "nothing logged under Postfix's name");
      // The same lines went to the log files.
      const files = await Promise.all(
        ["smtps", "qmgr"].map((n) => Deno.readTextFile(join(dir, "log", `${n}.log`))),
      );
      for (const l of logText.split("\n").filter((l) => / smx\/(smtpd|qmgr)\[/.test(l))) {
        assert.ok(files.some((f) => f.includes(`${l}\n`)), `in a log file: ${l}`);
      }
      // Postfix's lines, as the issue lists them.
      assert.match(
        logText,
        /: [0-9A-F]+: client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=carol\n/,
      );
      assert.match(logText, /: [0-9A-F]+: message-id=<one@sender\.test>\n/);
      assert.match(logText, /: [0-9A-F]+: from=<alice@sender\.test>, size=\d+, nrcpt=2 \(queue active\)\n/);
      assert.match(
        logText,
        /: [0-9A-F]+: to=<alice@local\.test>, orig_to=<info@local\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, delay=[\d.]+, delays=[\d.]+\/[\d.]+\/0\/[\d.]+, dsn=2\.0\.0, status=sent \(/,
      );
      assert.match(logText, /: [0-9A-F]+: removed\n/);
      assert.match(
        logText,
        /: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.7\.1 Relay access denied; from=<spammer@spam\.test> to=<victim@elsewhere\.test> proto=ESMTP helo=<spammer\.test>\n/,
      );
      assert.match(
        logText,
        /: warning: unknown\[127\.0\.0\.1\]: SASL LOGIN authentication failed: authentication failure, sasl_username=carol\n/,
      );
      assert.match(logText, /: connect from unknown\[127\.0\.0\.1\]/);
      assert.match(logText, /: disconnect from unknown\[127\.0\.0\.1\]/);

      const path = join(dir, "mail.log");
      await Deno.writeTextFile(path, logText);
      const report = await run(PFLOGSUMM, ["--syslog-name=smx", "--smtpd-stats", path]);
      const totals: Record<string, number> = {};
      for (const label of ["received", "delivered", "deferred", "bounced", "rejected"]) {
        totals[label] = total(report, label);
      }
      assert.deepEqual(totals, { received: 4, delivered: 4, deferred: 1, bounced: 1, rejected: 3 }, report);
      assert.match(report, /^\s*\d+\s+connections\b/m, report);

      const filter = (mode: string) => `/etc/fail2ban/filter.d/postfix.conf[_daemon=smx/\\w+, mode=${mode}]`;
      // mode "more" (the default jail's): the relay attempts and the unknown user; "auth": the three
      // failed AUTHs; "aggressive": all six.
      assert.equal(matched(await run(FAIL2BAN_REGEX, [path, filter("more")])), 3);
      assert.equal(matched(await run(FAIL2BAN_REGEX, [path, filter("auth")])), 3);
      assert.equal(matched(await run(FAIL2BAN_REGEX, [path, filter("aggressive")])), 6);
    } catch (err) {
      console.log(logText);
      throw err;
    } finally {
      await syslog.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
