// Chaos: under a steady load (a few sessions sending one message after another), each worker in turn is
// terminated abruptly (Supervisor.kill: no shutdown, no goodbye) and the MCP restarts it. Afterwards every
// message that got a 250 has reached the sink at least once (queue ids of the 250s against the ids in
// the Received: headers the sink got; duplicates are allowed, losses are not), each worker was restarted
// and the MCP logged each restart. Failed submissions (4xx, refused connections) are expected while
// smtps or qmgr is down; only what was acknowledged counts.

import assert from "node:assert/strict";
import type { WorkerName } from "../components/protocol/messages.ts";
import { log } from "../components/util/log.ts";
import { startTestMta } from "./helpers/mta.ts";
import { smtpSend } from "./helpers/smtp_client.ts";
import { startSink } from "./helpers/smtp_sink.ts";

const LOAD_MS = 10_000;
const SESSIONS = 3;
const VICTIMS: WorkerName[] = ["qmgr", "smar", "smtpc", "smtps"];
const decoder = new TextDecoder();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The queue id in the first Received: header of delivered content. */
function receivedId(data: Uint8Array): string | undefined {
  const header = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*/.exec(decoder.decode(data.subarray(0, 2048)))?.[0];
  return header && /\bid ([0-9A-F]+)\b/.exec(header)?.[1];
}

Deno.test("every acknowledged message is delivered while each worker in turn is killed and restarted", async () => {
  const sink = await startSink();
  const mta = await startTestMta({
    mailertable: `example.com\t${sink.port}^esmtp:[127.0.0.1]\n`,
    // Workers log warnings and errors only (thousands of messages); the MCP logs its restarts as usual.
    adjust: (c) => {
      for (const section of [c.qmgr, c.smtpc, c.smar, ...c.smtps]) section.log_level = 4;
    },
  });
  const mcpLines: string[] = [];
  log.setSink((line) => line.includes(" smx/mcp[") && mcpLines.push(line));
  const accepted = new Set<string>();
  let refused = 0;
  let running = true;
  try {
    const sender = async (n: number) => {
      for (let i = 0; running; i++) {
        try {
          const reply = await smtpSend(mta.port, {
            from: `load${n}@sender.test`,
            to: [`r${n}@example.com`],
            body: `Subject: chaos ${n}.${i}\r\n\r\nmessage ${i} of session ${n}\r\n`,
          }, { timeoutMs: 15_000 });
          const id = /^250 .*queued as ([0-9A-F]+)$/.exec(reply)?.[1];
          if (id) accepted.add(id);
          else refused++;
          await sleep(5); // a steady load, not a flood: the machine is shared
        } catch {
          refused++; // smtps or qmgr was down: a 4xx, a refused or dropped connection
          await sleep(50);
        }
      }
    };
    const senders = Array.from({ length: SESSIONS }, (_, n) => sender(n));

    const sup = mta.mta.supervisor;
    const pause = LOAD_MS / (VICTIMS.length + 1);
    for (const name of VICTIMS) {
      await sleep(pause);
      const generation = sup.generation(name);
      sup.kill(name);
      const deadline = Date.now() + 15_000;
      while (!(sup.generation(name) > generation && sup.isReady(name))) {
        assert.ok(Date.now() < deadline, `${name} was not restarted within 15 s`);
        await sleep(20);
      }
    }
    await sleep(pause);
    running = false;
    await Promise.all(senders);

    assert.ok(accepted.size > 0, "some messages were acknowledged");
    const delivered = new Set<string>();
    const deadline = Date.now() + 20_000;
    while ([...accepted].some((id) => !delivered.has(id)) && Date.now() < deadline) {
      for (const m of sink.messages) {
        const id = receivedId(m.data);
        if (id) delivered.add(id);
      }
      await sleep(100);
    }
    const lost = [...accepted].filter((id) => !delivered.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${accepted.size} acknowledged messages were not delivered`);

    for (const name of VICTIMS) {
      assert.ok(sup.restarts(name) >= 1, `${name} restarts counted`);
      assert.ok(
        mcpLines.some((l) =>
          new RegExp(`smx\\/mcp\\[\\d+\\]: ${name} restarted as generation \\d+ \\(restart \\d+\\)`).test(l)
        ),
        `the MCP logged the restart of ${name}`,
      );
      assert.ok(mcpLines.some((l) => l.includes(`: warning: ${name}#`) && l.endsWith("died: killed")));
    }
    console.log(`chaos: ${accepted.size} acknowledged, ${refused} refused, ${sink.count} deliveries`);
  } finally {
    running = false;
    log.setSink(undefined);
    await mta.stop();
    await sink.close();
  }
});
