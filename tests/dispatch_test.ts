// The workers' one handlers refuse what they do not serve: qmgr's and smar's dispatch answer every
// message type they are not the receiver of with rpc.failure (a sender's bug), logged, never a crash and
// never an answer of the right shape by accident. The endpoint has already checked who sent it.

import assert from "node:assert/strict";
import { makeHandler as qmgrHandler } from "../components/qmgr/dispatch.ts";
import { brokenHandler, type Generation, makeHandler as smarHandler } from "../components/smar/dispatch.ts";
import type { ComponentName, Message } from "../components/protocol/messages.ts";
import { senderOf } from "../components/protocol/endpoint.ts";

/** Every message type of the protocol (components/protocol/messages.ts). */
const TYPES = [
  "smtps.conn_open",
  "smtps.conn_close",
  "smtps.commit",
  "smtps.check_connect",
  "smtps.check_mail",
  "smtps.check_rcpt",
  "smtps.dns_query",
  "smtps.check_auth",
  "smar.dns_answer",
  "smar.verdict",
  "smar.route",
  "smar.expansion",
  "qmgr.conn_verdict",
  "qmgr.committed",
  "qmgr.commit_failed",
  "qmgr.disk_state",
  "qmgr.route",
  "qmgr.deliver",
  "qmgr.expand",
  "smtpc.result",
  "rpc.failure",
] as const;

/** A body of `type` as the handler sees it (the fields the refusal never reads are left out). */
const body = (type: string) => ({ type }) as unknown as Message;
const from = (type: string) =>
  (senderOf(type as Message["type"]) === "rpc" ? "smar" : senderOf(type as Message["type"])) as ComponentName;

Deno.test("qmgr's handler answers rpc.failure to every type but smtps's connection and commit messages", async () => {
  const served = ["smtps.conn_open", "smtps.conn_close", "smtps.commit"];
  const handle = qmgrHandler({
    conn: { open: () => ({ type: "qmgr.conn_verdict", ok: true }), close: () => {} } as never,
    commit: () => Promise.resolve({ type: "qmgr.committed", id: "x" } as unknown as Message),
  });
  for (const type of TYPES) {
    const answer = await handle(from(type), body(type), from(type));
    if (served.includes(type)) assert.notEqual(answer?.type, "rpc.failure", type);
    else assert.deepEqual(answer, { type: "rpc.failure", reason: `qmgr does not serve ${type}` }, type);
  }
});

Deno.test("smar's handler answers rpc.failure to every type it does not serve", async () => {
  const served = [
    "smtps.check_connect",
    "smtps.check_mail",
    "smtps.check_rcpt",
    "smtps.check_auth",
    "smtps.dns_query",
    "qmgr.route",
    "qmgr.expand",
  ];
  let retired = 0;
  const generation: Generation = {
    policy: {} as never,
    routes: {} as never,
    inflight: 0,
    retire: () => retired++,
  };
  const handle = smarHandler(() => generation);
  for (const type of TYPES.filter((t) => !served.includes(t))) {
    const answer = await handle(from(type), body(type), from(type));
    assert.equal(answer?.type, "rpc.failure", type);
    assert.match((answer as { reason: string }).reason, new RegExp(type.replace(".", "\\.")), type);
  }
  assert.equal(generation.inflight, 0, "every request is counted out again");
  assert.ok(retired > 0, "a retired generation is closed once its requests are answered");
});

Deno.test("a misconfigured smar answers every question 'try later' and refuses the rest", async () => {
  const handle = brokenHandler("mailertable: line 3: bad");
  for (const type of TYPES) {
    const answer = (await handle(from(type), body(type), from(type))) as Record<string, unknown> | undefined;
    assert.ok(answer && typeof answer.type === "string", type);
    if (answer.type === "smar.verdict") {
      assert.equal((answer.verdict as { action: string }).action, "tempfail", type);
    } else if (answer.type === "smar.route") {
      assert.equal((answer.result as { status: string }).status, "temp", type);
    }
  }
});
