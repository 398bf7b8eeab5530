// smtpc authenticating to a smart host (issue 18 item 2) against the real thing: Debian's Postfix as a
// relay that requires AUTH (Cyrus SASL over a sasldb, AUTH only inside TLS, relaying only for
// authenticated clients) relaying on to an in-test sink, the whole MTA in front of it. The authinfo
// map names the next hops by mailertable host (`[relay.test]:PORT` with a SECRET_FILE, `[127.0.0.1]:PORT`
// inline) and by domain; smtpc picks SCRAM-SHA-256, PLAIN or LOGIN as each listener offers. A wrong
// password is deferred with the server's 535 logged; a hop offering AUTH without TLS is deferred (4.7.10)
// and gets no AUTH command; no secret appears in any log. Unit tests: the SCRAM client against RFC 5802
// and 7677's examples and smtps's server, the map's forms, keys and the 0600 rule.

import assert from "node:assert/strict";
import { join } from "node:path";
import { ScramClient, ScramClientError } from "../components/sasl/scram_client.ts";
import { fromBase64 } from "../components/sasl/scram.ts";
import { ScramServer } from "../components/smtps/sasl_scram.ts";
import { parseSecrets, scramSecret } from "../components/smtps/sasl_secrets.ts";
import { Authinfo, authinfoKeys, parseAuthinfoValue } from "../components/smtpc/authinfo.ts";
import { chooseMechanism } from "../components/smtpc/auth.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { parseConfig } from "../config/mod.ts";
import { freePort } from "./helpers/harness.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { startTestMta } from "./helpers/mta.ts";
import { TLS_DIR } from "./helpers/smtps_dialogue.ts";
import { postfixProblem, startPostfixRelay } from "./helpers/postfix_relay.ts";

Deno.test("the SCRAM client follows RFC 5802 and RFC 7677's examples and proves itself to smtps's server", async (t) => {
  await t.step("RFC 7677: SCRAM-SHA-256, user, pencil", async () => {
    const c = new ScramClient("SHA-256", "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    assert.equal(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    const final = await c.final(
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    );
    assert.equal(
      final,
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    assert.equal(c.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), true);
    assert.equal(c.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), false, "a forged signature");
  });
  await t.step("RFC 5802: SCRAM-SHA-1, user, pencil", async () => {
    const c = new ScramClient("SHA-1", "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
    const final = await c.final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    assert.equal(final, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    assert.equal(c.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), true);
  });
  await t.step("a hostile server-first message is refused", async () => {
    const c = new ScramClient("SHA-256", "user", "pencil", "abc");
    await assert.rejects(c.final("r=other,s=QSXCR+Q6sek8bf92,i=4096"), ScramClientError);
    await assert.rejects(c.final("r=abc,s=QSXCR+Q6sek8bf92,i=4096"), ScramClientError, "nonce not extended");
    await assert.rejects(c.final("r=abcd,s=QSXCR+Q6sek8bf92,i=999999999"), ScramClientError);
    assert.throws(() => c.verify("e=invalid-proof"), ScramClientError);
  });
  await t.step("against smtps's ScramServer, a user name with , and =", async () => {
    const secret = await scramSecret("SHA-256", "pässword", 4096, fromBase64("W22ZaJ0SNY7soEsUEjb6gQ==")!);
    const server = new ScramServer("SHA-256", () => Promise.resolve(parseSecrets(secret)));
    const c = new ScramClient("SHA-256", "a,b=c", "pässword");
    const first = await server.first(c.first());
    assert.equal(first.kind, "challenge");
    assert.equal(server.user, "a,b=c");
    const done = await server.final(await c.final((first as { text: string }).text));
    assert.equal(done.kind, "ok", JSON.stringify(done));
    assert.equal(c.verify((done as { text: string }).text), true);
  });
});

Deno.test("authinfo map values, keys and the mode an inline secret needs", async (t) => {
  await t.step("USER SECRET_FILE (relative to the map) and USER:SECRET (with blanks)", () => {
    assert.deepEqual(parseAuthinfoValue("smx secret.txt", "/etc/smx/authinfo"), {
      kind: "file",
      user: "smx",
      file: "/etc/smx/secret.txt",
    });
    assert.deepEqual(parseAuthinfoValue("me@isp.example /run/s", "x"), {
      kind: "file",
      user: "me@isp.example",
      file: "/run/s",
    });
    assert.deepEqual(parseAuthinfoValue("smx:a b:c", "x"), { kind: "inline", user: "smx", secret: "a b:c" });
    assert.equal(typeof parseAuthinfoValue("smx", "x"), "string");
    assert.equal(typeof parseAuthinfoValue(":secret", "x"), "string");
    assert.equal(typeof parseAuthinfoValue("a b c", "x"), "string");
  });
  await t.step("keys: host with port, bracketed, bare; its address; the domain and its parents", () => {
    assert.deepEqual(
      authinfoKeys({ name: "Relay.Example.", address: "192.0.2.1" }, 587, "Mail.Example.org"),
      [
        "[relay.example]:587",
        "[relay.example]",
        "relay.example",
        "[192.0.2.1]:587",
        "[192.0.2.1]",
        "192.0.2.1",
        "mail.example.org",
        ".example.org",
        ".org",
      ],
    );
    assert.deepEqual(authinfoKeys({ name: "192.0.2.1", address: "192.0.2.1" }, 25), [
      "[192.0.2.1]:25",
      "[192.0.2.1]",
      "192.0.2.1",
    ]);
  });
  await t.step("mechanism preference: SCRAM-SHA-256, PLAIN, LOGIN", () => {
    assert.equal(chooseMechanism(["LOGIN", "PLAIN", "SCRAM-SHA-256", "CRAM-MD5"]), "SCRAM-SHA-256");
    assert.equal(chooseMechanism(["LOGIN", "PLAIN"]), "PLAIN");
    assert.equal(chooseMechanism(["LOGIN", "CRAM-MD5"]), "LOGIN");
    assert.equal(chooseMechanism(["CRAM-MD5", "GSSAPI"]), undefined);
  });
  const dir = await Deno.makeTempDir({ prefix: "smx-authinfo-" });
  try {
    const map = join(dir, "authinfo");
    await Deno.writeTextFile(map, "[relay.example] smx:inline-secret\n.example.org smx secret\n");
    await Deno.writeTextFile(join(dir, "secret"), "file-secret\nignored second line\n");
    await Deno.chmod(join(dir, "secret"), 0o600);
    const spec = { name: "authinfo", type: "hash" as const, file: map };
    await t.step(
      "a 0644 map's inline secrets are refused, loudly; its secret files still serve",
      async () => {
        await Deno.chmod(map, 0o644);
        const { authinfo, errors, warnings } = await Authinfo.load(spec);
        try {
          assert.equal(errors.length, 1, JSON.stringify(errors));
          assert.match(errors[0], /holds secrets but others may read it \(mode 0644\).*chmod 600/);
          assert.deepEqual(warnings, []);
          const inline = authinfo.find({ name: "relay.example", address: "192.0.2.1" }, 25);
          assert.match(inline?.problem ?? "", /mode 0644/);
          const byDomain = authinfo.find(
            { name: "mx.example.org", address: "192.0.2.2" },
            25,
            "a.example.org",
          );
          assert.equal(byDomain?.problem, undefined);
          const creds = await authinfo.credentials(byDomain as Parameters<Authinfo["credentials"]>[0]);
          assert.deepEqual(creds, { user: "smx", secret: "file-secret", key: ".example.org" });
          assert.equal(
            authinfo.find({ name: "other.test", address: "192.0.2.3" }, 25, "other.test"),
            undefined,
          );
        } finally {
          authinfo.close();
        }
      },
    );
    await t.step(
      "a 0600 map serves inline secrets; a secret file others may read is warned about",
      async () => {
        await Deno.chmod(map, 0o600);
        await Deno.chmod(join(dir, "secret"), 0o644);
        const { authinfo, errors, warnings } = await Authinfo.load(spec);
        try {
          assert.deepEqual(errors, []);
          assert.match(warnings.join("\n"), /secret can be read by others \(mode 0644\)/);
          const entry = authinfo.find({ name: "relay.example", address: "192.0.2.1" }, 25);
          assert.equal(entry?.problem, undefined);
          const creds = await authinfo.credentials(entry as Parameters<Authinfo["credentials"]>[0]);
          assert.equal(creds.secret, "inline-secret");
        } finally {
          authinfo.close();
        }
      },
    );
    await t.step("smtpc may read the map and exactly the secret files it names", async () => {
      const config = parseConfig(
        `smar { nameserver = 127.0.0.1; }\nsmtpc { authinfo { file = ${JSON.stringify(map)}; } }\n`,
        "t.conf",
      );
      const sets = await computePermissions(config);
      const read = sets.smtpc.read as string[];
      assert.ok(read.includes(map), JSON.stringify(read));
      assert.ok(read.includes(join(dir, "secret")), JSON.stringify(read));
      assert.ok(!read.includes(dir), "not the whole directory");
      assert.equal(
        (sets.smtps.read as string[]).some((p) => p.startsWith(dir)),
        false,
        "smtps reads none of it",
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const PASSWORD = "pencil 42";
const WRONG = "not-the-password";

Deno.test("smx relays through a Postfix smart host that requires AUTH, only over TLS", async (t) => {
  const problem = await postfixProblem();
  if (problem) {
    if (Deno.env.get("CI") === "true") throw new Error(`cannot run the smart host test: ${problem}`);
    console.log(`skipped: ${problem}`);
    return;
  }
  const sink = await startSink({});
  const [scram, plain, login, clear, wrapped] = [freePort(), freePort(), freePort(), freePort(), freePort()];
  const all = ["SCRAM-SHA-256", "PLAIN", "LOGIN"];
  const relay = await startPostfixRelay({
    listeners: [
      { port: scram, tls: true, mechanisms: all },
      { port: plain, tls: true, mechanisms: ["PLAIN"] },
      { port: login, tls: true, mechanisms: ["LOGIN"] },
      { port: clear, tls: false, mechanisms: all },
      { port: wrapped, tls: true, implicit: true, mechanisms: ["PLAIN"] },
    ],
    users: { smx: PASSWORD },
    transport: `* smtp:[127.0.0.1]:${sink.port}`,
    tlsDir: TLS_DIR,
  });
  const dns = await startDnsServer([{ name: "relay.test", type: "A", data: "127.0.0.1" }]);
  const dir = await Deno.makeTempDir({ prefix: "smx-test-smarthost-" });
  let mta: Awaited<ReturnType<typeof startTestMta>> | undefined;
  try {
    const authinfo = join(dir, "authinfo");
    await Deno.writeTextFile(
      authinfo,
      [
        `[relay.test]:${scram}  smx  relay.secret`,
        `[127.0.0.1]:${plain}  smx:${PASSWORD}`,
        `login.example  smx:${PASSWORD}`,
        `wrong.example  smx:${WRONG}`,
        `[127.0.0.1]:${clear}  smx:${PASSWORD}`,
        `[127.0.0.1]:${wrapped}  smx:${PASSWORD}`,
        "",
      ].join("\n"),
    );
    await Deno.chmod(authinfo, 0o600);
    await Deno.writeTextFile(join(dir, "relay.secret"), `${PASSWORD}\n`);
    await Deno.chmod(join(dir, "relay.secret"), 0o600);
    mta = await startTestMta({
      dir,
      nameservers: [dns.address],
      mailertable: [
        `scram.example\t${scram}^esmtp:relay.test`,
        `plain.example\t${plain}^esmtp:[127.0.0.1]`,
        `login.example\t${login}^esmtp:[127.0.0.1]`,
        `wrong.example\t${scram}^esmtp:[127.0.0.1]`,
        `clear.example\t${clear}^esmtp:[127.0.0.1]`,
        `implicit.example\t${wrapped}^smtps:[127.0.0.1]`,
        "",
      ].join("\n"),
      // Idle connections stay cached through the test: a link authenticated for one authinfo entry
      // must never carry mail for another entry to the same address and port.
      configText: `log { directory = ${JSON.stringify(join(dir, "log"))}; }\n` +
        `smtpc { connection_cache_time_limit = 60s; authinfo { file = ${JSON.stringify(authinfo)}; } }\n`,
    });
    const port = mta.port;
    const send = async (to: string) => {
      const reply = await smtpSend(port, {
        from: "a@sender.test",
        to: [to],
        body: `Subject: ${to}\r\n\r\nx\r\n`,
      });
      assert.match(reply, /^250 /);
    };
    const logOf = (name: string) => Deno.readTextFile(join(dir, "log", `${name}.log`)).catch(() => "");
    const waitLog = async (name: string, re: RegExp, what: string) => {
      for (const deadline = Date.now() + 15_000; !re.test(await logOf(name));) {
        if (Date.now() > deadline) assert.fail(`${what}: no ${re} in ${name}.log:\n${await logOf(name)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const received = (to: string) => sink.messages.filter((m) => m.recipients.includes(to)).length;

    await t.step(
      "the right credentials: SCRAM-SHA-256, PLAIN, LOGIN as offered; Postfix relays",
      async () => {
        for (const to of ["rcpt@scram.example", "rcpt@plain.example", "rcpt@login.example"]) await send(to);
        await sink.waitFor(3, 20_000);
        for (const to of ["rcpt@scram.example", "rcpt@plain.example", "rcpt@login.example"]) {
          assert.equal(received(to), 1, to);
        }
        const smtpc = await logOf("smtpc");
        assert.match(
          smtpc,
          new RegExp(
            `authenticated to relay\\.test\\[127\\.0\\.0\\.1\\]:${scram} as smx with SCRAM-SHA-256 \\(authinfo \\[relay\\.test\\]:${scram}\\)`,
          ),
        );
        assert.match(smtpc, new RegExp(`:${plain} as smx with PLAIN`));
        assert.match(smtpc, new RegExp(`:${login} as smx with LOGIN \\(authinfo login\\.example\\)`));
        // The next message to the same hop and entry goes on the cached, authenticated connection.
        await send("again@scram.example");
        await sink.waitFor(4, 20_000);
        const auths = (await logOf("smtpc")).match(/authenticated to relay\.test/g) ?? [];
        assert.equal(auths.length, 1, "one AUTH for both messages");
        const postfix = await relay.log();
        for (const m of ["SCRAM-SHA-256", "PLAIN", "LOGIN"]) {
          assert.match(postfix, new RegExp(`sasl_method=${m}, sasl_username=smx@relay\\.test`), postfix);
        }
      },
    );

    await t.step("a wrong password: the 535 logged, the message deferred, nothing relayed", async () => {
      // Same address and port as relay.test's cached authenticated link, another authinfo entry.
      await send("rcpt@wrong.example");
      await waitLog(
        "qmgr",
        /to=<rcpt@wrong\.example>.*dsn=4\.7\.8, status=deferred \(4\.7\.8 SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\]:\d+ said: 535 5\.7\.8/,
        "deferral",
      );
      await waitLog(
        "smtpc",
        new RegExp(
          `warning: [0-9A-F]+: SASL authentication failed; server 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${scram} said: 535 5\\.7\\.8 Error: authentication failed`,
        ),
        "the 535 warning",
      );
      assert.equal(received("rcpt@wrong.example"), 0);
      assert.match(
        await relay.log(),
        /SASL PLAIN authentication failed|SASL SCRAM-SHA-256 authentication failed/,
      );
    });

    await t.step("a hop that offers AUTH without TLS: deferred 4.7.10, no AUTH sent", async () => {
      await send("rcpt@clear.example");
      await waitLog(
        "qmgr",
        /to=<rcpt@clear\.example>.*dsn=4\.7\.10, status=deferred \(4\.7\.10 TLS is required for AUTH/,
        "deferral",
      );
      assert.equal(received("rcpt@clear.example"), 0);
      // Postfix's summary of each session on that port: EHLO and QUIT, never an AUTH.
      const sessions = (await relay.log()).split("\n").filter((l) => / disconnect from /.test(l));
      const clearSessions = sessions.filter((l) => !/starttls=/.test(l));
      assert.ok(clearSessions.length > 0, sessions.join("\n"));
      for (const l of clearSessions) assert.doesNotMatch(l, /auth=/, l);
    });

    // After the clear-text step: Postfix's summary of a wrapper-mode session has no starttls= either.
    await t.step(
      "an smtps: route (TLS from the first byte, Postfix's wrapper mode): AUTH, then relayed",
      async () => {
        const before = sink.messages.length;
        await send("rcpt@implicit.example");
        await sink.waitFor(before + 1, 20_000);
        assert.equal(received("rcpt@implicit.example"), 1);
        assert.match(
          await logOf("smtpc"),
          new RegExp(`:${wrapped} as smx with PLAIN \\(authinfo \\[127\\.0\\.0\\.1\\]:${wrapped}\\)`),
        );
      },
    );

    await t.step("no secret in any log", async () => {
      for await (const e of Deno.readDir(join(dir, "log"))) {
        const text = await Deno.readTextFile(join(dir, "log", e.name));
        assert.ok(!text.includes(PASSWORD), `${e.name} holds the password`);
        assert.ok(!text.includes(WRONG), `${e.name} holds the wrong password`);
      }
    });
  } finally {
    await mta?.stop().catch((err) => console.error(`stop smx: ${err}`));
    await relay.stop().catch((err) => console.error(`${err}`));
    await dns.close();
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});
