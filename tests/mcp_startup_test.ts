// Start-up failures a restart cannot cure end the MTA at once with one line and a sysexits code: a listen
// address another program holds is `smtps: cannot listen on 127.0.0.1:PORT: address already in use` and
// exit code 69 (EX_UNAVAILABLE), with no restart of smtps and no stack trace in the reason.

import assert from "node:assert/strict";
import { StartError } from "../components/mcp/supervisor.ts";
import { runMain } from "../components/mcp/cli.ts";
import { join } from "node:path";
import { startTestMta, testConfigText } from "./helpers/mta.ts";

Deno.test("a listen address in use stops the MTA with one line and exit code 69, no restart loop", async () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (holder.addr as Deno.NetAddr).port;
  try {
    const err = await startTestMta({ smtpsPort: port }).then(
      () => assert.fail("the MTA started on a port in use"),
      (e) => e,
    );
    assert.ok(err instanceof StartError, String(err));
    assert.deepEqual(err.end, {
      code: 69,
      reason: `smtps: cannot listen on 127.0.0.1:${port}: address already in use`,
    });
    assert.ok(!/\n|\bat /.test(err.end.reason), "no stack trace");
  } finally {
    holder.close();
  }
});

Deno.test("--print-command prints the one deno run line a configuration outside the project needs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-etc-" });
  try {
    const file = `${dir}/smx.conf`;
    await Deno.writeTextFile(
      file,
      `CDB_base_directory = "${dir}/spool/cdb";\nqmgr { IBDB { base_directory = "${dir}/spool/ibdb"; } ` +
        `DEFEDB { base_directory = "${dir}/spool/defedb"; } }\n`,
    );
    const out: string[] = [];
    const code = await runMain(["--print-command", "-f", file], { out: (t) => out.push(t), err: () => {} });
    assert.equal(code, 0);
    assert.equal(out.length, 1);
    assert.match(out[0], /^deno run --unstable-worker-options --allow-read=\S*components,config,/);
    assert.ok(out[0].includes(file) && out[0].includes(`${dir}/spool/ibdb`), out[0]);
    assert.ok(out[0].endsWith(`components/mcp/main.ts -f ${file}`), out[0]);
    assert.ok(!out[0].includes("--print-command"), out[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtpc's start line and -V show the ports the mailertable routes to, not only 25", async () => {
  let logDir = "";
  const mta = await startTestMta({
    mailertable: "example.com\t2526^esmtp:[127.0.0.1]\nlocal.test\t2424^lmtp:[127.0.0.1]\n",
    adjust: (c) => {
      logDir = join(c.CDB_base_directory, "..", "log");
      c.log = { directory: logDir };
    },
  });
  try {
    const smtpc = await Deno.readTextFile(join(logDir, "smtpc.log"));
    assert.match(smtpc, /\]: started: io_timeout=\d+ ms, ports=25,2424,2526, /);
    const out: string[] = [];
    await Deno.writeTextFile(join(mta.dir, "smx.conf"), testConfigText(mta.dir, 2525));
    assert.equal(
      await runMain(["-V", "-f", join(mta.dir, "smx.conf")], { out: (t) => out.push(t), err: () => {} }),
      0,
    );
    assert.match(out.join("\n"), /# ports \(derived from the mailertable, not an option\): 25, 2424, 2526\n/);
  } finally {
    await mta.stop();
  }
});
