// End to end: the whole MTA (MCP and its permission-scoped workers) with two policy_milters and a
// policy_service. smtps reaches them with only the permissions the MCP computed (a unix socket for the
// real Python milter on python3-milter, TCP for OpenDKIM); the Python milter's header and OpenDKIM's
// signature reach the delivered message, which dkimpy verifies; the Python milter's quarantine holds a
// message in the queue, `qmgrctl list --state hold` and `show` say why, `qmgrctl release` lets it go; a
// policy service's HOLD does the same.

import assert from "node:assert/strict";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import {
  dkimVerify,
  haveTool,
  OPENDKIM,
  PYTHON,
  startOpendkim,
  startProcess,
  TEST_MILTER,
} from "./helpers/filters.ts";
import { startTestMta } from "./helpers/mta.ts";
import { startPolicyServer } from "./helpers/policy_server.ts";
import { startSink } from "./helpers/smtp_sink.ts";
import { smtpSend } from "./helpers/smtp_client.ts";

async function ctl(socket: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await qmgrctl(["--socket", socket, ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const decoder = new TextDecoder();

Deno.test("the MTA's milter quarantine and a policy HOLD keep mail on hold until qmgrctl release", async () => {
  if (!await haveTool(PYTHON, "python3 with python3-milter") || !await haveTool(OPENDKIM, "opendkim")) return;
  const dir = await Deno.makeTempDir({ prefix: "e2e-filters-" });
  const logFile = `${dir}/milter.log`;
  const milterSocket = `${dir}/milter.sock`;
  const milter = await startProcess(PYTHON, [TEST_MILTER, `unix:${milterSocket}`, logFile], {
    path: milterSocket,
  });
  const dkim = await startOpendkim(dir);
  const policy = startPolicyServer((r) =>
    r.sender === "held@sender.test" ? "HOLD policy says wait" : "DUNNO"
  );
  const sink = await startSink();
  const mta = await startTestMta({
    mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n`,
    adjust(config) {
      config.smtps[0].policy_milter = [{
        socket: { type: "unix", path: milterSocket },
        timeout: 10_000,
        flags: ["abort"],
        default_action: "tempfail",
      }, {
        socket: { type: "inet", address: "127.0.0.1", port: dkim.port },
        timeout: 10_000,
        flags: ["abort"],
        default_action: "tempfail",
      }];
      config.smtps[0].policy_service = [{
        socket: { type: "inet", address: "127.0.0.1", port: policy.port },
        timeout: 10_000,
        default_action: "DUNNO",
        stages: ["rcpt"],
      }];
    },
  });
  const socket = controlSocketPath(mta.config);
  try {
    const send = (from: string, subject: string) =>
      smtpSend(mta.port, {
        from,
        to: ["bob@example.com"],
        body: `From: <alice@example.com>\r\nSubject: ${subject}\r\n\r\nhello\r\n`,
      });
    assert.match(await send("alice@sender.test", "plain"), /^250 /);
    await sink.waitFor(1, 15_000);
    const delivered = decoder.decode(sink.messages[0].data);
    assert.match(delivered, /^DKIM-Signature: /m);
    assert.match(delivered, /\r\nX-Test-Milter: checked by test milter\r\n\r\nhello/);
    await Deno.writeFile(`${dir}/delivered.eml`, sink.messages[0].data);
    assert.equal(await dkimVerify(`${dir}/delivered.eml`, dkim.keyTxt), "pass");

    const quarantined = (await send("alice@sender.test", "quarantine")).split(" ").at(-1)!;
    const held = (await send("held@sender.test", "plain")).split(" ").at(-1)!;
    const list = await ctl(socket, "--json", "list", "--state", "hold");
    assert.equal(list.code, 0, list.err);
    const rows = (JSON.parse(list.out) as { rows: { id: string; holdReason?: string }[] }).rows;
    assert.deepEqual(
      rows.map((r) => [r.id, r.holdReason]).sort(),
      [
        [quarantined, "held by test milter"],
        [held, "policy says wait"],
      ].sort(),
    );
    const show = await ctl(socket, "show", quarantined);
    assert.match(show.out, /\(on hold, quarantine: held by test milter\)/);
    assert.equal(sink.messages.length, 1); // nothing held was delivered

    for (const id of [quarantined, held]) assert.equal((await ctl(socket, "release", id)).code, 0);
    await sink.waitFor(3, 15_000);
    assert.equal((await ctl(socket, "--json", "list", "--state", "hold")).out.includes(quarantined), false);
  } finally {
    await mta.stop();
    await sink.close();
    await policy.close();
    await milter.stop();
    await dkim.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
