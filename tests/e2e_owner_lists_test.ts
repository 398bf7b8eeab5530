// End to end over SMTP, the whole MTA with an aliases map: mail to a list that has an owner- alias is
// delivered to its members with the owner as MAIL FROM, and a member's 550 bounces to the owner (through
// the owner's own alias), not to the sender; and a notice qmgr makes for postmaster is expanded by the
// aliases map and lands in the Maildir of the user postmaster stands for, through the lda.

import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestMta } from "./helpers/mta.ts";
import { freePort } from "./helpers/harness.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

const text = (m: { data: Uint8Array }) => new TextDecoder().decode(m.data);

Deno.test("a list with an owner: members get it from the owner, a member's 550 bounces to the owner", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "e2e_owner_" });
  const sinks: Sink[] = [];
  const sink = async (o: Parameters<typeof startSink>[0] = {}) => {
    const s = await startSink(o);
    sinks.push(s);
    return s;
  };
  try {
    const local = await sink({ lmtp: true });
    const remote = await sink({
      rcptReply: (rcpt) =>
        rcpt.includes("bad@") ? "550 5.1.1 <bad@remote.test>: No such user" : "250 2.1.5 Ok",
    });
    const owners = await sink();
    const senders = await sink();
    await Deno.writeTextFile(
      join(dir, "aliases"),
      "list: alice, bad@remote.test, good@remote.test\nowner-list: boss@owners.test\n",
    );
    await Deno.writeTextFile(join(dir, "users"), "alice\n");
    const mta = await startTestMta({
      dir,
      mailertable: [
        `local.test\t${local.port}^lmtp:[127.0.0.1]`,
        `remote.test\t${remote.port}^esmtp:[127.0.0.1]`,
        `owners.test\t${owners.port}^esmtp:[127.0.0.1]`,
        `sender.test\t${senders.port}^esmtp:[127.0.0.1]`,
        "",
      ].join("\n"),
      adjust(config) {
        config.smar.aliases = { name: "aliases", type: "hash", file: join(dir, "aliases") };
        config.smar.alias_flags = ["localpart", "preserve_domain"];
        config.smar.local_user_map = { name: "users", type: "hash", file: join(dir, "users") };
      },
    });
    try {
      const reply = await smtpSend(mta.port, {
        from: "someone@sender.test",
        to: ["list@local.test"],
        body: "Subject: to the list\r\n\r\nhello list\r\n",
      });
      assert.match(reply, /^250 /);

      await t.step("every member's delivery says MAIL FROM:<owner-list@local.test>", async () => {
        await local.waitFor(1);
        await remote.waitFor(1);
        assert.deepEqual(local.messages.map((m) => [m.sender, m.recipients]), [
          ["owner-list@local.test", ["alice@local.test"]],
        ]);
        assert.deepEqual(remote.messages.map((m) => [m.sender, m.recipients]), [
          ["owner-list@local.test", ["good@remote.test"]],
        ]);
        assert.ok(remote.commands.includes("RCPT TO:<bad@remote.test>"), "the member that bounces was tried");
        assert.ok(!remote.commands.some((c) => /^MAIL FROM:<someone@/i.test(c)), "no member got the sender");
      });
      await t.step("the 550 goes to the owner, expanded by its alias, as a DSN from <>", async () => {
        await owners.waitFor(1);
        const [dsn] = owners.messages;
        assert.equal(dsn.sender, "");
        assert.deepEqual(dsn.recipients, ["boss@owners.test"]);
        assert.match(text(dsn), /\r\nTo: <owner-list@local\.test>\r\n/);
        assert.match(text(dsn), /\r\nFinal-Recipient: rfc822; bad@remote\.test\r\n/);
        assert.match(text(dsn), /\r\nOriginal-Recipient: rfc822; list@local\.test\r\n/);
      });
      await t.step("the same 550 for a recipient that is no list member bounces to the sender", async () => {
        await smtpSend(mta.port, {
          from: "someone@sender.test",
          to: ["bad@remote.test"],
          body: "Subject: x\r\n\r\n",
        });
        await senders.waitFor(1);
        assert.equal(senders.messages.length, 1, "the list's bounce never reached the sender");
        assert.deepEqual(senders.messages[0].recipients, ["someone@sender.test"]);
        assert.equal(owners.messages.length, 1);
      });
    } finally {
      await mta.stop();
    }
  } finally {
    for (const s of sinks) await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function filesIn(dir: string, n: number, ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) names.push(e.name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (names.length >= n) return await Promise.all(names.sort().map((f) => Deno.readTextFile(join(dir, f))));
    if (Date.now() > deadline) throw new Error(`expected ${n} files in ${dir}, found ${names.length}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("a notice to postmaster@localhost is expanded by the aliases map and lands in demo's Maildir", async () => {
  const dir = await Deno.makeTempDir({ prefix: "e2e_postmaster_" });
  const ldaPort = freePort();
  const remote = await startSink({ rcptReply: () => "550 5.1.1 No such user" });
  try {
    await Deno.writeTextFile(join(dir, "local_users"), "demo\t10MB\n");
    await Deno.writeTextFile(join(dir, "aliases"), "postmaster: demo\n");
    const mta = await startTestMta({
      dir,
      mailertable: `localhost\t${ldaPort}^lmtp:[127.0.0.1]\nremote.test\t${remote.port}^esmtp:[127.0.0.1]\n`,
      // The lda knows no postmaster of its own: only the aliases map says who postmaster is.
      configText: `map local_users { type = hash; file = ${JSON.stringify(join(dir, "local_users"))}; }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = ${ldaPort}; }
  mail_root = ${JSON.stringify(join(dir, "var/mail"))};
  local_user_map = local_users;
}
`,
      adjust(config) {
        config.smar.aliases = { name: "aliases", type: "hash", file: join(dir, "aliases") };
      },
    });
    try {
      // Mail from <> that bounces: its failure is reported to postmaster@localhost (a double bounce).
      const reply = await smtpSend(mta.port, {
        from: "",
        to: ["nobody@remote.test"],
        body: "Subject: a bounce that bounces\r\n\r\nx\r\n",
      });
      assert.match(reply, /^250 /);
      const [notice] = await filesIn(join(dir, "var/mail/demo/Maildir/new"), 1);
      assert.match(notice, /\nTo: <postmaster@localhost>\n/);
      assert.match(notice, /\nSubject: Undelivered Mail Returned to Sender\n/);
      assert.match(notice, /\nFinal-Recipient: rfc822; nobody@remote\.test\n/);
    } finally {
      await mta.stop();
    }
  } finally {
    await remote.close();
    await Deno.remove(dir, { recursive: true });
  }
});
