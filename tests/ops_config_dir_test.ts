// Relative paths in a configuration file are taken from the file's directory, whatever the current
// directory (config/paths.ts): loadConfig() makes them absolute, the MCP's permission sets name those
// absolute paths, and the MCP's start line, the MTA and
// qmgrctl -f FILE run from a temporary directory with the configuration (queue, maps, mail
// root, log directory all written relative) in another one; a message sent over SMTP lands in the mail
// root beside the configuration.

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { runMain } from "../components/mcp/cli.ts";
import { startMta } from "../components/mcp/mta.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { freePort } from "./helpers/harness.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

/** Writes a configuration with only relative paths, and its maps, into `<root>/etc`. */
async function writeRelativeConfig(root: string, smtpPort: number, lmtpPort: number): Promise<string> {
  const etc = join(root, "etc");
  await Deno.mkdir(etc, { recursive: true });
  await Deno.writeTextFile(join(etc, "mailertable"), `localhost\t${lmtpPort}^lmtp:[127.0.0.1]\n`);
  await Deno.writeTextFile(join(etc, "access"), "cltaddr:127.0.0.1\trelay\n");
  await Deno.writeTextFile(join(etc, "aliases"), "postmaster: demo\n");
  await Deno.writeTextFile(join(etc, "local_users"), "demo\n");
  await Deno.writeTextFile(
    join(etc, "smx.conf"),
    `hostname = "localhost";
CDB_base_directory = "spool/cdb";
log { directory = "log"; }
qmgr { IBDB { base_directory = "spool/ibdb"; } DEFEDB { base_directory = "spool/defedb"; } }
smtps MTA { listen_socket { type = inet; address = 127.0.0.1; port = ${smtpPort}; } }
smar {
  mailertable { file = "mailertable"; }
  access_map { file = "access"; }
  aliases { file = "aliases"; flags = { localpart }; }
  map local_users { type = hash; file = "local_users"; }
}
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = ${lmtpPort}; }
  mail_root = "mail";
  local_user_map = local_users;
}
`,
  );
  return join(etc, "smx.conf");
}

Deno.test("loadConfig() takes relative paths from the configuration file's directory; the permissions name them", async () => {
  const root = await Deno.makeTempDir({ prefix: "smx-confdir-" });
  try {
    const file = await writeRelativeConfig(root, 2525, 2424);
    const etc = join(root, "etc");
    const c = await loadConfig(file);
    assert.equal(c.directory, etc);
    assert.equal(c.CDB_base_directory, join(etc, "spool/cdb"));
    assert.equal(c.qmgr.IBDB.base_directory, join(etc, "spool/ibdb"));
    assert.equal(c.log?.directory, join(etc, "log"));
    assert.equal(c.smar.mailertable?.file, join(etc, "mailertable"));
    assert.equal(c.lda?.local_user_map?.file, join(etc, "local_users"));
    assert.equal(c.lda?.mail_root, join(etc, "mail"));
    assert.equal(c.smtpc.LMTP_socket, join(etc, "lmtpsock"));
    assert.equal(controlSocketPath(c), join(etc, "spool/ibdb/qmgr.sock"));
    const p = await computePermissions(c);
    assert.ok((p.smar.read as string[]).includes(join(etc, "access")), JSON.stringify(p.smar.read));
    assert.deepEqual(p.qmgr.net, [`unix:${join(etc, "spool/ibdb/qmgr.sock")}`]);
    assert.ok((p.lda!.write as string[]).includes(join(etc, "mail")));
    // The default LMTP socket, now absolute, still is the default: smtpc gets no unix socket for it.
    assert.ok(!(p.smtpc.net as string[]).some((n) => n.startsWith("unix:")), JSON.stringify(p.smtpc.net));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

async function until(cond: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

// In this process, with another directory as the current one: the test task may not run `deno` (a deno
// child could take any permission), so the MCP's own entry (runMain, what `deno task start` runs after
// --print-command) and qmgrctl's are called as functions. scripts/start.sh only makes a relative -f
// absolute against INIT_CWD before that.
Deno.test("the MCP's start line, the MTA and qmgrctl -f work from another directory with a relative configuration", async () => {
  const root = await Deno.makeTempDir({ prefix: "smx-confdir-" });
  const smtpPort = freePort();
  const lmtpPort = freePort();
  await writeRelativeConfig(root, smtpPort, lmtpPort);
  const elsewhere = join(root, "elsewhere");
  await Deno.mkdir(elsewhere);
  const etc = join(root, "etc");
  const before = Deno.cwd();
  // `deno task qmgrctl` takes a relative -f from INIT_CWD, the directory the task was run in (here, the
  // outer `deno task test` set it to the repository).
  const initCwd = Deno.env.get("INIT_CWD");
  Deno.chdir(elsewhere);
  Deno.env.set("INIT_CWD", elsewhere);
  let mta: Awaited<ReturnType<typeof startMta>> | undefined;
  try {
    // The deno run line `deno task start -f ../etc/smx.conf` would exec names the configuration's directory.
    const printed: string[] = [];
    const code = await runMain(["--print-command", "-f", "../etc/smx.conf"], {
      out: (t) => printed.push(t),
      err: (t) => printed.push(t),
    });
    assert.equal(code, 0, printed.join("\n"));
    assert.ok(printed[0].includes(join(etc, "spool/ibdb")), printed[0]);
    assert.ok(!/[=,]spool\//.test(printed[0]), `a relative path is left: ${printed[0]}`);

    const config = await loadConfig("../etc/smx.conf");
    mta = await startMta(config, { permissions: await computePermissions(config) });
    assert.ok(await exists(join(etc, "spool/ibdb/qmgr.sock")));

    const final = await smtpSend(smtpPort, {
      from: "someone@localhost",
      to: ["postmaster@localhost"],
      body: "Subject: from elsewhere\r\n\r\nhello\r\n",
    });
    assert.match(final, /^250 /);
    const inbox = join(etc, "mail/demo/Maildir/new");
    await until(async () => {
      const names: string[] = [];
      try {
        for await (const e of Deno.readDir(inbox)) names.push(e.name);
      } catch {
        return false;
      }
      return names.length === 1;
    }, "the message in the mail root beside the configuration");

    const out: string[] = [];
    const err: string[] = [];
    const ctl = await qmgrctl(["-f", "../etc/smx.conf", "--json", "status"], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
    });
    assert.equal(ctl, 0, err.join("\n"));
    assert.ok("queue" in JSON.parse(out.join("\n")), out.join("\n"));
    assert.equal(await exists(join(elsewhere, "spool")), false, "nothing is made in the current directory");
  } finally {
    if (mta) await mta.stop();
    Deno.chdir(before);
    if (initCwd === undefined) Deno.env.delete("INIT_CWD");
    else Deno.env.set("INIT_CWD", initCwd);
    await Deno.remove(root, { recursive: true });
  }
});
