// Postfix-style policy delegation from smtps (policy_service): postgrey (Debian's, a real greylisting
// policy server) decides RCPT over one reused connection; an in-test server shows the attributes sent
// at RCPT, DATA and END-OF-MESSAGE and each action's effect (OK, REJECT, DEFER, DEFER_IF_PERMIT, 4xx/5xx
// text, PREPEND, HOLD, DISCARD, REDIRECT); a service that fails gets its default_action.

import assert from "node:assert/strict";
import type { PolicyServiceConfig } from "../config/types.ts";
import { cdbText } from "./helpers/cdb.ts";
import { haveTool, POSTGREY, startPostgrey } from "./helpers/filters.ts";
import { type Decide, startPolicyServer } from "./helpers/policy_server.ts";
import { runDialogue, SmtpClient, type Smtps, startSmtps, type Step } from "./helpers/smtps_dialogue.ts";

function service(port: number, more: Partial<PolicyServiceConfig> = {}): PolicyServiceConfig {
  return {
    socket: { type: "inet", address: "127.0.0.1", port },
    timeout: 2_000,
    default_action: "451 4.7.1 Policy service unavailable, try again later",
    stages: ["rcpt"],
    ...more,
  };
}

async function session(port: number, steps: Step[]): Promise<void> {
  const c = await SmtpClient.connect(port);
  try {
    await runDialogue(c, [[null, 220], ["EHLO client.test", 250], ...steps, ["QUIT", 221]]);
  } finally {
    c.close();
  }
}

const text = async (smtps: Smtps, i: number) => await cdbText(smtps.envelopes[i].cdbPath);

Deno.test("postgrey greylists RCPT through policy_service, then lets it in with its X-Greylist header", async () => {
  if (!await haveTool(POSTGREY, "postgrey")) return;
  const dir = await Deno.makeTempDir({ prefix: "postgrey-" });
  const grey = await startPostgrey(dir, 1);
  const smtps = await startSmtps({ policy_service: [service(grey.port, { timeout: 10_000 })] }, {}, {
    net: [`127.0.0.1:${grey.port}`],
  });
  try {
    await session(smtps.port, [
      ["MAIL FROM:<alice@sender.test>", 250],
      ["RCPT TO:<bob@example.com>", "450 4.2.0 Greylisted"],
    ]);
    await new Promise((r) => setTimeout(r, 2_100)); // postgrey's delay: 1 s, at second granularity
    await session(smtps.port, [
      ["MAIL FROM:<alice@sender.test>", 250],
      ["RCPT TO:<bob@example.com>", 250],
      ["DATA", 354],
      ["Subject: greylisted\r\n\r\nhello\r\n.", 250],
    ]);
    assert.match(
      await text(smtps, 0),
      /^X-Greylist: delayed \d+ seconds by postgrey-[\d.]+ at .*\r\nReceived: /,
    );
  } finally {
    await smtps.stop();
    await grey.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy_service sends Postfix's attributes and its actions take effect", async () => {
  const decide: Decide = (r) => {
    if (r.protocol_state === "END-OF-MESSAGE") {
      return r.sender === "hold@sender.test" ? "HOLD spam check" : "DUNNO";
    }
    if (r.protocol_state === "DATA") {
      return r.sender === "nodata@sender.test" ? "554 5.7.0 No data for you" : "DUNNO";
    }
    const local = r.recipient.split("@")[0];
    return ({
      ok: "OK",
      reject: "REJECT Go away",
      defer: "DEFER 4.2.0 later",
      dip: "DEFER_IF_PERMIT Greylisted",
      dir: "DEFER_IF_REJECT maybe",
      code: "521 5.7.2 No thanks",
      prepend: "PREPEND X-Policy: seen",
      badprepend: "PREPEND no colon here",
      discard: "DISCARD",
      redirect: "REDIRECT postmaster@example.com",
      weird: "FROBNICATE",
    } as Record<string, string>)[local] ?? "DUNNO";
  };
  const server = startPolicyServer(decide);
  const smtps = await startSmtps(
    {
      policy_service: [service(server.port, { stages: ["rcpt", "data", "end_of_data"] })],
    },
    {},
    { net: [`127.0.0.1:${server.port}`] },
  );
  try {
    await session(smtps.port, [
      ["MAIL FROM:<alice@sender.test> SIZE=100", 250],
      ["RCPT TO:<reject@example.com>", "554 5.7.1 Go away"],
      ["RCPT TO:<defer@example.com>", "450 4.2.0 later"],
      ["RCPT TO:<dip@example.com>", "450 4.7.1 Greylisted"],
      ["RCPT TO:<code@example.com>", "521 5.7.2 No thanks"],
      ["RCPT TO:<weird@example.com>", "451 4.3.5 Server configuration error"],
      ["RCPT TO:<dir@example.com>", 250],
      ["RCPT TO:<ok@example.com>", 250],
      ["RCPT TO:<prepend@example.com>", 250],
      ["RCPT TO:<badprepend@example.com>", 250],
      ["DATA", 354],
      ["Subject: one\r\n\r\nhello\r\n.", 250],
      ["MAIL FROM:<alice@sender.test>", 250],
      ["RCPT TO:<redirect@example.com>", 250],
      ["DATA", 354],
      ["Subject: two\r\n\r\nhello\r\n.", 250],
      ["MAIL FROM:<hold@sender.test>", 250],
      ["RCPT TO:<bob@example.com>", 250],
      ["DATA", 354],
      ["Subject: three\r\n\r\nhello\r\n.", 250],
      ["MAIL FROM:<nodata@sender.test>", 250],
      ["RCPT TO:<bob@example.com>", 250],
      ["DATA", "554 5.7.0 No data for you"],
      ["MAIL FROM:<alice@sender.test>", 250],
      ["RCPT TO:<discard@example.com>", 250],
      ["DATA", 354],
      ["Subject: four\r\n\r\nhello\r\n.", "250 2.0.0 Ok: queued as"],
    ]);
    assert.equal(smtps.envelopes.length, 3);
    assert.deepEqual(smtps.envelopes[0].recipients.map((r) => r.address), [
      "dir@example.com",
      "ok@example.com",
      "prepend@example.com",
      "badprepend@example.com",
    ]);
    assert.match(await text(smtps, 0), /^X-Policy: seen\r\nReceived: /);
    assert.doesNotMatch(await text(smtps, 0), /no colon/);
    assert.deepEqual(smtps.envelopes[1].recipients.map((r) => r.address), ["postmaster@example.com"]);
    assert.equal(smtps.envelopes[2].quarantine, "spam check");
    assert.equal(server.connections, 1); // one connection, reused for every request

    const rcpt = server.requests[0];
    assert.equal(rcpt.request, "smtpd_access_policy");
    assert.equal(rcpt.protocol_state, "RCPT");
    assert.equal(rcpt.protocol_name, "ESMTP");
    assert.equal(rcpt.client_address, "127.0.0.1");
    assert.equal(rcpt.helo_name, "client.test");
    assert.equal(rcpt.sender, "alice@sender.test");
    assert.equal(rcpt.recipient, "reject@example.com");
    assert.equal(rcpt.size, "100");
    assert.equal(rcpt.queue_id, "");
    const eom = server.requests.find((r) => r.protocol_state === "END-OF-MESSAGE")!;
    assert.equal(eom.recipient_count, "4");
    assert.equal(eom.queue_id, smtps.envelopes[0].id);
    assert.equal(eom.instance, rcpt.instance); // one instance for every request about one message
    assert.notEqual(server.requests.at(-1)!.instance, rcpt.instance);
  } finally {
    await smtps.stop();
    await server.close();
  }
});

Deno.test("a policy service that hangs, closes or answers garbage gets its default_action", async (t) => {
  for (const how of ["hang", "close", "garbage"] as const) {
    await t.step(how, async () => {
      const server = startPolicyServer(() => how);
      const smtps = await startSmtps(
        {
          policy_service: [service(server.port, { timeout: 1_000 })],
        },
        {},
        { net: [`127.0.0.1:${server.port}`] },
      );
      try {
        await session(smtps.port, [
          ["MAIL FROM:<alice@sender.test>", 250],
          ["RCPT TO:<bob@example.com>", "451 4.7.1 Policy service unavailable"],
        ]);
      } finally {
        await smtps.stop();
        await server.close();
      }
    });
  }
});
