// OpenDKIM (Debian's opendkim, a milter nobody here wrote) signs through smtps's policy_milter, and
// dkimpy (Debian's python3-dkim) verifies what smtps stored: the signature covers the header fields
// and body exactly as they sit in the queue, our Received: header included.

import assert from "node:assert/strict";
import { cdbText } from "./helpers/cdb.ts";
import { dkimVerify, haveTool, OPENDKIM, PYTHON, startOpendkim } from "./helpers/filters.ts";
import { runDialogue, SmtpClient, startSmtps } from "./helpers/smtps_dialogue.ts";

Deno.test("OpenDKIM signs two messages through policy_milter and dkimpy verifies both", async () => {
  if (!await haveTool(OPENDKIM, "opendkim") || !await haveTool(PYTHON, "python3 with python3-dkim")) return;
  const dir = await Deno.makeTempDir({ prefix: "opendkim-" });
  const dkim = await startOpendkim(dir);
  const smtps = await startSmtps(
    {
      policy_milter: [{
        socket: { type: "inet", address: "127.0.0.1", port: dkim.port },
        timeout: 10_000,
        flags: ["abort"],
        default_action: "tempfail",
      }],
    },
    {},
    { net: [`127.0.0.1:${dkim.port}`] },
  );
  try {
    const c = await SmtpClient.connect(smtps.port);
    const body = (n: number) =>
      [
        "From: Alice <alice@example.com>",
        "To: Bob <bob@example.net>",
        `Subject: signed message ${n}`,
        `Message-ID: <dkim-${n}@example.com>`,
        "Date: Fri, 04 Dec 2026 18:00:00 +0000",
        "",
        "Line one.",
        "..A line that starts with a dot.",
        "  trailing spaces  ",
        "",
        ".",
      ].join("\r\n");
    await runDialogue(c, [
      [null, 220],
      ["EHLO client.test", 250],
      ["MAIL FROM:<alice@example.com>", 250],
      ["RCPT TO:<bob@example.net>", 250],
      ["DATA", 354],
      [body(1), "250 2.0.0 Ok: queued as"],
      ["MAIL FROM:<alice@example.com>", 250],
      ["RCPT TO:<bob@example.net>", 250],
      ["DATA", 354],
      [body(2), "250 2.0.0 Ok: queued as"],
      ["QUIT", 221],
    ]);
    c.close();
    assert.equal(smtps.envelopes.length, 2);
    const first = `${dir}/stored.eml`;
    for (const env of smtps.envelopes) {
      const text = await cdbText(env.cdbPath); // the content, without the queue file's frame
      assert.match(text, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/simple; d=example\.com;/m);
      await Deno.writeTextFile(first, text);
      assert.equal(await dkimVerify(first, dkim.keyTxt), "pass");
    }
    // The check can fail: one changed byte in the body breaks the signature.
    const text = await Deno.readTextFile(first);
    await Deno.writeTextFile(first, text.replace("Line one.", "Line 1."));
    assert.match(await dkimVerify(first, dkim.keyTxt), /^fail/);
  } finally {
    await smtps.stop();
    await dkim.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
