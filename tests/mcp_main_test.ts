// The command line (runMain, behind `deno task start`): usage errors, -h, -V, configuration errors, and
// the message naming each missing permission with the exact `deno run` line to use. Nothing here starts
// the MTA: permission lookups are injected so the process seems to lack what the case needs.

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatConfig, loadConfig } from "../config/mod.ts";
import { runMain } from "../components/mcp/cli.ts";

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs the command line; `granted` decides each permission lookup (everything when absent). */
async function main(args: string[], granted?: (d: Deno.PermissionDescriptor) => boolean): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runMain(args, {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    query: granted ? (d) => ({ state: granted(d) ? "granted" : "prompt" }) : undefined,
    resolvConf: "/etc/resolv.conf",
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const nothing = () => false;

Deno.test("runMain() answers usage errors with 64 and -h with the usage", async () => {
  const cases: { args: string[]; code: number; err: RegExp }[] = [
    { args: ["-x"], code: 64, err: /^smx: Unknown option '-x'\nusage: deno task start/ },
    { args: ["--frobnicate"], code: 64, err: /^smx: Unknown option '--frobnicate'/ },
    { args: ["stray"], code: 64, err: /^smx: .*stray/ },
    { args: ["-f"], code: 64, err: /^smx: Option '-f, --file <value>' argument missing/ },
  ];
  for (const c of cases) {
    const r = await main(c.args, nothing);
    assert.equal(r.code, c.code, c.args.join(" "));
    assert.match(r.err, c.err, c.args.join(" "));
  }
  const help = await main(["-h"], nothing);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: deno task start \[-f FILE\] \[-V\] \[-h\]\n {2}-f FILE/);
});

Deno.test("runMain() -V prints the configuration as understood, and exits 0", async () => {
  const r = await main(["-V"]);
  assert.equal(r.code, 0);
  assert.deepEqual(await main(["--", "-V"]), r);
  assert.equal(r.out, formatConfig(await loadConfig()));
  assert.match(r.out, /port = 2525;/);
});

Deno.test("runMain() reports a configuration error as file:line:col with exit code 78", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-main-" });
  try {
    const file = join(dir, "smx.conf");
    await Deno.writeTextFile(file, 'hostname = "a";\nqmgr { retry_min_delay = soon; }\n');
    const bad = await main(["-f", file]);
    assert.equal(bad.code, 78);
    assert.match(bad.err, new RegExp(`^smx: ${file}:2:26: `));
    const missing = await main(["-f", join(dir, "none.conf")]);
    assert.equal(missing.code, 78);
    assert.match(missing.err, /none\.conf:0:0: cannot read the configuration file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runMain() names the missing permissions and the exact deno run line, exit code 77", async () => {
  const r = await main([], nothing);
  assert.equal(r.code, 77);
  assert.equal(
    r.err,
    [
      "smx: Start the MTA: this process lacks permissions the components need: read components, read config, " +
      "read var/cdb, read var/ibdb, read var/defedb, read /etc/resolv.conf, read var/mail, write var/cdb, " +
      "write var/ibdb, write var/defedb, write var/mail, net (any host)",
      "smx: run it as:",
      "  deno run --unstable-worker-options " +
      "--allow-read=components,config,var/cdb,var/ibdb,var/defedb,/etc/resolv.conf,var/mail " +
      "--allow-write=var/cdb,var/ibdb,var/defedb,var/mail --allow-net components/mcp/main.ts",
    ].join("\n"),
  );
  const onlyNet = await main([], (d) => d.name !== "net");
  assert.equal(onlyNet.code, 77);
  assert.match(onlyNet.err, /lacks permissions the components need: net \(any host\)\n/);
});

Deno.test("runMain() quotes what the shell would split in the suggested command line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx main " });
  try {
    const file = join(dir, "my smx.conf");
    await Deno.writeTextFile(file, "");
    const r = await main(["-f", file], (d) => d.name === "read" && d.path === file);
    assert.equal(r.code, 77);
    const line = r.err.split("\n").at(-1)!;
    assert.ok(line.startsWith("  deno run --unstable-worker-options '--allow-read=components,config,"), line);
    assert.ok(line.endsWith(` components/mcp/main.ts -f '${file}'`), line);
    const unreadable = await main(["-f", file], nothing);
    assert.equal(unreadable.code, 77);
    assert.equal(
      unreadable.err,
      `smx: Read the configuration: no read permission for ${file}: add --allow-read=${file}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
