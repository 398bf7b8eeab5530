// qmgr and list owners (RecipientSpec.errorsTo, sendmail's owner- lists), run in-process: recipients
// with an owner leave in their own transactions with the owner as MAIL FROM, their failures are reported
// to the owner (merged per owner), mail from <> stays from <>; the DSN's addressee is expanded by smar
// (qmgr.expand), kept as it is when smar cannot answer; a failed notice to an expanded postmaster is
// dropped; and a queue file of an older qmgr gets the errors_to column.

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { DB_FILE, QueueStore } from "../components/qmgr/store.ts";
import type { Envelope } from "../components/protocol/messages.ts";
import { type Delivered, type InProcessQmgr, startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";

const OWNER = "owner-staff@mx.local.test";

/** Each transaction as `sender -> recipient, recipient`. */
function transactions(list: Delivered[]): string[] {
  return list.map((d) => `${d.ta.sender || "<>"} -> ${d.ta.recipients.map((r) => r.address).join(", ")}`);
}

const dsns = (q: InProcessQmgr) => q.delivered.filter((d) => d.ta.sender === "");
const finals = (d: Delivered) =>
  [...d.content.matchAll(/^Final-Recipient: rfc822; (.*)\r$/gm)].map((m) => m[1]).sort();
const toHeader = (d: Delivered) => /^To: (.*)\r$/m.exec(d.content)?.[1];

async function queueEmpty(q: InProcessQmgr): Promise<boolean> {
  for await (const sub of Deno.readDir(q.config.CDB_base_directory)) {
    for await (const _ of Deno.readDir(join(q.config.CDB_base_directory, sub.name))) return false;
  }
  return true;
}

Deno.test("recipients of a list with an owner leave with the owner as MAIL FROM, and bounce to it", async (t) => {
  const q = await startInProcessQmgr();
  try {
    q.script.answer = (ta) => ta.sender === "" ? "sent" : "perm";
    await q.submit([
      "direct@dest.test",
      { address: "m1@dest.test", errorsTo: OWNER },
      { address: "m2@dest.test", errorsTo: OWNER },
      { address: "m3@dest.test", errorsTo: "owner-other@mx.local.test" },
    ]);
    await until(() => dsns(q).length >= 3, "three DSNs");
    await until(() => queueEmpty(q), "the queue to empty");

    await t.step("one transaction per envelope sender on the same route", () => {
      const originals = q.delivered.filter((d) => d.ta.sender !== "");
      assert.deepEqual(transactions(originals).sort(), [
        "alice@sender.test -> direct@dest.test",
        "owner-other@mx.local.test -> m3@dest.test",
        `${OWNER} -> m1@dest.test, m2@dest.test`,
      ]);
    });
    await t.step("failures are reported per addressee: the sender, and each owner once", () => {
      const got = dsns(q).map((d) => `${d.ta.recipients[0].address}: ${finals(d).join(", ")}`).sort();
      assert.deepEqual(got, [
        "alice@sender.test: direct@dest.test",
        "owner-other@mx.local.test: m3@dest.test",
        `${OWNER}: m1@dest.test, m2@dest.test`,
      ]);
      const toOwner = dsns(q).find((d) => d.ta.recipients[0].address === OWNER)!;
      assert.equal(toHeader(toOwner), `<${OWNER}>`);
    });
  } finally {
    await q.stop();
  }
});

Deno.test("an owner is a normal sender: its failed DSN goes to postmaster; mail from <> stays from <>", async (t) => {
  const q = await startInProcessQmgr();
  try {
    await t.step("the DSN to the owner fails: a notice to postmaster", async () => {
      q.script.answer = (_ta, r) => r.address === "postmaster@mx.local.test" ? "sent" : "perm";
      await q.submit([{ address: "m1@dest.test", errorsTo: OWNER }]);
      await until(() => queueEmpty(q), "the queue to empty");
      assert.deepEqual(transactions(q.delivered), [
        `${OWNER} -> m1@dest.test`,
        `<> -> ${OWNER}`,
        "<> -> postmaster@mx.local.test",
      ]);
    });
    await t.step("mail from <> to a list member: sent from <>, its failure goes to postmaster", async () => {
      q.delivered.length = 0;
      q.script.answer = (_ta, r) => r.address === "postmaster@mx.local.test" ? "sent" : "perm";
      await q.submit([{ address: "m1@dest.test", errorsTo: OWNER }], { sender: "" });
      await until(() => queueEmpty(q), "the queue to empty");
      assert.deepEqual(transactions(q.delivered), ["<> -> m1@dest.test", "<> -> postmaster@mx.local.test"]);
    });
  } finally {
    await q.stop();
  }
});

Deno.test("the addressee of a DSN is expanded by smar before the DSN is committed", async (t) => {
  const q = await startInProcessQmgr();
  try {
    await t.step("postmaster expands to two users: both get the notice, ORCPT names postmaster", async () => {
      q.expansions["postmaster@mx.local.test"] = ["demo@mx.local.test", "ops@dest.test"];
      q.script.answer = (_ta, r) => r.address === "bob@dest.test" ? "perm" : "sent";
      await q.submit(["bob@dest.test"], { sender: "" });
      await until(() => queueEmpty(q), "the queue to empty");
      const notices = dsns(q).filter((d) => d.ta.messageId !== q.delivered[0].ta.messageId);
      const rcpts = notices.flatMap((d) => d.ta.recipients.map((r) => `${r.address} ${r.orcpt}`)).sort();
      assert.deepEqual(rcpts, [
        "demo@mx.local.test rfc822;postmaster@mx.local.test",
        "ops@dest.test rfc822;postmaster@mx.local.test",
      ]);
      assert.equal(toHeader(notices[0]), "<postmaster@mx.local.test>");
    });
    await t.step("the expanded notice fails too: dropped, no notice about a notice", async () => {
      q.delivered.length = 0;
      q.script.answer = () => "perm";
      await q.submit(["bob@dest.test"], { sender: "" });
      // An empty queue is final: a notice is committed with the failure it reports, so none can follow.
      await until(() => queueEmpty(q), "the queue to empty");
      // The two expanded notice recipients are delivered in parallel transactions: order them.
      assert.deepEqual(transactions(q.delivered).toSorted(), [
        "<> -> bob@dest.test",
        "<> -> demo@mx.local.test",
        "<> -> ops@dest.test",
      ]);
    });
    await t.step("a sender's bounce goes to the addresses its alias names", async () => {
      q.delivered.length = 0;
      q.expansions["alice@sender.test"] = ["alice@dest.test"];
      q.script.answer = (ta) => ta.sender === "" ? "sent" : "perm";
      await q.submit(["bob@dest.test"]);
      await until(() => queueEmpty(q), "the queue to empty");
      assert.deepEqual(transactions(q.delivered), [
        "alice@sender.test -> bob@dest.test",
        "<> -> alice@dest.test",
      ]);
    });
    await t.step("smar cannot answer: the DSN goes to the address as it is", async () => {
      q.delivered.length = 0;
      delete q.expansions["alice@sender.test"];
      await q.submit(["bob@dest.test"]);
      await until(() => queueEmpty(q), "the queue to empty");
      assert.deepEqual(transactions(q.delivered), [
        "alice@sender.test -> bob@dest.test",
        "<> -> alice@sender.test",
      ]);
      assert.equal(dsns(q)[0].ta.recipients[0].orcpt, undefined);
    });
  } finally {
    await q.stop();
  }
});

Deno.test("the queue store keeps errorsTo, and adds its column to a queue file of an older qmgr", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_owner_" });
  try {
    // The recipients table as it was before errors_to, with one waiting recipient.
    const old = new DatabaseSync(join(dir, DB_FILE));
    old.exec(`CREATE TABLE recipients (message_id TEXT NOT NULL, idx INTEGER NOT NULL, address TEXT NOT NULL,
      notify TEXT, orcpt TEXT, state INTEGER NOT NULL, tries INTEGER NOT NULL DEFAULT 0,
      next_try INTEGER NOT NULL, last_reply TEXT, notice INTEGER NOT NULL DEFAULT 0, last_relay TEXT,
      PRIMARY KEY (message_id, idx)) WITHOUT ROWID`);
    old.exec(
      `INSERT INTO recipients (message_id, idx, address, state, next_try) VALUES ('OLD', 0, 'a@x', 0, 1)`,
    );
    old.close();

    const store = QueueStore.open(dir);
    try {
      await t.step("the old row reads back without an owner", () => {
        const [r] = store.recipientsOf("OLD");
        assert.equal(r.address, "a@x");
        assert.equal(r.errorsTo, undefined);
      });
      await t.step("a new envelope keeps each recipient's owner, also in what is due", () => {
        const env: Envelope = {
          id: "NEW",
          cdbPath: "/nowhere",
          size: 1,
          arrival: 1,
          sender: "s@x",
          recipients: [{ address: "m@x", errorsTo: "owner-l@x" }, { address: "n@x" }],
          client: { ip: "127.0.0.1", helo: "h" },
        };
        store.insertEnvelope(env, 0, 1);
        assert.deepEqual(store.recipientsOf("NEW").map((r) => [r.address, r.errorsTo]), [
          ["m@x", "owner-l@x"],
          ["n@x", undefined],
        ]);
        const due = store.due(10, 10).filter((d) => d.message.id === "NEW");
        assert.deepEqual(due.map((d) => d.recipient.errorsTo), ["owner-l@x", undefined]);
      });
    } finally {
      store.close();
    }
    await t.step("opening it again changes nothing", () => {
      QueueStore.open(dir).close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
