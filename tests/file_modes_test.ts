// File modes under the usual umask 022: the whole MTA (with the lda and greylisting) queues one message
// it cannot deliver yet and delivers one into a Maildir; then every queue directory is 0700 and every
// queue file 0600 (the CDB files, the queue database and its -wal/-shm, the greylisting database, the
// control socket), and so are the Maildir's directories and the delivered message. A queue directory
// left 0755 by an older version is narrowed at start. Deno sets the umask only with a plain --allow-sys,
// so the test measures the umask it runs under instead, and fails unless it is 022.

import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestMta } from "./helpers/mta.ts";
import { freePort } from "./helpers/harness.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

const mode = async (path: string) => ((await Deno.lstat(path)).mode ?? 0) & 0o777;

/** Every path under `dir` (itself included) with its mode and kind. */
async function walk(dir: string): Promise<{ path: string; mode: number; dir: boolean }[]> {
  const out = [{ path: dir, mode: await mode(dir), dir: true }];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await walk(path));
    else out.push({ path, mode: await mode(path), dir: false });
  }
  return out;
}

async function until(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}

Deno.test("queue and Maildir files are 0600 and their directories 0700 under umask 022", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-modes-" });
  try {
    await Deno.writeTextFile(join(dir, "probe"), ""); // created 0666 less the umask
    assert.equal((await mode(join(dir, "probe"))).toString(8), "644", "this test runs under umask 022");
    // An older version's queue directory, world-readable: narrowed at start.
    await Deno.mkdir(join(dir, "var/cdb"), { recursive: true, mode: 0o755 });
    assert.equal(await mode(join(dir, "var/cdb")), 0o755);
    await Deno.writeTextFile(join(dir, "users"), "demo\n");
    const ldaPort = freePort();
    const closed = freePort(); // nothing listens there: mail to it stays queued
    const mta = await startTestMta({
      dir,
      mailertable: `localhost\t${ldaPort}^lmtp:[127.0.0.1]\nlater.test\t${closed}^esmtp:[127.0.0.1]\n`,
      configText: `map users { type = hash; file = ${JSON.stringify(join(dir, "users"))}; }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = ${ldaPort}; }
  mail_root = ${JSON.stringify(join(dir, "var/mail"))};
  local_user_map = users;
}
`,
      adjust(config) {
        config.smar.greylisting = {
          grey_wait: 3_600_000,
          grey_expire: 86_400_000,
          white_expire: 86_400_000,
          white_timeout: 3_600_000,
          main_DB_name: join(dir, "var/ibdb/grey.db"),
          expire_limit: 100,
          netmask: 32,
        };
      },
    });
    try {
      const body = "Subject: private\r\n\r\nfor your eyes only\r\n";
      assert.match(
        await smtpSend(mta.port, { from: "a@sender.test", to: ["demo@localhost"], body }),
        /^250 /,
      );
      assert.match(await smtpSend(mta.port, { from: "a@sender.test", to: ["b@later.test"], body }), /^250 /);
      const newDir = join(dir, "var/mail/demo/Maildir/new");
      await until("the delivery into the Maildir", async () => (await names(newDir)).length === 1);

      const queue = [
        ...await walk(join(dir, "var/cdb")),
        ...await walk(join(dir, "var/ibdb")),
        ...await walk(join(dir, "var/defedb")),
      ];
      const maildir = await walk(join(dir, "var/mail"));
      const files = queue.filter((e) => !e.dir).map((e) => e.path.slice(dir.length + 1));
      for (
        const f of ["var/ibdb/queue.sqlite", "var/ibdb/queue.sqlite-wal", "var/ibdb/queue.sqlite-shm"]
          .concat(["var/ibdb/grey.db", "var/ibdb/qmgr.sock"])
      ) assert.ok(files.includes(f), `${f} is there (found ${files.join(", ")})`);
      assert.ok(files.some((f) => f.startsWith("var/cdb/")), "the queued message's CDB file is there");
      assert.ok(maildir.some((e) => !e.dir && e.path.startsWith(newDir)), "the delivered message is there");
      for (const e of [...queue, ...maildir]) {
        const want = e.dir ? 0o700 : 0o600;
        assert.equal(e.mode.toString(8), want.toString(8), `mode of ${e.path.slice(dir.length + 1)}`);
      }
    } finally {
      await mta.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
