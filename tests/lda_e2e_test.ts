// End to end with local delivery: the whole MTA with an lda section (the MCP starts the lda as an optional
// service with its own permission set), the mailertable routing localhost to it with lmtp:. Mail sent over
// SMTP to postmaster@localhost and to user+detail lands in the user's Maildir (no relaying rights needed:
// lmtp: domains are local); a killed lda is restarted by the MCP and delivers again. Also: the built-in
// configuration routes localhost to its own lda.

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../config/mod.ts";
import type { InetListenSocket } from "../config/types.ts";
import { mailertablePorts } from "../components/smar/mailertable.ts";
import { startTestMta } from "./helpers/mta.ts";
import { freePort } from "./helpers/harness.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** Waits until `dir` holds `n` files; returns their contents. */
async function waitForFiles(dir: string, n: number, ms = 20_000): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const names = await listDir(dir);
    if (names.length >= n) return await Promise.all(names.map((f) => Deno.readTextFile(join(dir, f))));
    if (Date.now() > deadline) throw new Error(`expected ${n} files in ${dir}, found ${names.length}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("SMTP to postmaster@localhost lands in the user's Maildir/new through the lda", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-e2e-" });
  const ldaPort = freePort();
  await Deno.writeTextFile(join(dir, "local_users"), "demo\t10MB\n");
  const mta = await startTestMta({
    dir,
    mailertable: `localhost\t${ldaPort}^lmtp:[127.0.0.1]\n`,
    access: "", // nobody may relay: local delivery must not depend on it
    configText: `map local_users { type = hash; file = ${JSON.stringify(join(dir, "local_users"))}; }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = ${ldaPort}; }
  mail_root = ${JSON.stringify(join(dir, "var/mail"))};
  local_user_map = local_users;
  postmaster = demo;
}
`,
  });
  try {
    assert.ok(mta.mta.supervisor.isReady("lda"), "the MCP started the lda with the other components");
    const inbox = join(dir, "var/mail/demo/Maildir");
    await Deno.mkdir(join(inbox, ".lists/new"), { recursive: true });
    await Deno.mkdir(join(inbox, ".lists/tmp"), { recursive: true });
    await Deno.mkdir(join(inbox, ".lists/cur"), { recursive: true });

    const reply = await smtpSend(mta.port, {
      from: "someone@remote.test",
      to: ["postmaster@localhost"],
      body: "Subject: to the postmaster\r\n\r\nHello postmaster.\r\n",
    });
    assert.match(reply, /^250 2\.0\.0 Ok: queued as /);
    const [text] = await waitForFiles(join(inbox, "new"), 1);
    assert.match(text, /^Return-Path: <someone@remote\.test>\nReceived: from /);
    assert.match(text, /\nSubject: to the postmaster\n\nHello postmaster\.\n$/);
    assert.ok(!text.includes("\r"), "stored with LF line ends");

    const detail = await smtpSend(mta.port, {
      from: "someone@remote.test",
      to: ["demo+lists@localhost"],
      body: "Subject: to a folder\r\n\r\nx\r\n",
    });
    assert.match(detail, /^250 /);
    const [folder] = await waitForFiles(join(inbox, ".lists/new"), 1);
    assert.match(folder, /\nSubject: to a folder\n/);
    assert.equal((await listDir(join(inbox, "new"))).length, 1);

    // Supervised like the components: killed, it comes back as a new generation and delivers again.
    const supervisor = mta.mta.supervisor;
    const back = new Promise<void>((resolve) => {
      const off = supervisor.onEvent((e) => {
        if (e.type === "ready" && e.name === "lda" && e.generation === 2) {
          off();
          resolve();
        }
      });
    });
    supervisor.kill("lda");
    await back;
    assert.equal(supervisor.restarts("lda"), 1);
    const again = await smtpSend(mta.port, {
      from: "someone@remote.test",
      to: ["demo@localhost"],
      body: "Subject: after a restart\r\n\r\nx\r\n",
    });
    assert.match(again, /^250 /);
    const texts = await waitForFiles(join(inbox, "new"), 2);
    assert.equal(texts.filter((x) => x.includes("\nSubject: after a restart\n")).length, 1);
  } finally {
    await mta.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the built-in configuration routes localhost with lmtp: to its own lda, knows a user and postmaster", async () => {
  const config = await loadConfig();
  assert.ok(config.lda, "the built-in configuration has an lda section");
  const mailertable = config.smar.mailertable!;
  const text = await Deno.readTextFile(new URL(`../${mailertable.file}`, import.meta.url));
  const route = text.split("\n").find((l) =>
    l.startsWith(`${config.hostname}\t`) || l.startsWith("localhost\t")
  );
  const socket = config.lda.listen_socket[0] as InetListenSocket;
  assert.equal(route, `localhost\t${socket.port}^lmtp:[${socket.address}]`);
  assert.equal(config.hostname, "localhost", "the configured hostname is the routed one");
  const ports = await mailertablePorts({
    ...mailertable,
    file: new URL(`../${mailertable.file}`, import.meta.url).pathname,
  });
  assert.ok(ports.includes(socket.port), "smtpc may connect to the lda's port");
  assert.equal(config.lda.mail_root, "var/mail");
  const users = await Deno.readTextFile(new URL(`../${config.lda.local_user_map!.file}`, import.meta.url));
  assert.match(users, /^demo\s/m);
  assert.equal(config.lda.postmaster, undefined, "postmaster is an alias, not the lda's option");
  const aliases = await Deno.readTextFile(new URL(`../${config.smar.aliases!.file}`, import.meta.url));
  assert.match(aliases, /^postmaster:\s*demo$/m);
});
