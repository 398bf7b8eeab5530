// The lda worker as the MCP runs it (its own permission set from computePermissions), spoken to over LMTP
// on loopback by a raw client and by nodemailer's LMTP mode: delivery into Maildir/new with one reply per
// recipient, +detail folders, unknown users, quotas, the size limit, many concurrent deliveries to one
// mailbox, a client or the worker itself vanishing in mid-DATA (nothing reaches new/), and a reload of the
// users map.

import assert from "node:assert/strict";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { defaultConfig, defaultLda } from "../config/defaults.ts";
import type { Config } from "../config/types.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { PROTOCOL_VERSION } from "../components/protocol/messages.ts";
import { freePort, type Harness, startComponent } from "./helpers/harness.ts";
import { SmtpConnection } from "./helpers/smtp_client.ts";

interface Lda {
  dir: string;
  port: number;
  config: Config;
  /** `<mail root>/<user>/Maildir/<sub>`. */
  box(user: string, sub?: string): string;
}

async function ldaConfig(dir: string, users: string): Promise<Lda> {
  await Deno.writeTextFile(join(dir, "users"), users);
  const port = freePort();
  const config = structuredClone(defaultConfig());
  config.lda = {
    ...defaultLda(),
    listen_socket: [{ type: "inet", address: "127.0.0.1", port }],
    mail_root: join(dir, "mail"),
    local_user_map: { name: "local_users", type: "hash", file: join(dir, "users") },
    postmaster: "demo",
    max_message_size: 4096,
  };
  const box = (user: string, sub = "") => join(dir, "mail", user, "Maildir", sub);
  return { dir, port, config, box };
}

async function startLda(lda: Lda): Promise<Harness> {
  const sets = await computePermissions(lda.config, { readFiles: false });
  assert.ok(sets.lda, "the lda has a permission set when the configuration has an lda section");
  return await startComponent("lda", lda.config, sets.lda, {});
}

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

async function readAll(dir: string): Promise<string[]> {
  const names = await listDir(dir);
  return await Promise.all(names.map((n) => Deno.readTextFile(join(dir, n))));
}

/** One LMTP transaction; returns every reply after the greeting/LHLO, the final ones split per recipient. */
async function lmtp(port: number, from: string, to: string[], body: string): Promise<string[]> {
  const c = await SmtpConnection.open(port);
  try {
    const out: string[] = [await c.reply(), await c.command("LHLO client.test")];
    out.push(await c.command(`MAIL FROM:<${from}>`));
    let accepted = 0;
    for (const r of to) {
      const reply = await c.command(`RCPT TO:<${r}>`);
      if (reply.startsWith("250")) accepted++;
      out.push(reply);
    }
    const data = await c.command("DATA");
    out.push(data);
    if (data.startsWith("354")) {
      c.write(body.replace(/(^|\r\n)\./g, "$1..") + "\r\n.\r\n");
      for (let i = 0; i < accepted; i++) out.push(await c.reply());
    }
    out.push(await c.command("QUIT"));
    return out.slice(2);
  } finally {
    await c.close();
  }
}

const codes = (replies: string[]) => replies.map((r) => r.slice(0, 9));

Deno.test("the lda delivers over LMTP into Maildir/new, one reply per recipient", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-" });
  const lda = await ldaConfig(dir, "demo\nsmall 1KB\nother\n");
  const h = await startLda(lda);
  try {
    await t.step("every listed user has a Maildir from the start", async () => {
      for (const user of ["demo", "small", "other"]) {
        assert.deepEqual(await listDir(lda.box(user)), ["cur", "new", "tmp"]);
      }
    });

    await t.step(
      "a message to two users: a 250 each, a file each, LF line ends, dots unstuffed",
      async () => {
        const body = "Subject: hello\r\n\r\nline one\r\n.dot line\r\nend";
        const replies = await lmtp(
          lda.port,
          "alice@sender.test",
          ["demo@localhost", "other@localhost"],
          body,
        );
        assert.deepEqual(replies, [
          "250 2.1.0 Sender ok",
          "250 2.1.5 <demo@localhost> Recipient ok",
          "250 2.1.5 <other@localhost> Recipient ok",
          "354 End data with <CR><LF>.<CR><LF>",
          "250 2.0.0 <demo@localhost> Delivered",
          "250 2.0.0 <other@localhost> Delivered",
          "221 2.0.0 Bye",
        ]);
        const want = "Return-Path: <alice@sender.test>\nSubject: hello\n\nline one\n.dot line\nend\n";
        for (const user of ["demo", "other"]) {
          const names = await listDir(lda.box(user, "new"));
          assert.equal(names.length, 1);
          assert.match(names[0], new RegExp(`^\\d+\\.R[0-9a-f]{16}Q\\d+\\.localhost,S=${want.length}$`));
          assert.deepEqual(await readAll(lda.box(user, "new")), [want]);
          assert.deepEqual(await listDir(lda.box(user, "tmp")), [], "no spool or link left in tmp/");
        }
      },
    );

    await t.step("postmaster goes to the configured user; twice the same mailbox is one copy", async () => {
      const before = (await listDir(lda.box("demo", "new"))).length;
      const replies = await lmtp(lda.port, "", ["Postmaster@localhost", "postmaster", "demo@localhost"], "x");
      assert.deepEqual(codes(replies), [
        "250 2.1.0",
        "250 2.1.5",
        "250 2.1.5",
        "250 2.1.5",
        "354 End d",
        "250 2.0.0",
        "250 2.0.0",
        "250 2.0.0",
        "221 2.0.0",
      ]);
      assert.equal((await listDir(lda.box("demo", "new"))).length, before + 1);
    });

    await t.step("user+detail goes to .detail when it exists, else to the inbox", async () => {
      await Deno.mkdir(lda.box("other", ".work/new"), { recursive: true });
      await Deno.mkdir(lda.box("other", ".work/tmp"), { recursive: true });
      await Deno.mkdir(lda.box("other", ".work/cur"), { recursive: true });
      const inbox = (await listDir(lda.box("other", "new"))).length;
      // "x/y" is a valid local part, but no folder name: it must not reach outside the Maildir.
      const to = ["other+work@localhost", "other+nofolder@localhost", "other+x/y@localhost"];
      const replies = await lmtp(lda.port, "a@b.test", to, "Subject: detail\r\n\r\nx");
      assert.deepEqual(codes(replies).slice(5, 8), ["250 2.0.0", "250 2.0.0", "250 2.0.0"]);
      assert.equal((await listDir(lda.box("other", ".work/new"))).length, 1);
      assert.equal(
        (await listDir(lda.box("other", "new"))).length,
        inbox + 1,
        "the other two: one inbox copy",
      );
      assert.deepEqual(await listDir(dir), ["mail", "users"], "nothing written outside the mail root");
    });

    await t.step("an unknown user gets 550 5.1.1; DATA without a recipient gets 503", async () => {
      const replies = await lmtp(lda.port, "a@b.test", ["nobody@localhost", "de..mo@localhost"], "x");
      assert.deepEqual(replies.slice(0, 3), [
        "250 2.1.0 Sender ok",
        "550 5.1.1 <nobody@localhost> User unknown",
        "501 5.1.3 Bad recipient address syntax: malformed local part",
      ]);
      assert.equal(replies[3], "503 5.5.1 No valid recipients");
    });

    await t.step("over quota: 552 5.2.2 at DATA for that recipient only, and at RCPT once full", async () => {
      const big = "Subject: big\r\n\r\n" + "x".repeat(700);
      const first = await lmtp(lda.port, "a@b.test", ["small@localhost"], big);
      assert.equal(first[3], "250 2.0.0 <small@localhost> Delivered");
      const second = await lmtp(lda.port, "a@b.test", ["demo@localhost", "small@localhost"], big);
      assert.deepEqual(second.slice(4, 6), [
        "250 2.0.0 <demo@localhost> Delivered",
        "552 5.2.2 <small@localhost> Mailbox full: quota exceeded",
      ]);
      const c = await SmtpConnection.open(lda.port);
      try {
        await c.reply();
        await c.command("LHLO client.test");
        assert.equal(await c.command("MAIL FROM:<a@b.test> SIZE=400"), "250 2.1.0 Sender ok");
        assert.equal(
          await c.command("RCPT TO:<small@localhost>"),
          "552 5.2.2 <small@localhost> Mailbox full: quota exceeded",
        );
      } finally {
        await c.close();
      }
      assert.equal((await listDir(lda.box("small", "new"))).length, 1);
    });

    await t.step("a message over max_message_size gets 552 5.3.4 for each recipient", async () => {
      const replies = await lmtp(
        lda.port,
        "a@b.test",
        ["demo@localhost", "other@localhost"],
        "x".repeat(5000),
      );
      assert.deepEqual(codes(replies.slice(4, 6)), ["552 5.3.4", "552 5.3.4"]);
      const c = await SmtpConnection.open(lda.port);
      try {
        await c.reply();
        assert.match(
          await c.command("LHLO client.test"),
          /^250-localhost\n250-PIPELINING\n.*\n250 SIZE 4096$/s,
        );
        assert.equal(
          await c.command("MAIL FROM:<a@b.test> SIZE=5000"),
          "552 5.3.4 Message size exceeds fixed maximum message size",
        );
      } finally {
        await c.close();
      }
    });

    await t.step("HELO and EHLO are refused; pipelined commands are answered in order", async () => {
      const c = await SmtpConnection.open(lda.port);
      try {
        assert.match(await c.reply(), /^220 localhost LMTP ready$/);
        assert.equal(await c.command("EHLO x"), "500 5.5.1 This is LMTP: use LHLO");
        assert.equal(await c.command("MAIL FROM:<a@b.test>"), "503 5.5.1 Error: send LHLO first");
        c.write("LHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<demo@localhost>\r\nRSET\r\nNOOP\r\n");
        const got = [];
        for (let i = 0; i < 5; i++) got.push((await c.reply()).split("\n").at(-1)!.slice(0, 9));
        assert.deepEqual(got, ["250 SIZE ", "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0"]);
      } finally {
        await c.close();
      }
    });

    await t.step(
      "nodemailer's LMTP client delivers, and 40 concurrent deliveries to one mailbox all land",
      async () => {
        const before = (await listDir(lda.box("other", "new"))).length;
        const sends = Array.from({ length: 40 }, async (_, i) => {
          const transport = nodemailer.createTransport({ host: "127.0.0.1", port: lda.port, lmtp: true });
          try {
            const info = await transport.sendMail({
              envelope: { from: "load@sender.test", to: ["other@localhost"] },
              raw: `Subject: concurrent ${i}\r\n\r\nmessage ${i}\r\n`,
            });
            assert.deepEqual(info.accepted, ["other@localhost"]);
          } finally {
            transport.close();
          }
        });
        await Promise.all(sends);
        const texts = await readAll(lda.box("other", "new"));
        assert.equal(texts.length, before + 40);
        for (let i = 0; i < 40; i++) {
          assert.equal(texts.filter((x) => x.includes(`\nmessage ${i}\n`)).length, 1, `message ${i}`);
        }
      },
    );

    await t.step("a client that leaves in mid-DATA leaves nothing in new/ and no spool in tmp/", async () => {
      const before = await listDir(lda.box("demo", "new"));
      const c = await SmtpConnection.open(lda.port);
      await c.reply();
      await c.command("LHLO x");
      await c.command("MAIL FROM:<a@b.test>");
      await c.command("RCPT TO:<demo@localhost>");
      assert.match(await c.command("DATA"), /^354/);
      c.write("Subject: cut\r\n\r\nhalf a mess");
      await waitFor(async () => (await listDir(lda.box("demo", "tmp"))).length === 1, "the spool file");
      c.socket.destroy();
      await waitFor(async () => (await listDir(lda.box("demo", "tmp"))).length === 0, "the spool removed");
      assert.deepEqual(await listDir(lda.box("demo", "new")), before);
    });
  } finally {
    await h.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a crash of the lda in mid-write leaves nothing in new/; the next generation delivers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-" });
  const lda = await ldaConfig(dir, "demo\n");
  let h = await startLda(lda);
  let c: SmtpConnection | undefined;
  try {
    c = await SmtpConnection.open(lda.port);
    await c.reply();
    await c.command("LHLO x");
    await c.command("MAIL FROM:<a@b.test>");
    await c.command("RCPT TO:<demo@localhost>");
    assert.match(await c.command("DATA"), /^354/);
    c.write("Subject: crash\r\n\r\n" + "partial content\r\n".repeat(200));
    await waitFor(async () => (await listDir(lda.box("demo", "tmp"))).length === 1, "the spool file");
    h.worker.terminate(); // the worker dies without any chance to clean up
    assert.equal(await c.reply(), "", "the connection dies with the worker, no reply");
    assert.deepEqual(await listDir(lda.box("demo", "new")), []);

    h = await startLda(lda);
    const replies = await lmtp(lda.port, "a@b.test", ["demo@localhost"], "Subject: after\r\n\r\nok");
    assert.equal(replies[3], "250 2.0.0 <demo@localhost> Delivered");
    const texts = await readAll(lda.box("demo", "new"));
    assert.deepEqual(texts, ["Return-Path: <a@b.test>\nSubject: after\n\nok\n"]);
  } finally {
    await c?.close();
    await h.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a reload (SIGHUP) takes a new users map, and keeps the running one when the new one is broken", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-" });
  const lda = await ldaConfig(dir, "demo\n");
  const h = await startLda(lda);
  const reload = async (): Promise<string | undefined> => {
    const seen = h.frames.length;
    h.worker.postMessage({ v: PROTOCOL_VERSION, kind: "reload", config: lda.config });
    await waitFor(() => Promise.resolve(h.frames.slice(seen).some((f) => f.kind === "reloaded")), "reloaded");
    const f = h.frames.slice(seen).find((f) => f.kind === "reloaded");
    return f?.kind === "reloaded" ? f.error : "no answer";
  };
  try {
    assert.equal((await lmtp(lda.port, "a@b.test", ["newbie@localhost"], "x"))[1].slice(0, 9), "550 5.1.1");
    await Deno.writeTextFile(join(dir, "users"), "demo\nnewbie 1MB\n");
    assert.equal(await reload(), undefined);
    assert.deepEqual(await listDir(lda.box("newbie")), ["cur", "new", "tmp"], "its Maildir is made at once");
    const replies = await lmtp(lda.port, "a@b.test", ["newbie@localhost"], "Subject: welcome\r\n\r\nx");
    assert.equal(replies[3], "250 2.0.0 <newbie@localhost> Delivered");

    await Deno.writeTextFile(join(dir, "users"), "demo\nbad/name\n");
    assert.match((await reload()) ?? "", /users:2: bad user name "bad\/name"/);
    const still = await lmtp(lda.port, "a@b.test", ["newbie@localhost"], "Subject: still\r\n\r\nx");
    assert.equal(still[3], "250 2.0.0 <newbie@localhost> Delivered", "the users from before stay");
  } finally {
    await h.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a broken users map is fatal: the lda does not start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-" });
  try {
    const lda = await ldaConfig(dir, "good\nbad/name\n");
    await assert.rejects(startLda(lda), /lda reported fatal: .*users:2: bad user name "bad\/name"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Polls `check` every 10 ms until it holds; fails after 10 s naming `what`. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
