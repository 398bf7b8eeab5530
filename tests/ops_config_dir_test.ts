// Relative paths in a configuration file are taken from the file's directory, whatever the current
// directory (config/paths.ts): loadConfig() makes them absolute, the MCP's permission sets name those
// absolute paths, and the real commands work from anywhere: `deno task start -f FILE` and
// `deno task qmgrctl -f FILE` run from a temporary directory with the configuration (queue, maps, mail
// root, log directory all written relative) in another one; a message sent over SMTP lands in the mail
// root beside the configuration.

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { freePort } from "./helpers/harness.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));

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

/** Runs `deno task TASK ARGS` of this repository with `cwd` as the current directory. */
function task(cwd: string, args: string[]) {
  // Without the INIT_CWD of the deno task running this test: the inner deno task sets its own (cwd).
  const { INIT_CWD: _outer, ...env } = Deno.env.toObject();
  return new Deno.Command("deno", {
    args: ["task", "-q", "--config", join(REPO, "deno.json"), ...args],
    cwd,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function until(cond: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("deno task start -f and qmgrctl -f work from another directory with a relative configuration", async () => {
  const root = await Deno.makeTempDir({ prefix: "smx-confdir-" });
  const smtpPort = freePort();
  const lmtpPort = freePort();
  await writeRelativeConfig(root, smtpPort, lmtpPort);
  const elsewhere = join(root, "elsewhere");
  await Deno.mkdir(elsewhere);
  const etc = join(root, "etc");
  // -f relative to the directory the task is run in (deno task runs the script in the repository).
  const child = task(elsewhere, ["start", "-f", "../etc/smx.conf"]).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  try {
    await until(async () => {
      if (exited) throw new Error(`the MTA ended early: ${(await output).join("\n")}`);
      const text = await Deno.readTextFile(join(etc, "log/mcp.log")).catch(() => "");
      return text.includes("all components ready") && await exists(join(etc, "spool/ibdb/qmgr.sock"));
    }, "the MTA to start");

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

    const ctl = await task(elsewhere, ["qmgrctl", "-f", "../etc/smx.conf", "--json", "status"]).output();
    const text = new TextDecoder().decode(ctl.stdout);
    assert.equal(ctl.code, 0, new TextDecoder().decode(ctl.stderr));
    assert.ok("queue" in JSON.parse(text), text);
    assert.equal(await exists(join(elsewhere, "spool")), false, "nothing is made in the current directory");
  } finally {
    if (!exited) child.kill("SIGTERM"); // deno task passes it on to the MTA, which stops gracefully
    const { code } = await status;
    const [out, err] = await output;
    const log = await Deno.readTextFile(join(etc, "log/mcp.log")).catch(() => "");
    assert.equal(code, 0, `${out}\n${err}\n${log}`);
    await Deno.remove(root, { recursive: true });
  }
});
