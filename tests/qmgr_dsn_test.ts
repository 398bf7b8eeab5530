// DSNs (RFC 3461/3464) made by qmgr, run in-process with a test clock: a bounce parsed back field by field,
// RET=HDRS and header_only, merged failures and max_errors_per_DSN, a delay notice at queue_delay_timeout,
// success notices, NOTIFY=NEVER, and mail from <> whose failure goes to postmaster and no further.

import assert from "node:assert/strict";
import { join } from "node:path";
import { describeDuration, dsnHead, type DsnReport, dsnTail, rfc5322Date } from "../components/mail/dsn.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { type InProcessQmgr, MX, startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";

/** A DSN taken apart: top headers, and each MIME part's headers and body. */
interface ParsedDsn {
  headers: Map<string, string>;
  parts: { headers: Map<string, string>; body: string }[];
  /** The delivery-status fields: the per-message block, then one block per recipient. */
  status: Map<string, string>[];
}

function splitHead(text: string): [Map<string, string>, string] {
  const end = text.indexOf("\r\n\r\n");
  const head = end < 0 ? text : text.slice(0, end);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r\n[ \t]+/g, " ").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return [headers, end < 0 ? "" : text.slice(end + 4)];
}

function parseDsn(text: string): ParsedDsn {
  const [headers, body] = splitHead(text);
  const boundary = /boundary="([^"]+)"/.exec(headers.get("content-type") ?? "")?.[1];
  assert.ok(boundary, "a multipart boundary");
  const chunks = body.split(`--${boundary}`);
  assert.equal(chunks.at(-1)!.trim(), "--", "the closing delimiter ends the report");
  const parts = chunks.slice(1, -1).map((c) => {
    const [h, b] = splitHead(c.replace(/^\r\n/, ""));
    return { headers: h, body: b };
  });
  const report = parts.find((p) => p.headers.get("content-type") === "message/delivery-status");
  const status = (report?.body ?? "").trim().split("\r\n\r\n").map((blockText) =>
    splitHead(blockText + "\r\n\r\n")[0]
  );
  return { headers, parts, status };
}

async function deliveredDsns(q: InProcessQmgr, n: number): Promise<ParsedDsn[]> {
  await until(() => q.delivered.filter((d) => d.ta.sender === "").length >= n, `${n} DSN(s) to be delivered`);
  return q.delivered.filter((d) => d.ta.sender === "").map((d) => parseDsn(d.content));
}

async function queueEmpty(q: InProcessQmgr): Promise<boolean> {
  for await (const sub of Deno.readDir(q.config.CDB_base_directory)) {
    for await (const _ of Deno.readDir(join(q.config.CDB_base_directory, sub.name))) return false;
  }
  return true;
}

Deno.test("a bounce carries every RFC 3464 field, and they parse back one by one", async (t) => {
  const q = await startInProcessQmgr();
  try {
    q.script.answer = () => ({
      status: "perm",
      reply: "550 5.1.1 <bob@dest.test>: Recipient address rejected",
    });
    const env = await q.submit(
      [{ address: "bob@dest.test", orcpt: "rfc822;Bob@Orig.test", notify: ["FAILURE"] }],
      { envid: "ENV-42", ret: "FULL" },
    );
    const [dsn] = await deliveredDsns(q, 1);
    const sent = q.delivered.find((d) => d.ta.sender === "")!.ta;

    await t.step("it is a new message from <> to the original sender, without NOTIFY", () => {
      assert.notEqual(sent.messageId, env.id);
      assert.deepEqual(sent.recipients.map((r) => [r.address, r.notify]), [["alice@sender.test", undefined]]);
    });
    const cases: [string, string | undefined, string | RegExp][] = [
      ["From", dsn.headers.get("from"), "Mail Delivery System <MAILER-DAEMON@mx.local.test>"],
      ["To", dsn.headers.get("to"), "<alice@sender.test>"],
      ["Subject", dsn.headers.get("subject"), "Undelivered Mail Returned to Sender"],
      ["Auto-Submitted", dsn.headers.get("auto-submitted"), "auto-replied"],
      ["Content-Type", dsn.headers.get("content-type"), /^multipart\/report; report-type=delivery-status;/],
      ["Reporting-MTA", dsn.status[0].get("reporting-mta"), "dns; mx.local.test"],
      ["Original-Envelope-Id", dsn.status[0].get("original-envelope-id"), "ENV-42"],
      ["Arrival-Date", dsn.status[0].get("arrival-date"), rfc5322Date(env.arrival)],
      ["Final-Recipient", dsn.status[1].get("final-recipient"), "rfc822; bob@dest.test"],
      ["Original-Recipient", dsn.status[1].get("original-recipient"), "rfc822; Bob@Orig.test"],
      ["Action", dsn.status[1].get("action"), "failed"],
      ["Status", dsn.status[1].get("status"), "5.1.1"],
      ["Remote-MTA", dsn.status[1].get("remote-mta"), `dns; ${MX.name}`],
      [
        "Diagnostic-Code",
        dsn.status[1].get("diagnostic-code"),
        "smtp; 550 5.1.1 <bob@dest.test>: Recipient address rejected",
      ],
      [
        "Last-Attempt-Date",
        dsn.status[1].get("last-attempt-date"),
        /^[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} /,
      ],
    ];
    for (const [field, got, want] of cases) {
      await t.step(`${field} is right`, () => {
        if (typeof want === "string") assert.equal(got, want);
        else assert.match(got ?? "", want);
      });
    }
    await t.step("three parts: the text, the report, the whole original (RET=FULL)", () => {
      assert.deepEqual(dsn.parts.map((p) => p.headers.get("content-type")), [
        "text/plain; charset=us-ascii",
        "message/delivery-status",
        "message/rfc822",
      ]);
      assert.match(dsn.parts[0].body, /<bob@dest\.test>: host mx\.dest\.test said: 550 5\.1\.1/);
      assert.match(
        dsn.parts[2].body,
        new RegExp(`^Received: from client\\.test\\r\\nSubject: Test ${env.id}`),
      );
      assert.match(dsn.parts[2].body, /\r\n\r\nHello,\r\nthis is the body\.\r\n/);
    });
    await t.step("the original and the DSN leave the queue once delivered", async () => {
      await until(() => queueEmpty(q), "an empty queue");
    });
  } finally {
    await q.stop();
  }
});

Deno.test("what a DSN returns of the original", async (t) => {
  const cases: { label: string; ret?: "FULL" | "HDRS"; headerOnly: boolean; want: string }[] = [
    {
      label: "RET=HDRS returns the header only",
      ret: "HDRS",
      headerOnly: false,
      want: "text/rfc822-headers",
    },
    { label: "no RET returns the whole message", headerOnly: false, want: "message/rfc822" },
    {
      label: "DSN_handling header_only overrides RET=FULL",
      ret: "FULL",
      headerOnly: true,
      want: "text/rfc822-headers",
    },
  ];
  for (const c of cases) {
    await t.step(c.label, async () => {
      const q = await startInProcessQmgr({
        adjust: (cfg) => cfg.qmgr.DSN_handling.flags.header_only = c.headerOnly,
      });
      try {
        q.script.answer = () => "perm";
        await q.submit(["bob@dest.test"], c.ret ? { ret: c.ret } : {});
        const [dsn] = await deliveredDsns(q, 1);
        const returned = dsn.parts[2];
        assert.equal(returned.headers.get("content-type"), c.want);
        const hasBody = returned.body.includes("this is the body");
        assert.equal(hasBody, c.want === "message/rfc822");
      } finally {
        await q.stop();
      }
    });
  }
  await t.step("without MIME_Format the DSN is plain text with the same fields", () => {
    const report: DsnReport = {
      reportingMta: "mx.local.test",
      queueId: "0123456789ABCDEF0123",
      arrival: 1_700_000_000_000,
      date: 1_700_000_060_000,
      to: "alice@sender.test",
      recipients: [{ address: "bob@dest.test", action: "failed", status: "5.1.1", reason: "no such user" }],
      returns: "headers",
      mime: false,
      boundary: "b",
      messageId: "x@mx.local.test",
    };
    const text = dsnHead(report) + "Subject: hi\r\n" + dsnTail(report);
    assert.doesNotMatch(text, /MIME-Version|multipart/);
    assert.match(
      text,
      /\r\nFinal-Recipient: rfc822; bob@dest\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\n/,
    );
    assert.match(text, /--- Undelivered Message Headers ---\r\n\r\nSubject: hi\r\n$/);
  });
});

Deno.test("failures of one message are merged into one DSN, up to max_errors_per_DSN", async (t) => {
  await t.step(
    "failures close together, one recipient still deferred: one DSN after the merge delay",
    async () => {
      const q = await startInProcessQmgr({ adjust: (cfg) => cfg.qmgr.DSN_handling.merge_delay_max = 300 });
      try {
        q.script.answer = (ta, r) =>
          ta.sender === "" ? "sent" : r.address.startsWith("later") ? "temp" : "perm";
        await q.submit(["a@dest.test", "b@gone.test", "later@dest.test", "c@dest.test"]);
        const [dsn] = await deliveredDsns(q, 1);
        const finals = dsn.status.slice(1).map((b) => b.get("final-recipient"));
        assert.deepEqual(finals.sort(), [
          "rfc822; a@dest.test",
          "rfc822; b@gone.test",
          "rfc822; c@dest.test",
        ]);
        const routeFailure = dsn.status.find((b) => b.get("final-recipient") === "rfc822; b@gone.test")!;
        assert.equal(routeFailure.get("remote-mta"), undefined, "no server answered for a route failure");
        assert.match(dsn.parts[0].body, /<b@gone\.test>: Host or domain name not found/);
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(q.delivered.filter((d) => d.ta.sender === "").length, 1, "still one DSN");
      } finally {
        await q.stop();
      }
    },
  );
  await t.step("five failures with max_errors_per_DSN = 2 make DSNs of 2, 2 and 1", async () => {
    const q = await startInProcessQmgr({ adjust: (cfg) => cfg.qmgr.max_errors_per_DSN = 2 });
    try {
      q.script.answer = (ta) => ta.sender === "" ? "sent" : "perm";
      await q.submit(["r1@dest.test", "r2@dest.test", "r3@dest.test", "r4@dest.test", "r5@dest.test"]);
      const dsns = await deliveredDsns(q, 3);
      assert.deepEqual(dsns.map((d) => d.status.length - 1).sort(), [1, 2, 2]);
      await until(() => queueEmpty(q), "an empty queue");
    } finally {
      await q.stop();
    }
  });
});

Deno.test("describeDuration() names a duration in its largest units, rounded down", () => {
  const cases: [ms: number, text: string][] = [
    [0, "0 seconds"],
    [1_000, "1 second"],
    [59_999, "59 seconds"],
    [30 * 60_000 + 5_000, "30 minutes"],
    [3_600_000, "1 hour"],
    [90 * 60_000, "1 hour 30 minutes"],
    [4 * 3_600_000 + 1_000, "4 hours"],
    [5 * 86_400_000, "5 days"],
    [36 * 3_600_000, "1 day 12 hours"],
  ];
  for (const [ms, text] of cases) assert.equal(describeDuration(ms), text, `${ms} ms`);
});

Deno.test("a delay notice goes out once at queue_delay_timeout, as NOTIFY allows", async () => {
  // Under an hour: the notice says 30 minutes (it used to say "for more than 0 hour(s)").
  const q = await startInProcessQmgr({ adjust: (cfg) => cfg.qmgr.queue_delay_timeout = 30 * 60_000 });
  const socket = controlSocketPath(q.config);
  const quiet = { out: () => {}, err: () => {} };
  try {
    q.script.answer = (ta) => ta.sender === "" ? "sent" : "temp";
    const env = await q.submit([
      "plain@dest.test",
      { address: "never@dest.test", notify: ["NEVER"] },
      { address: "success-only@dest.test", notify: ["SUCCESS"] },
    ]);
    await until(() => q.delivered.length === 1, "the first attempt");
    assert.equal(q.delivered.filter((d) => d.ta.sender === "").length, 0, "no notice before the timeout");

    q.clock.offset += q.config.qmgr.queue_delay_timeout + 1_000;
    assert.equal(await qmgrctl(["--socket", socket, "flush"], quiet), 0);
    const [dsn] = await deliveredDsns(q, 1);
    assert.equal(dsn.headers.get("subject"), "Delayed Mail (still being retried)");
    assert.deepEqual(dsn.status.slice(1).map((b) => b.get("final-recipient")), ["rfc822; plain@dest.test"]);
    const block = dsn.status[1];
    assert.equal(block.get("action"), "delayed");
    assert.equal(block.get("status"), "4.3.0");
    assert.match(dsn.parts[0].body, /could not be delivered for more than 30 minutes\./);
    assert.ok(block.get("last-attempt-date"), "Last-Attempt-Date");
    assert.equal(
      block.get("will-retry-until"),
      rfc5322Date(env.arrival + q.config.qmgr.queue_return_timeout),
    );
    assert.equal(dsn.parts[2].headers.get("content-type"), "text/rfc822-headers");

    const attempts = q.delivered.length;
    assert.equal(await qmgrctl(["--socket", socket, "flush"], quiet), 0);
    await until(() => q.delivered.length > attempts, "the next attempt");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(q.delivered.filter((d) => d.ta.sender === "").length, 1, "one delay notice per recipient");
  } finally {
    await q.stop();
  }
});

Deno.test("a recipient still deferred at queue_return_timeout fails with 4.4.7 and how long it was tried", async () => {
  const q = await startInProcessQmgr();
  const socket = controlSocketPath(q.config);
  const quiet = { out: () => {}, err: () => {} };
  try {
    q.script.answer = (ta) =>
      ta.sender === "" ? "sent" : { status: "temp", reply: "451 4.7.1 Try again later" };
    await q.submit([{ address: "slow@dest.test", notify: ["FAILURE"] }]);
    await until(() => q.delivered.length === 1, "the first attempt");
    q.clock.offset += q.config.qmgr.queue_return_timeout + 1_000;
    assert.equal(await qmgrctl(["--socket", socket, "flush"], quiet), 0);
    const [dsn] = await deliveredDsns(q, 1);
    assert.equal(dsn.headers.get("subject"), "Undelivered Mail Returned to Sender");
    const block = dsn.status[1];
    assert.equal(block.get("action"), "failed");
    assert.equal(block.get("status"), "4.4.7");
    assert.equal(block.get("diagnostic-code"), "smtp; 451 4.7.1 Try again later");
    assert.ok(block.get("last-attempt-date"), "Last-Attempt-Date");
    assert.match(
      dsn.parts[0].body,
      /<slow@dest\.test>: delivery time expired: tried for 5 days \(2 attempts\), last error: 451 4\.7\.1/,
    );
  } finally {
    await q.stop();
  }
});

Deno.test("success notices: only for NOTIFY=SUCCESS, and only where the next hop does not take DSN over", async (t) => {
  const cases: { label: string; address: string; dsn: boolean; action?: string }[] = [
    { label: "relayed to a host without DSN", address: "s@dest.test", dsn: false, action: "relayed" },
    { label: "relayed to a host with DSN: its job", address: "s@dest.test", dsn: true },
    { label: "a final delivery over LMTP", address: "user@mx.local.test", dsn: true, action: "delivered" },
  ];
  for (const c of cases) {
    await t.step(c.label, async () => {
      const q = await startInProcessQmgr();
      try {
        q.script.dsn = c.dsn;
        await q.submit([{ address: c.address, notify: ["SUCCESS"] }, "nosuccess@dest.test"]);
        await until(() => queueEmpty(q), "the queue to empty");
        const dsns = q.delivered.filter((d) => d.ta.sender === "").map((d) => parseDsn(d.content));
        if (c.action === undefined) return assert.equal(dsns.length, 0);
        assert.equal(dsns.length, 1);
        assert.equal(dsns[0].headers.get("subject"), "Successful Mail Delivery Report");
        assert.deepEqual(dsns[0].status.slice(1).map((b) => [b.get("final-recipient"), b.get("action")]), [
          [`rfc822; ${c.address}`, c.action],
        ]);
      } finally {
        await q.stop();
      }
    });
  }
});

Deno.test("mail from <> is never returned: its failure goes to postmaster, a failed notice there is dropped", async (t) => {
  const q = await startInProcessQmgr();
  try {
    q.script.answer = (_ta, r) =>
      r.address.startsWith("postmaster") ? "perm" : r.address === "bob@dest.test" ? "perm" : "sent";
    await t.step("a failed DSN (from <>) produces a notice to postmaster@hostname", async () => {
      await q.submit(["bob@dest.test"], { sender: "" });
      await until(
        () => q.delivered.some((d) => d.ta.recipients[0].address === "postmaster@mx.local.test"),
        "the notice to postmaster",
      );
      const notice = q.delivered.find((d) => d.ta.recipients[0].address === "postmaster@mx.local.test")!;
      assert.equal(notice.ta.sender, "");
      assert.equal(parseDsn(notice.content).status[1].get("final-recipient"), "rfc822; bob@dest.test");
    });
    await t.step("the notice to postmaster fails too: logged and dropped, nothing more is sent", async () => {
      await until(() => queueEmpty(q), "the queue to empty");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(q.delivered.length, 2, "the message and the postmaster notice, nothing else");
    });
    await t.step("a bounce whose delivery to the sender fails goes to postmaster", async () => {
      q.delivered.length = 0;
      q.script.answer = (_ta, r) => r.address === "postmaster@mx.local.test" ? "sent" : "perm";
      await q.submit(["bob@dest.test"]);
      await until(() => queueEmpty(q), "the queue to empty");
      assert.deepEqual(q.delivered.map((d) => [d.ta.sender, d.ta.recipients[0].address]), [
        ["alice@sender.test", "bob@dest.test"],
        ["", "alice@sender.test"],
        ["", "postmaster@mx.local.test"],
      ]);
    });
  } finally {
    await q.stop();
  }
});

Deno.test("NOTIFY=NEVER and NOTIFY without FAILURE: a failed recipient gets no bounce", async () => {
  const q = await startInProcessQmgr();
  try {
    q.script.answer = (ta) => ta.sender === "" ? "sent" : "perm";
    await q.submit([
      { address: "never@dest.test", notify: ["NEVER"] },
      { address: "delay-only@dest.test", notify: ["DELAY"] },
      "default@dest.test",
    ]);
    const [dsn] = await deliveredDsns(q, 1);
    assert.deepEqual(dsn.status.slice(1).map((b) => b.get("final-recipient")), ["rfc822; default@dest.test"]);
    await until(() => queueEmpty(q), "an empty queue");
    assert.equal(q.delivered.filter((d) => d.ta.sender === "").length, 1);
  } finally {
    await q.stop();
  }
});

Deno.test("failures answered in one transaction leave in one DSN even when merge_delay_max is 0", async () => {
  const q = await startInProcessQmgr(); // its configuration has merge_delay_max = 0
  try {
    q.script.answer = (ta) => ta.sender === "" ? "sent" : "perm";
    const rcpts = ["r1@dest.test", "r2@dest.test", "r3@dest.test", "r4@dest.test", "r5@dest.test"];
    await q.submit(rcpts);
    await until(() => q.delivered.some((d) => d.ta.sender === ""), "a DSN");
    await new Promise((r) => setTimeout(r, 200)); // a second DSN, if any, would be made by now
    const dsns = q.delivered.filter((d) => d.ta.sender === "");
    assert.equal(dsns.length, 1, `expected one DSN, got ${dsns.length}`);
    const finals = [...dsns[0].content.matchAll(/^Final-Recipient: rfc822; (.*)\r$/gm)].map((m) => m[1])
      .sort();
    assert.deepEqual(finals, rcpts);
  } finally {
    await q.stop();
  }
});
