// `smx --check -f FILE` loads every map, key, certificate and file a configuration names with the
// components' own loaders and reports each problem with the configuration's file:line:col (and the map
// file's line for a broken map line), exiting 78; `-n` prints only what differs from the defaults, in
// configuration syntax that parses back to the same configuration. Real files in a temporary directory.

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runMain } from "../components/mcp/cli.ts";
import { checkConfiguration } from "../components/mcp/check.ts";
import { parseConfig } from "../config/mod.ts";

const TLS = fileURLToPath(new URL("./fixtures/tls/", import.meta.url));

async function main(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runMain(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** A configuration whose maps, keys and certificates are all fine, in `dir`; returns its path. */
async function writeGood(dir: string, more = ""): Promise<string> {
  await Deno.writeTextFile(join(dir, "mailertable"), "example.test\t2526^esmtp:[127.0.0.1]\n");
  await Deno.writeTextFile(join(dir, "access"), "cltaddr:127.0.0.1\tRELAY\n");
  await Deno.writeTextFile(join(dir, "aliases"), "postmaster: root\n");
  const file = join(dir, "smx.conf");
  await Deno.writeTextFile(
    file,
    `CDB_base_directory = "spool/cdb";
qmgr { IBDB { base_directory = "spool/ibdb"; } DEFEDB { base_directory = "spool/defedb"; } }
smtps MTA {
  listen_socket { type = inet; address = 127.0.0.1; port = 2600; }
  tls { cert_file = "${TLS}server.pem"; key_file = "${TLS}server.key"; }
}
smar {
  mailertable { file = "mailertable"; }
  access_map { file = "access"; }
  aliases { file = "aliases"; }
}
${more}`,
  );
  return file;
}

Deno.test("smx --check passes a configuration whose every file loads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-check-" });
  try {
    const r = await main(["--check", "-f", await writeGood(dir)]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /every map, key, certificate and file it names loads/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smx --check reports each problem with the option's file:line:col and the map's line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-check-" });
  try {
    const file = join(dir, "smx.conf");
    await Deno.writeTextFile(
      join(dir, "mailertable"),
      "good.test\t[127.0.0.1]\nbad.test\t99999^esmtp:[127.0.0.1]\n",
    );
    await Deno.writeTextFile(join(dir, "aliases"), "postmaster: root\n");
    await Deno.writeTextFile(join(dir, "spool"), "a file where the queue directory should be\n");
    await Deno.writeTextFile(
      file,
      `CDB_base_directory = "spool";
smtps MTA {
  listen_socket { type = inet; address = 127.0.0.1; port = 2600; }
  tls { cert_file = "${TLS}server.pem";
        key_file = "${TLS}client.key"; }
  auth { map_file = "passwords.db"; }
}
smar {
  mailertable { file = "mailertable"; }
  access_map { file = "access"; }
  aliases { file = "aliases"; }
}
`,
    );
    const r = await main(["--check", "-f", file]);
    assert.equal(r.code, 78, r.err);
    const lines = r.err.split("\n");
    const find = (re: RegExp) => lines.find((l) => re.test(l)) ?? assert.fail(`no line ${re} in\n${r.err}`);
    // The mailertable: the option that names it (line 9) and the broken line of the map (line 2).
    assert.match(
      find(/mailertable/),
      new RegExp(`${file}:9:\\d+: smar\\.mailertable\\.file = ".*": .*mailertable:2`),
    );
    assert.match(
      find(/access map/),
      new RegExp(`${file}:10:\\d+: smar\\.access_map\\.file = ".*access": .*No such file`),
    );
    assert.match(find(/TLS key/), new RegExp(`${file}:5:\\d+: smtps\\.tls\\.key_file = .*client\\.key"`));
    assert.match(
      find(/AUTH credentials/),
      new RegExp(`${file}:6:\\d+: smtps\\.auth\\.map_file = ".*passwords\\.db"`),
    );
    assert.match(find(/CDB directory/), new RegExp(`${file}:1:\\d+: CDB_base_directory = .*not a directory`));
    assert.match(lines.at(-1)!, /5 problems found/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smx --check reports an expired certificate; a configuration error is the one problem", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-check-" });
  try {
    const file = await writeGood(dir);
    // The fixtures are valid for 100 years: checked as of 2200 the certificate has expired.
    const { problems } = await checkConfiguration(file, new Date("2200-01-01T00:00:00Z"));
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(
      problems[0],
      /smx\.conf:5:\d+: smtps\.tls\.cert_file = .*server\.pem.*the certificate expired on/,
    );

    await Deno.writeTextFile(file, "qmgr { retry_min_delay = soon; }\n");
    const r = await main(["--check", "-f", file]);
    assert.equal(r.code, 78);
    assert.match(r.err, /smx\.conf:1:\d+: .*retry_min_delay/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-n prints only what differs from the defaults, and it parses back to the same configuration", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-n-" });
  try {
    const file = await writeGood(
      dir,
      `qmgr { retry_min_delay = 10m; }
lda { mail_root = "mailboxes"; }
log { facility = local3; }
`.replace("qmgr { retry_min_delay = 10m; }", ""),
    );
    // One qmgr section: add the option to the existing one.
    const text = (await Deno.readTextFile(file)).replace("qmgr {", "qmgr { retry_min_delay = 10m;");
    await Deno.writeTextFile(file, text);
    const r = await main(["-n", "-f", file]);
    assert.equal(r.code, 0, r.err);
    const out = r.out;
    for (
      const line of ["retry_min_delay = 10m;", 'base_directory = "spool/ibdb";', 'mail_root = "mailboxes";']
    ) {
      assert.ok(out.includes(line), `${line} in\n${out}`);
    }
    assert.match(out, /^lda \{$/m);
    assert.match(out, /^smtps MTA \{$/m);
    assert.match(out, /port = 2600/);
    assert.match(out, /facility = local3;/);
    for (const unset of ["retry_max_delay", "max_threads", "heartbeat_interval", "io_timeout"]) {
      assert.ok(!out.includes(unset), `${unset} is a default: not printed\n${out}`);
    }
    const strip = (c: ReturnType<typeof parseConfig>) => ({ ...c, source: "", warnings: undefined });
    assert.deepEqual(strip(parseConfig(out, "n.conf")), strip(parseConfig(text, "smx.conf")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
