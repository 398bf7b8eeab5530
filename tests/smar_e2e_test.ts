// End to end over SMTP: the whole MTA with smar's maps (access map, aliases, local users, greylisting),
// four smtps servers with different flags, an in-test DNS server, and LMTP/SMTP sinks. Clients connect
// from 127.0.0.2 and up, which the access map does not let relay. Every address form that would smuggle
// a relay is refused; aliases are expanded before routing; DNSBL refuses at connect (or at RCPT with
// delay_checks); greylisting answers 421 at RCPT or at DATA; discard accepts and delivers nothing.

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startTestMta, type TestMta } from "./helpers/mta.ts";
import { type Sink, startSink } from "./helpers/smtp_sink.ts";
import { freePort } from "./helpers/harness.ts";
import { SmtpConnection, smtpSend } from "./helpers/smtp_client.ts";
import { type DnsServer, startDnsServer } from "./helpers/dns_server.ts";

interface World {
  mta: TestMta;
  lmtp: Sink;
  smtp: Sink;
  dns: DnsServer;
  ports: { delay: number; grey: number; greyData: number };
}

const ACCESS = `
cltaddr:127.0.0.1	relay
to:@relayed.test	relay
to:postmaster@local.test	quick:ok
from:bulk@sender.test	discard
bl:127.0.0.2	error:554 5.7.1 Listed by bl.test
protectedrcpt:all@local.test	from:boss@sender.test
`;
const ALIASES = `
postmaster: alice
team: alice, bob, friend@remote.test
all: alice, bob
`;

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smar_e2e_" });
  const lmtp = await startSink({ lmtp: true });
  const smtp = await startSink();
  const dns = await startDnsServer([
    { name: "sender.test", type: "A", data: "192.0.2.1" },
    { name: "9.0.0.127.bl.test", type: "A", data: "127.0.0.2" },
    { name: "bl.test", type: "A", data: "192.0.2.2" },
  ], { servfail: ["broken.test"] });
  const ports = { delay: freePort(), grey: freePort(), greyData: freePort() };
  const grey = join(dir, "grey.db");
  try {
    await Deno.writeTextFile(join(dir, "aliases"), ALIASES);
    await Deno.writeTextFile(join(dir, "users"), "alice\nbob\n");
    whiteEntry(grey, "127.0.0.5/32");
    const server = (name: string, port: number, flags: string) =>
      `smtps ${name} {\n  listen_socket { type = inet; address = 127.0.0.1; port = ${port}; }\n  flags = { ${flags} };\n}\n`;
    const mta = await startTestMta({
      dir,
      access: ACCESS,
      mailertable: [
        `local.test\t${lmtp.port}^lmtp:[127.0.0.1]`,
        `remote.test\t${smtp.port}^esmtp:[127.0.0.1]`,
        `relayed.test\t${smtp.port}^esmtp:[127.0.0.1]`,
        "",
      ].join("\n"),
      nameservers: [dns.address],
      configText: server("DELAY", ports.delay, "access, delay_checks") +
        server("GREY", ports.grey, "greylisting") +
        server("GREYDATA", ports.greyData, "greylisting, delay_greylisting_error_until_DATA"),
      adjust(config) {
        config.smtps[0].flags = ["8bitmime", "access"];
        config.smar.aliases = { name: "aliases", type: "hash", file: join(dir, "aliases") };
        config.smar.alias_flags = ["localpart", "preserve_domain"];
        config.smar.local_user_map = { name: "users", type: "hash", file: join(dir, "users") };
        config.smar.dnsbl = [{ domain: "bl.test", tag: "bl" }];
        config.smar.greylisting = {
          grey_wait: 3_600_000,
          grey_expire: 86_400_000,
          white_expire: 86_400_000,
          white_timeout: 3_600_000,
          main_DB_name: grey,
          expire_limit: 100,
          netmask: 32,
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

/** A white greylisting entry for `key`, written before the MTA starts. */
function whiteEntry(file: string, key: string): void {
  const db = new DatabaseSync(file);
  try {
    db.exec(`CREATE TABLE grey (key TEXT PRIMARY KEY, state INTEGER NOT NULL, first INTEGER NOT NULL,
      last INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID`);
    const now = Date.now();
    db.prepare("INSERT INTO grey VALUES (?, 1, ?, ?, ?)").run(key, now - 7_200_000, now, now + 86_400_000);
  } finally {
    db.close();
  }
}

/** Opens a session from `from` on `port`, greets, says MAIL FROM, and returns the connection. */
async function session(port: number, from: string, sender = "s@sender.test"): Promise<SmtpConnection> {
  const c = await SmtpConnection.open(port, { localAddress: from });
  assert.match(await c.reply(), /^220 /);
  assert.match(await c.command("EHLO client.test"), /^250/);
  if (sender !== "-") {
    assert.match(await c.command(`MAIL FROM:<${sender}>`), /^250 /, `MAIL FROM:<${sender}>`);
  }
  return c;
}

const code = (reply: string) => reply.slice(0, 9);

Deno.test("smar end to end: relaying, aliases, local users, sender checks, DNSBL, greylisting, discard", async (t) => {
  await withWorld(async (w) => {
    await t.step(
      "every address form that would smuggle a relay is refused from a non-relay client",
      async () => {
        const c = await session(w.mta.port, "127.0.0.2");
        try {
          const cases: [string, string][] = [
            ["u@remote.test", "550 5.7.1"],
            ["u%remote.test@local.test", "550 5.7.1"],
            ["remote.test!u@local.test", "550 5.7.1"],
            ['"u@remote.test"@local.test', "550 5.7.1"],
            ["@local.test:u@remote.test", "550 5.7.1"],
            ["u@remote.test@local.test", "501 5.1.3"],
            ["remote.test!u", "501 5.1.3"],
            ["u@[192.0.2.1]", "550 5.7.1"],
          ];
          for (const [rcpt, want] of cases) {
            assert.equal(code(await c.command(`RCPT TO:<${rcpt}>`)), want, rcpt);
          }
        } finally {
          await c.close();
        }
      },
    );

    await t.step("local users, to: relay and unknown users from a non-relay client", async () => {
      const c = await session(w.mta.port, "127.0.0.2");
      try {
        assert.equal(code(await c.command("RCPT TO:<alice@local.test>")), "250 2.1.5");
        assert.equal(code(await c.command("RCPT TO:<alice+news@local.test>")), "250 2.1.5");
        assert.equal(code(await c.command("RCPT TO:<u@relayed.test>")), "250 2.1.5");
        assert.match(await c.command("RCPT TO:<carol@local.test>"), /^550 5\.1\.1 .*User unknown/);
        assert.equal(code(await c.command("RCPT TO:<all@local.test>")), "550 5.7.1", "a protected recipient");
      } finally {
        await c.close();
      }
    });

    await t.step("a relay client may send anywhere, even u%ext@us", async () => {
      const c = await session(w.mta.port, "127.0.0.1");
      try {
        assert.equal(code(await c.command("RCPT TO:<u%x.test@remote.test>")), "250 2.1.5");
      } finally {
        await c.close();
      }
    });

    await t.step("aliases are expanded at RCPT and delivered to the final addresses", async () => {
      const reply = await smtpSend(w.mta.port, {
        from: "s@sender.test",
        to: ["postmaster@local.test", "team@local.test"],
        body: "Subject: aliases\r\n\r\nhello\r\n",
      }, { localAddress: "127.0.0.2" });
      assert.match(reply, /^250 /);
      await w.lmtp.waitFor(1, 15_000);
      await w.smtp.waitFor(1, 15_000);
      assert.deepEqual(w.lmtp.messages[0].recipients.sort(), ["alice@local.test", "bob@local.test"]);
      assert.deepEqual(w.smtp.messages[0].recipients, ["friend@remote.test"]);
    });

    await t.step("the sender's domain must exist; a DNS failure is temporary", async () => {
      const c = await session(w.mta.port, "127.0.0.2", "-");
      try {
        assert.equal(code(await c.command("MAIL FROM:<x@nowhere.test>")), "553 5.1.8");
        assert.equal(code(await c.command("MAIL FROM:<x@broken.test>")), "451 4.1.8");
        assert.equal(code(await c.command("MAIL FROM:<ghost@local.test>")), "553 5.1.0");
        assert.equal(code(await c.command("MAIL FROM:<bob@local.test>")), "250 2.1.0");
      } finally {
        await c.close();
      }
    });

    await t.step("discard: 250 after DATA and nothing delivered", async () => {
      const before = w.smtp.count;
      const discarded = await smtpSend(w.mta.port, {
        from: "bulk@sender.test",
        to: ["u@relayed.test"],
        body: "Subject: discard me\r\n\r\nbulk\r\n",
      }, { localAddress: "127.0.0.2" });
      assert.match(discarded, /^250 /);
      const kept = await smtpSend(w.mta.port, {
        from: "s@sender.test",
        to: ["u@relayed.test"],
        body: "Subject: keep me\r\n\r\nkept\r\n",
      }, { localAddress: "127.0.0.2" });
      assert.match(kept, /^250 /);
      await w.smtp.waitFor(before + 1, 15_000);
      const subjects = w.smtp.messages.slice(before).map((m) =>
        /Subject: (.*)\r\n/.exec(new TextDecoder().decode(m.data))?.[1]
      );
      assert.deepEqual(subjects, ["keep me"]);
    });

    await t.step("a client listed by the DNSBL is refused at connect", async () => {
      const c = await SmtpConnection.open(w.mta.port, { localAddress: "127.0.0.9" });
      try {
        assert.equal(await c.reply(), "554 5.7.1 Listed by bl.test");
      } finally {
        await c.close();
      }
    });

    await t.step("with delay_checks it is refused at RCPT, except for a to: quick:ok recipient", async () => {
      const c = await session(w.ports.delay, "127.0.0.9");
      try {
        assert.equal(await c.command("RCPT TO:<alice@local.test>"), "554 5.7.1 Listed by bl.test");
        assert.equal(code(await c.command("RCPT TO:<postmaster@local.test>")), "250 2.1.5");
      } finally {
        await c.close();
      }
    });

    await t.step("greylisting: 421 at RCPT and the session closes", async () => {
      const c = await session(w.ports.grey, "127.0.0.3");
      try {
        assert.equal(await c.command("RCPT TO:<alice@local.test>"), "421 4.7.0 Greylisted, try again later");
        assert.equal(await c.reply(), "", "the server closed the connection");
      } finally {
        await c.close();
      }
    });

    await t.step("greylisting delayed until DATA: RCPT 250, DATA 421", async () => {
      const c = await session(w.ports.greyData, "127.0.0.4");
      try {
        assert.equal(code(await c.command("RCPT TO:<alice@local.test>")), "250 2.1.5");
        assert.equal(code(await c.command("RCPT TO:<bob@local.test>")), "250 2.1.5");
        assert.equal(await c.command("DATA"), "421 4.7.0 Greylisted, try again later");
      } finally {
        await c.close();
      }
    });

    await t.step("a client that passed greylisting before is let through", async () => {
      const c = await session(w.ports.grey, "127.0.0.5");
      try {
        assert.equal(code(await c.command("RCPT TO:<alice@local.test>")), "250 2.1.5");
      } finally {
        await c.close();
      }
    });

    await t.step("a relay client is never greylisted", async () => {
      const c = await session(w.ports.grey, "127.0.0.1");
      try {
        assert.equal(code(await c.command("RCPT TO:<alice@local.test>")), "250 2.1.5");
      } finally {
        await c.close();
      }
    });
  });
});
