// qmgrctl explain: every policy decision for an envelope, step by step, through the real control socket
// to qmgr, which asks the real smar worker (qmgr.explain): the access map keys tried at connect, MAIL
// and RCPT with their answers, the DNSBL and MX answers of an in-test DNS server, alias expansion, the
// local users check, greylisting (read only: no entry is made), the mailertable route and next hops,
// and the TLS step; --json gives the same steps as data. No mail is sent.

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { defaultGreylisting } from "../config/defaults.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { startTestMta } from "./helpers/mta.ts";

interface Step {
  stage: string;
  kind: string;
  text: string;
  key?: string;
  value?: string | null;
  action?: string;
}

async function ctl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await qmgrctl(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("qmgrctl explain walks connect, MAIL, RCPT and the route with every lookup, writing nothing", async (t) => {
  const dns = await startDnsServer([
    { name: "remote.test", type: "MX", data: { preference: 10, exchange: "mx.remote.test" } },
    { name: "mx.remote.test", type: "A", data: "192.0.2.10" },
    { name: "66.2.0.192.bl.test", type: "A", data: "127.0.0.2" },
  ]);
  const dir = await Deno.makeTempDir({ prefix: "smx-explain-" });
  await Deno.writeTextFile(join(dir, "aliases"), "postmaster: demo\n");
  await Deno.writeTextFile(join(dir, "local_users"), "demo\n");
  const greyDb = join(dir, "grey.db");
  const mta = await startTestMta({
    dir,
    nameservers: [dns.address],
    mailertable: "localhost\t2424^lmtp:[127.0.0.1]\n",
    access: "cltaddr:127.0.0.1\trelay\nbl:127.0.0.2\terror:554 5.7.1 listed at bl.test\n" +
      "from:@spam.test\tREJECT\ntls_srv:remote.test\tencrypt\n",
    adjust: (c) => {
      c.smtps[0].flags = ["8bitmime", "access", "greylisting"];
      c.qmgr.smtps.max_connection_rate = 1; // one connection a minute per client (the last step uses it)
      c.smar.dnsbl = [{ domain: "bl.test", tag: "bl" }];
      c.smar.greylisting = { ...defaultGreylisting(), main_DB_name: greyDb };
      c.smar.aliases = { name: "aliases", type: "hash", file: join(dir, "aliases") };
      c.smar.local_user_map = { name: "local_users", type: "hash", file: join(dir, "local_users") };
    },
  });
  const socket = controlSocketPath(mta.config);
  const explain = async (...args: string[]) => {
    const r = await ctl(["--socket", socket, "--json", "explain", ...args]);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as { steps: Step[]; server: string };
  };
  try {
    await t.step(
      "a local envelope: keys tried in order, aliases, local users, greylisting, the route",
      async () => {
        const a = await explain(
          "--client",
          "192.0.2.5",
          "--helo",
          "client.test",
          "--from",
          "someone@remote.test",
          "--to",
          "postmaster@localhost",
          "--to",
          "nobody@localhost",
        );
        assert.equal(a.server, "MTA");
        const of = (stage: string) => a.steps.filter((s) => s.stage === stage);
        // What smtps asks qmgr first: the client's connection limits.
        assert.match(
          a.steps[0].text,
          /^qmgr connection limits for \[192\.0\.2\.5\]: sessions 0 of 100 \(icm:\), connections in the last minute 0 of 1 \(icr:\)$/,
        );
        // connect: the client address from the most specific key to the least, then the DNSBL.
        const connectKeys = of("connect").filter((s) => s.kind === "lookup").map((s) => s.key);
        assert.deepEqual(connectKeys.slice(0, 4), [
          "cltaddr:192.0.2.5",
          "cltaddr:192.0.2",
          "cltaddr:192.0",
          "cltaddr:192",
        ]);
        assert.ok(of("connect").some((s) => s.kind === "dns" && s.text.includes("5.2.0.192.bl.test")));
        assert.ok(connectKeys.includes("bl:perm"), "not listed: looked up as bl:perm");
        assert.equal(of("connect").at(-1)?.action, "accept");
        assert.ok(of("helo")[0].text.includes("client.test"));
        // MAIL: from: keys, then the sender domain's MX in the DNS.
        const mail = of("mail");
        const mailKeys = mail.filter((s) => s.kind === "lookup").map((s) => s.key);
        assert.deepEqual(mailKeys.slice(0, 3), [
          "from:someone*@remote.test",
          "from:someone@remote.test",
          "from:@remote.test",
        ]);
        assert.ok(
          mail.some((s) => s.kind === "dns" && /MX remote\.test: mx\.remote\.test \(10\)/.test(s.text)),
        );
        assert.equal(mail.at(-1)?.action, "accept");
        // RCPT postmaster: to: keys, the alias, the local user, greylisting read only.
        const pm = of("rcpt <postmaster@localhost>");
        assert.ok(
          pm.some((s) => s.kind === "lookup" && s.key === "to:postmaster@localhost" && s.value === null),
        );
        assert.ok(
          pm.some((s) => s.kind === "lookup" && s.key === "postmaster" && s.value === "demo"),
          JSON.stringify(pm),
        );
        assert.ok(pm.some((s) => s.kind === "lookup" && s.text.startsWith("local users: demo")));
        assert.ok(pm.some((s) => s.kind === "greylist" && /new: would be greylisted/.test(s.text)));
        assert.equal(pm.at(-1)?.action, "tempfail", "a new client is greylisted at RCPT");
        // RCPT nobody: not a local user.
        const nobody = of("rcpt <nobody@localhost>");
        assert.equal(nobody.at(-1)?.action, "reject");
        assert.match(nobody.at(-1)!.text, /550 5\.1\.1/);
        // Greylisting was only read: no entry exists, and a second explain still sees a new client.
        const db = new DatabaseSync(greyDb, { readOnly: true });
        try {
          assert.equal((db.prepare("SELECT count(*) AS n FROM grey").get() as { n: number }).n, 0);
        } finally {
          db.close();
        }
      },
    );

    await t.step(
      "a relayed envelope from a relay client: the MX route with its next hops and the TLS step",
      async () => {
        const r = await ctl([
          "--socket",
          socket,
          "explain",
          "--client",
          "127.0.0.1",
          "--from",
          "<>",
          "--to",
          "<user@remote.test>",
        ]);
        assert.equal(r.code, 0, r.err);
        assert.match(
          r.out,
          /^connect\n {2}qmgr connection limits for \[127\.0\.0\.1\]: .*\n {2}client \[127\.0\.0\.1\], smtps flags: 8bitmime, access, greylisting\n {2}access map: cltaddr:127\.0\.0\.1 -> "relay"$/m,
        );
        assert.match(r.out, /^ {2}=> accept \(the client may relay; ok: exempt from greylisting\)$/m);
        // MAIL asks first for the client's tls_clt: requirement (none in this map).
        assert.match(
          r.out,
          /^mail\n {2}access map: no tls_clt: entries, that lookup is skipped\n {2}access map: from:<> -> not found$/m,
        );
        assert.match(r.out, /^route remote\.test\n {2}mailertable: remote\.test -> not found$/m);
        assert.match(r.out, /DNS MX remote\.test: mx\.remote\.test \(10\)/);
        assert.match(r.out, /DNS A mx\.remote\.test: 192\.0\.2\.10/);
        assert.match(r.out, /esmtp to port 25, next hops in order: mx\.remote\.test\[192\.0\.2\.10\]/);
        // The TLS step: the one TLS policy decision for each next hop, here the access map's tls_srv: entry.
        assert.match(r.out, /access map: tls_srv:remote\.test -> "encrypt"/);
        assert.match(r.out, /^tls remote\.test\n {2}mx\.remote\.test\[192\.0\.2\.10\]: encrypt /m);
      },
    );

    await t.step("a listed client is refused at connect and nothing after it is asked", async () => {
      const a = await explain(
        "--client",
        "192.0.2.66",
        "--from",
        "a@remote.test",
        "--to",
        "postmaster@localhost",
      );
      const verdict = a.steps.find((s) => s.kind === "verdict")!;
      assert.equal(verdict.stage, "connect");
      assert.equal(verdict.action, "reject");
      assert.match(verdict.text, /554 5\.7\.1 listed at bl\.test/);
      assert.ok(
        a.steps.some((s) => s.key === "bl:127.0.0.2" && s.value === "error:554 5.7.1 listed at bl.test"),
      );
      assert.ok(!a.steps.some((s) => s.stage === "mail"));
    });

    await t.step(
      "--auth explains a session that authenticated: it may relay and is not greylisted",
      async () => {
        const args = ["--client", "192.0.2.5", "--from", "a@remote.test", "--to", "user@remote.test"];
        const plain = await explain(...args);
        assert.match(plain.steps.at(-1)!.text, /^reject 550 5\.7\.1 Relay access denied/);
        const authed = await explain(...args, "--auth", "alice");
        assert.ok(authed.steps.some((s) => s.text.includes("authenticated as alice (may relay)")));
        const rcpt = authed.steps.filter((s) => s.stage === "rcpt <user@remote.test>");
        assert.equal(rcpt.at(-1)?.action, "accept");
        assert.ok(!rcpt.some((s) => s.kind === "greylist"));
      },
    );

    await t.step("bad requests are usage errors or clear refusals", async () => {
      assert.equal(
        (await ctl(["--socket", socket, "explain", "--from", "a@b.test", "--to", "c@d.test"])).code,
        64,
      );
      const bad = await ctl([
        "--socket",
        socket,
        "explain",
        "--client",
        "not-an-ip",
        "--from",
        "a@b",
        "--to",
        "c@d",
      ]);
      assert.equal(bad.code, 1);
      assert.match(bad.err, /--client must be an IP address/);
      const server = await ctl([
        "--socket",
        socket,
        "explain",
        "--client",
        "192.0.2.1",
        "--from",
        "a@b",
        "--to",
        "c@d",
        "--server",
        "nope",
      ]);
      assert.equal(server.code, 1);
      assert.match(server.err, /no smtps section nope/);
    });
    await t.step("a client over its connection rate is refused by qmgr before smar is asked", async () => {
      const smtp = await Deno.connect({ hostname: "127.0.0.1", port: mta.port });
      try {
        const greeting = new Uint8Array(512);
        await smtp.read(greeting); // the session counts once smtps greets
        const a = await explain("--client", "127.0.0.1", "--from", "a@remote.test", "--to", "b@remote.test");
        assert.match(a.steps[0].text, /connections in the last minute 1 of 1/);
        assert.equal(a.steps.length, 2);
        assert.match(a.steps[1].text, /^tempfail 421 4\.7\.0 Too many connections/);
      } finally {
        smtp.close();
      }
    });
  } finally {
    await mta.stop();
    await dns.close();
    await Deno.remove(dir, { recursive: true });
  }
});
