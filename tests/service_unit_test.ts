// deno task service: the systemd unit for a configuration outside the project runs the exact deno run
// line that configuration needs, as an unprivileged user, under systemd's sandbox (no new privileges, a
// read-only system but the queue, mail and log directories, private /tmp, no home, only
// CAP_NET_BIND_SERVICE for port 25), and systemd-analyze verify accepts it. Needs systemd-analyze
// (Debian's systemd, .ci/packages.d/operations.txt): without it the test fails in CI, is skipped elsewhere.

import assert from "node:assert/strict";
import { join } from "node:path";
import { runMain } from "../components/mcp/cli.ts";
import { service } from "../scripts/service.ts";

const ANALYZE = "/usr/bin/systemd-analyze";
const haveAnalyze = (() => {
  try {
    return Deno.statSync(ANALYZE).isFile;
  } catch {
    return false;
  }
})();

Deno.test("deno task service writes a sandboxed unit with the configuration's exact deno run line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-service-" });
  try {
    const etc = join(dir, "etc");
    const spool = join(dir, "spool");
    await Deno.mkdir(etc);
    const file = join(etc, "smx.conf");
    await Deno.writeTextFile(
      file,
      `CDB_base_directory = "${spool}/cdb";
qmgr { IBDB { base_directory = "${spool}/ibdb"; } DEFEDB { base_directory = "${spool}/defedb"; } }
smtps MTA { listen_socket { type = inet; address = 127.0.0.1; port = 25; } }
lda { mail_root = "${dir}/mail"; listen_socket { type = inet; address = 127.0.0.1; port = 24; } }
log { directory = "${dir}/log"; }
`,
    );
    const out = join(dir, "smx.service");
    assert.equal(
      await service(["-f", file, "--user", "smxd", "--output", out], { out: () => {}, err: () => {} }),
      0,
    );
    const unit = await Deno.readTextFile(out);
    const value = (key: string) =>
      unit.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
    assert.deepEqual(value("User"), ["smxd"]);
    for (
      const [key, want] of [
        ["NoNewPrivileges", "yes"],
        ["ProtectSystem", "strict"],
        ["PrivateTmp", "yes"],
        ["ProtectHome", "yes"],
        ["CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"],
        ["AmbientCapabilities", "CAP_NET_BIND_SERVICE"],
      ]
    ) assert.deepEqual(value(key), [want], key);
    const dirs = [`${spool}/cdb`, `${spool}/ibdb`, `${spool}/defedb`, `${dir}/mail`, `${dir}/log`];
    assert.deepEqual(
      value("ReadWritePaths")[0].split(" ").sort(),
      dirs.sort(),
      "only the queue, mail and log dirs",
    );
    // ExecStart is the line deno task start runs for this configuration, with deno's absolute path.
    const printed: string[] = [];
    await runMain(["--print-command", "-f", file], { out: (t) => printed.push(t), err: () => {} });
    assert.equal(value("ExecStart")[0], printed[0].replace(/^deno /, `${Deno.execPath()} `));
    if (!haveAnalyze && Deno.env.get("CI") !== "true") return; // systemd not installed here
    const verify = await new Deno.Command(ANALYZE, {
      args: ["verify", out],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const said = new TextDecoder().decode(verify.stderr) + new TextDecoder().decode(verify.stdout);
    assert.ok(verify.success, `systemd-analyze verify: ${said}`);
    assert.ok(!/smx\.service.*(error|unknown|ignoring)/i.test(said), said);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
