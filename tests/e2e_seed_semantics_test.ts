// The sendmail X README's own example maps, loaded verbatim into the whole MTA and exercised over SMTP:
// each line gets the reply the README implies. The access map examples of 3.9.3.1 (`@domain` exact,
// `@.domain` subdomains, bare local parts `to:root` and `to:abuse`, quick:, cltname:, cltresolve:), the
// mailertable of 3.9.3.2 with its `.` default entry (which makes every sender domain routable, MAIL
// check 1), the aliases of 3.9.3.3 and 4.3.2 (angle-bracket lists, `local:`, owner- lists, no
// local_user_map: the aliases map lists the valid local addresses, for senders too) and the protected
// list of 3.10.2 (`list:<alias>` lets the list's own members post). A few lines of our own pin what
// the README says in prose: reject, discard per stage, cont, delay_checks, soft_bounce. Three smtps
// servers: `access`; `access, delay_checks`; `access, soft_bounce`. Clients connect from 127.0.0.2 and
// up (127.0.0.7 has the PTR name spammer.domain, 127.0.0.8 a PTR lookup that fails).

import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestMta, type TestMta } from "./helpers/mta.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { SmtpConnection, smtpSend } from "./helpers/smtp_client.ts";
import { type DnsServer, startDnsServer } from "./helpers/dns_server.ts";

/** README 3.9.3.1 "Examples", verbatim but for its second `cltaddr:10` line (a duplicate key). */
const README_ACCESS = `
cltresolve:tempptr error:451 4.7.1 reverse lookup failed
mxbadip:127.0.0.1 error:551 5.7.1 Bad IP address 127.0.0.1 in MX/A list
mxbadip:192.168.255.255 error:551 5.7.1 Bad IP address 192.168.255.255 in MX/A list
from:@spammer.domain error:551 5.7.1 No spammers
from:@.spammer.domain error:551 5.7.1 No spammers in subdomains either
to:root error:551 5.7.1 No mail to root
to:abuse quick:ok
cltaddr:10 error:551 5.7.1 No direct mail from 10.x.y.z
cltname:spammer.domain quick:error:551 5.7.1 No mail from spammers
to:@primary.domain relay
cltaddr:127.0.0.1 quick:relay
`;
/** README 3.10.2, verbatim. */
const README_PROTECTED = `
protectedrcpt:list1@local.dom list:<list1@local.dom>
protectedrcpt:list3 from:<moderator3@local.dom> cltaddr:1.2.3.4 cltaddr:10
`;
/** Ours: what the README says in prose (3.9.3.1 RHS values, "Discard", quick:). */
const OUR_ACCESS = `
to:blocked reject
to:okonly ok
to:trap@local.host discard
to:pit@local.host quick:discard
from:friend@spammer.domain cont
from:@quick.test quick:error:550 5.7.1 Go away now
`;

/** README 3.9.3.3, 4.3.2 and 3.10.2, verbatim; then two local users of ours the examples presume. */
const README_ALIASES = `
myalias: localuser
mylist: <user1@my.dom> <user2@my.dom> <localuser@local.host>
owner-mylist: someuser
postmaster: <user@host.domain>
abuse: user+abuse
user++: local:
user: local:
list1: <user1-1@l1-1.dom> <user2-1@l1-1.dom> <list2@local.dom>
list2: <user1-2@l2-1.dom> <user2-2@l2-2.dom>
list3: <user1-3@l3-1.dom> <user2-3@l3-2.dom>
moderator3: local:
localuser: local:
`;

interface World {
  mta: TestMta;
  lmtp: Sink;
  smtp: Sink;
  dns: DnsServer;
  ports: { delay: number; soft: number };
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seed_semantics_" });
  const lmtp = await startSink({ lmtp: true });
  const smtp = await startSink();
  const dns = await startDnsServer([
    { name: "7.0.0.127.in-addr.arpa", type: "PTR", data: "spammer.domain" },
    { name: "spammer.domain", type: "A", data: "127.0.0.7" },
  ], { servfail: ["8.0.0.127.in-addr.arpa"] });
  const ports = { delay: freePort(), soft: freePort() };
  try {
    await Deno.writeTextFile(join(dir, "aliases"), README_ALIASES);
    const server = (name: string, port: number, flags: string) =>
      `smtps ${name} {\n  listen_socket { type = inet; address = 127.0.0.1; port = ${port}; }\n  flags = { ${flags} };\n}\n`;
    const local = `${lmtp.port}^lmtp:[127.0.0.1]`;
    const remote = `${smtp.port}^esmtp:[127.0.0.1]`;
    const mta = await startTestMta({
      dir,
      access: README_ACCESS + README_PROTECTED + OUR_ACCESS,
      // README 3.9.3.2's default entries verbatim; our local and remote domains go to the sinks.
      mailertable: [
        `local.host ${local}`,
        `local.dom ${local}`,
        `my.dom ${local}`,
        `primary.domain ${remote}`,
        `host.domain ${remote}`,
        ".TLD esmtp:GATE.WAY",
        ". esmtp:SMART.HOST",
        "",
      ].join("\n"),
      nameservers: [dns.address],
      configText: server("DELAY", ports.delay, "access, delay_checks") +
        server("SOFT", ports.soft, "access, soft_bounce"),
      adjust(config) {
        config.hostname = "local.host";
        config.smtps[0].flags = ["access"];
        config.smar.aliases = { name: "aliases", type: "hash", file: join(dir, "aliases") };
        config.smar.alias_flags = ["localpart"];
        config.smar.protected_recipients = {
          allow_by: ["sender", "client_ip"],
          match_type: ["generic_lookup"],
        };
      },
    });
    try {
      await fn({ mta, lmtp, smtp, dns, ports });
    } finally {
      await mta.stop();
    }
  } finally {
    await lmtp.close();
    await smtp.close();
    await dns.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens a session from `from` on `port` and greets; MAIL FROM too unless `sender` is undefined. */
async function session(port: number, from: string, sender?: string): Promise<SmtpConnection> {
  const c = await SmtpConnection.open(port, { localAddress: from });
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.command("EHLO client.test"), /^250/);
  if (sender !== undefined) {
    assert.match(await c.command(`MAIL FROM:<${sender}>`), /^250 /, `MAIL FROM:<${sender}>`);
  }
  return c;
}

/** Sends each command in turn and compares each reply's start with what is expected. */
async function expectReplies(c: SmtpConnection, steps: [string, string][]): Promise<void> {
  try {
    for (const [command, want] of steps) {
      const reply = await c.command(command);
      assert.equal(reply.slice(0, want.length), want, `${command} -> ${reply}`);
    }
  } finally {
    await c.close();
  }
}

/** The greeting a client from `from` gets on `port`. */
async function greeting(port: number, from: string): Promise<string> {
  const c = await SmtpConnection.open(port, { localAddress: from });
  try {
    return await c.reply();
  } finally {
    await c.close();
  }
}

const subjectOf = (data: Uint8Array) => /Subject: (.*)\r\n/.exec(new TextDecoder().decode(data))?.[1];

Deno.test("the README's access map, aliases, mailertable and protected list mean what the README says", async (t) => {
  await withWorld(async (w) => {
    const port = w.mta.port;

    await t.step("@domain matches exactly, @.domain subdomains; cont stops the lookup", async () => {
      await expectReplies(await session(port, "127.0.0.2"), [
        ["MAIL FROM:<x@spammer.domain>", "551 5.7.1 No spammers"],
        ["MAIL FROM:<x@mail.spammer.domain>", "551 5.7.1 No spammers in subdomains either"],
        ["MAIL FROM:<friend@spammer.domain>", "250 2.1.0"],
        ["RSET", "250"],
        ["MAIL FROM:<x@spammer.domain.example>", "250 2.1.0"],
      ]);
    });

    await t.step("the mailertable's . entry makes any sender domain routable (no 553 5.1.8)", async () => {
      await expectReplies(await session(port, "127.0.0.2"), [["MAIL FROM:<x@any.domain>", "250 2.1.0"]]);
    });

    await t.step("bare local parts match at every domain; to:@primary.domain relays", async () => {
      await expectReplies(await session(port, "127.0.0.2", "s@sender.test"), [
        ["RCPT TO:<root@local.host>", "551 5.7.1 No mail to root"],
        ["RCPT TO:<root@my.dom>", "551 5.7.1 No mail to root"],
        ["RCPT TO:<root@primary.domain>", "250 2.1.5"], // @primary.domain comes first (README 3.12.1)
        ["RCPT TO:<u@primary.domain>", "250 2.1.5"],
        ["RCPT TO:<u@sub.primary.domain>", "550 5.7.1 Relay access denied"],
        ["RCPT TO:<blocked@local.host>", "550 5.7.0 Rejected."],
        ["RCPT TO:<abuse@local.host>", "250 2.1.5"],
      ]);
    });

    await t.step("cltname: quick:error and cltresolve:tempptr refuse at connect (as 554 / 421)", async () => {
      // Before the greeting only 554 and 421 may be sent (RFC 5321 3.1): the code changes, the text not.
      assert.equal(await greeting(port, "127.0.0.7"), "554 5.7.1 No mail from spammers");
      assert.equal(await greeting(port, "127.0.0.8"), "421 4.7.1 reverse lookup failed");
    });

    await t.step("delay_checks: held until RCPT, lifted only by to: quick:ok", async () => {
      await expectReplies(await session(w.ports.delay, "127.0.0.2", "x@spammer.domain"), [
        ["RCPT TO:<user@local.host>", "551 5.7.1 No spammers"],
        ["RCPT TO:<u@primary.domain>", "551 5.7.1 No spammers"],
        ["RCPT TO:<okonly@local.host>", "551 5.7.1 No spammers"],
        ["RCPT TO:<abuse@local.host>", "250 2.1.5"],
      ]);
      await expectReplies(await session(w.ports.delay, "127.0.0.8", "s@sender.test"), [
        ["RCPT TO:<user@local.host>", "451 4.7.1 reverse lookup failed"],
        ["RCPT TO:<abuse@local.host>", "250 2.1.5"],
      ]);
    });

    await t.step("delay_checks: a quick:error refuses at once, at connect and at MAIL", async () => {
      assert.equal(await greeting(w.ports.delay, "127.0.0.7"), "554 5.7.1 No mail from spammers");
      await expectReplies(await session(w.ports.delay, "127.0.0.2"), [
        ["MAIL FROM:<x@quick.test>", "550 5.7.1 Go away now"],
      ]);
    });

    await t.step("soft_bounce: 5yz refusals become 4yz, protocol errors stay", async () => {
      await expectReplies(await session(w.ports.soft, "127.0.0.2"), [
        ["MAIL FROM:<x@spammer.domain>", "451 4.7.1 No spammers"],
        ["BOGUS", "500 5.5.1"],
        ["RCPT TO:<root@local.host>", "503 5.5.1"],
        ["MAIL FROM:<s@sender.test>", "250 2.1.0"],
        ["RCPT TO:<root@local.host>", "451 4.7.1 No mail to root"],
        ["RCPT TO:<blocked@local.host>", "450 4.7.0 Rejected."],
        ["RCPT TO:<nobody@local.host>", "450 4.1.1"],
      ]);
    });

    await t.step("local addresses are the aliases map's, for recipients and senders", async () => {
      await expectReplies(await session(port, "127.0.0.2"), [
        ["MAIL FROM:<nobody@local.host>", "553 5.1.0"],
        ["MAIL FROM:<user+x@local.host>", "250 2.1.0"],
        ["RCPT TO:<nobody@local.host>", "550 5.1.1"],
        ["RCPT TO:<user@local.host>", "250 2.1.5"],
        ["RCPT TO:<user+anything@local.host>", "250 2.1.5"],
        ["RCPT TO:<postmaster@local.host>", "250 2.1.5"],
      ]);
    });

    await t.step("alias right-hand sides: <a> <b> lists, bare names, local:, owner-", async () => {
      const lmtpBefore = w.lmtp.count;
      const smtpBefore = w.smtp.count;
      const send = (to: string[], subject: string) =>
        smtpSend(port, { from: "s@sender.test", to, body: `Subject: ${subject}\r\n\r\nhi\r\n` }, {
          localAddress: "127.0.0.2",
        });
      assert.match(await send(["mylist@local.host"], "list"), /^250 /);
      assert.match(
        await send(["user@local.host", "abuse@local.host", "myalias@local.host"], "users"),
        /^250 /,
      );
      assert.match(await send(["postmaster@local.host"], "postmaster"), /^250 /);
      await w.lmtp.waitFor(lmtpBefore + 2, 15_000);
      await w.smtp.waitFor(smtpBefore + 1, 15_000);
      const got = w.lmtp.messages.slice(lmtpBefore).map((m) => ({
        subject: subjectOf(m.data),
        sender: m.sender,
        recipients: m.recipients.toSorted(),
      })).sort((a, b) => (a.subject ?? "").localeCompare(b.subject ?? ""));
      assert.deepEqual(got, [
        {
          subject: "list",
          sender: "owner-mylist@local.host",
          recipients: ["localuser@local.host", "user1@my.dom", "user2@my.dom"],
        },
        {
          subject: "users",
          sender: "s@sender.test",
          recipients: ["localuser@local.host", "user+abuse@local.host", "user@local.host"],
        },
      ]);
      assert.deepEqual(w.smtp.messages.slice(smtpBefore).map((m) => m.recipients), [["user@host.domain"]]);
    });

    await t.step("discard drops one recipient; with none left or quick:discard, the message", async () => {
      const before = w.lmtp.count;
      const send = (to: string[], subject: string) =>
        smtpSend(port, { from: "s@sender.test", to, body: `Subject: ${subject}\r\n\r\nhi\r\n` }, {
          localAddress: "127.0.0.2",
        });
      assert.match(await send(["trap@local.host", "user@local.host"], "one dropped"), /^250 /);
      assert.match(await send(["trap@local.host"], "all dropped"), /^250 /);
      assert.match(await send(["pit@local.host", "user@local.host"], "quick:discard"), /^250 /);
      assert.match(await send(["user@local.host"], "last"), /^250 /);
      await w.lmtp.waitFor(before + 2, 15_000);
      // The last message is delivered after the others were dropped or delivered: nothing else comes.
      const got = w.lmtp.messages.slice(before).map((m) => `${subjectOf(m.data)}: ${m.recipients.join(" ")}`);
      assert.deepEqual(got.sort(), ["last: user@local.host", "one dropped: user@local.host"]);
    });

    await t.step("protectedrcpt: list:<list1@local.dom> lets only list1's own members post", async () => {
      await expectReplies(await session(port, "127.0.0.2", "user1-1@l1-1.dom"), [
        ["RCPT TO:<list1@local.dom>", "250 2.1.5"],
        ["RSET", "250"],
        ["MAIL FROM:<user2-1@l1-1.dom>", "250"],
        ["RCPT TO:<list1@local.dom>", "250 2.1.5"],
        ["RSET", "250"],
        ["MAIL FROM:<user1-2@l2-1.dom>", "250"],
        ["RCPT TO:<list1@local.dom>", "550 5.7.1"],
        ["RCPT TO:<list3@local.dom>", "550 5.7.1"],
        ["RSET", "250"],
        ["MAIL FROM:<moderator3@local.dom>", "250"],
        ["RCPT TO:<list3@local.dom>", "250 2.1.5"],
        ["RCPT TO:<list1@local.dom>", "550 5.7.1"],
      ]);
    });
  });
});
