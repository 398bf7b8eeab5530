// The command line (runMain, behind `deno task start`): usage errors, -h, -V, configuration errors, and
// the message naming each missing permission with the exact `deno run` line to use. Nothing here starts
// the MTA: permission lookups are injected so the process seems to lack what the case needs.

import assert from "node:assert/strict";
import { join } from "node:path";
import { formatConfig, loadConfig } from "../config/mod.ts";
import type { InetListenSocket } from "../config/types.ts";
import { runMain } from "../components/mcp/cli.ts";
import { workerModules } from "../components/mcp/manifest.ts";

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

Deno.test("runMain() answers usage errors with 64 and -h with the usage and the defaults", async () => {
  const cases: { args: string[]; code: number; err: RegExp }[] = [
    { args: ["-x"], code: 64, err: /^smx: Unknown option '-x'\nusage: deno task start/ },
    { args: ["--frobnicate"], code: 64, err: /^smx: Unknown option '--frobnicate'/ },
    { args: ["stray"], code: 64, err: /^smx: .*stray/ },
    { args: ["-f"], code: 64, err: /^smx: Option '-f, --file <value>' argument missing/ },
    { args: ["-V", "-q"], code: 64, err: /^smx: Unknown option '-q'/ },
  ];
  for (const c of cases) {
    const r = await main(c.args, nothing);
    assert.equal(r.code, c.code, c.args.join(" "));
    assert.match(r.err, c.err, c.args.join(" "));
  }
  const help = await main(["-h"], nothing);
  assert.equal(help.code, 0);
  assert.match(
    help.out,
    /^usage: deno task start \[-f FILE\] \[-V\[V\[V\]\] \| -n \| --check\] \[--print-permissions\] \[--print-command\] \[-h\]\n {2}-f FILE/,
  );
  const c = await loadConfig();
  const first = c.smtps[0].listen_socket[0] as InetListenSocket;
  const listen = `${first.address}:${first.port}`;
  assert.ok(help.out.includes(`(default: the built-in configuration: smtps on\n`), help.out);
  assert.ok(help.out.includes(`${listen}, queue in ${c.CDB_base_directory}, `), help.out);
  assert.deepEqual(await main(["--help"], nothing), help);
});

Deno.test("runMain() -V prints the configuration as understood, more Vs add more, and exits 0", async () => {
  const r = await main(["-V"]);
  assert.equal(r.code, 0);
  assert.deepEqual(await main(["--", "-V"]), r);
  // With the ports smtpc may reach, which the built-in mailertable's lmtp: route (2424) adds to 25.
  const c = await loadConfig();
  assert.equal(r.out, formatConfig({ ...c, smtpc: { ...c.smtpc, ports: [25, 2424] } }).trimEnd());
  assert.match(r.out, /port = 2525;/);

  const vv = await main(["-VV"]);
  assert.equal(vv.code, 0);
  assert.ok(
    vv.out.startsWith(r.out + "\n\n# Derived by the MCP:\n"),
    vv.out.slice(r.out.length, r.out.length + 80),
  );
  assert.match(
    vv.out,
    /^# {3}qmgr: log_level 9 \(info\), restart_dependencies none, start_action wait, logs to stderr$/m,
  );
  assert.match(
    vv.out,
    /^# {3}smtps: log_level 9 \(info\), restart_dependencies none, start_action wait, workers [1-4] \(MTA [1-4]\), logs to stderr$/m,
  );
  assert.match(vv.out, /^# {3}ports smtpc may connect to \(25 and the mailertable's\): 25(, \d+)*$/m);
  assert.doesNotMatch(vv.out, /# Permission sets/);

  const vvv = await main(["-V", "-VV"]);
  assert.ok(vvv.out.startsWith(vv.out + "\n\n# Permission sets for the configuration <built-in>."));
  assert.match(
    vvv.out,
    /^qmgr:\n {2}read: var\/ibdb, var\/defedb, var\/cdb\b.*\n {2}write: var\/ibdb, var\/defedb, var\/cdb\b.*\n {2}net: .+\n {2}sys: .+$/m,
  );
});

Deno.test("runMain() --print-permissions prints each set and the deno run and deno compile lines", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-main-" });
  try {
    const file = join(dir, "smx.conf");
    const text = [
      `CDB_base_directory = "${dir}/cdb";`,
      `qmgr { IBDB { base_directory = "${dir}/ibdb"; } DEFEDB { base_directory = "${dir}/defedb"; } }`,
      `smtps { listen_socket { address = 127.0.0.1; port = 2600; } }`,
      `smar { nameserver = 127.0.0.1:5300; }`,
      `log { directory = "${dir}/log"; }`,
    ].join("\n");
    await Deno.writeTextFile(file, text);
    const r = await main(["--print-permissions", "-f", file]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split("\n");
    assert.equal(lines[0], `# Permission sets for the configuration ${file}.`);
    const at = (name: string) => lines.slice(lines.indexOf(`${name}:`) + 1, lines.indexOf(`${name}:`) + 4);
    assert.deepEqual(at("smtps"), [
      `  read: ${dir}/cdb`,
      `  write: ${dir}/cdb, ${dir}/log/smtps.log`,
      "  net: 127.0.0.1:2600",
    ]);
    assert.deepEqual(at("smar"), [
      "  read: none",
      `  write: ${dir}/log/smar.log`,
      "  net: 127.0.0.1:5300, 127.0.0.1:0",
    ]);
    const run = lines.find((l) => l.startsWith("deno run "));
    assert.equal(
      run,
      `deno run --unstable-worker-options --allow-read=components,config,${file},${dir}/cdb,${dir}/ibdb,${dir}/defedb ` +
        `--allow-write=${dir}/cdb,${dir}/ibdb,${dir}/defedb,${dir}/log --allow-net --allow-sys=statfs ` +
        `components/mcp/main.ts -f ${file}`,
    );
    const compile = lines.find((l) => l.startsWith("deno compile "));
    assert.equal(
      compile,
      `deno compile --unstable-worker-options --allow-read=${file},${dir}/cdb,${dir}/ibdb,${dir}/defedb ` +
        `--allow-write=${dir}/cdb,${dir}/ibdb,${dir}/defedb,${dir}/log --allow-net --allow-sys=statfs ` +
        workerModules().map((m) => `--include ${m} `).join("") +
        `--output smx components/mcp/main.ts -f ${file}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
      "write var/ibdb, write var/defedb, write var/mail, net (any host), sys statfs",
      "smx: run it as:",
      "  deno run --unstable-worker-options " +
      "--allow-read=components,config,var/cdb,var/ibdb,var/defedb,/etc/resolv.conf,var/mail " +
      "--allow-write=var/cdb,var/ibdb,var/defedb,var/mail --allow-net --allow-sys=statfs components/mcp/main.ts",
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
