// The endpoint's own guards: a message whose type another component sends (the tag's prefix names its
// sender) is dropped before any handler sees it, and a request of that kind is answered rpc.failure;
// a request of the sender's own kind reaches the handler.

import assert from "node:assert/strict";
import { Endpoint, senderOf } from "../components/protocol/endpoint.ts";
import type { Message } from "../components/protocol/messages.ts";

/** smar's endpoint wired to a qmgr and an smtps endpoint; returns them and what smar's handler saw. */
function wired() {
  const smar = new Endpoint("smar");
  const seen: [string, string][] = [];
  smar.handle((from, body) => {
    seen.push([from, body.type]);
    return { type: "rpc.failure", reason: "handled" } as Message;
  });
  const peers = (["qmgr", "smtps"] as const).map((name) => {
    const ch = new MessageChannel();
    const ep = new Endpoint(name);
    ep.setPeer("smar", ch.port2);
    smar.setPeer(name, ch.port1);
    return ep;
  });
  return {
    smar,
    qmgr: peers[0],
    smtps: peers[1],
    seen,
    close: () => [smar, ...peers].forEach((e) => e.close()),
  };
}

const route: Message = { type: "qmgr.route", domain: "example.org" };

Deno.test("senderOf() names the component a message type belongs to", () => {
  assert.equal(senderOf("smtps.check_rcpt"), "smtps");
  assert.equal(senderOf("qmgr.route"), "qmgr");
  assert.equal(senderOf("rpc.failure"), "rpc");
});

Deno.test("an endpoint refuses a peer's request of a type another component sends", async () => {
  const w = wired();
  try {
    const answer = await w.smtps.request("smar", route, 2_000);
    assert.equal(answer.type, "rpc.failure");
    assert.match((answer as { reason: string }).reason, /smtps may not send qmgr\.route/);
    assert.deepEqual(w.seen, [], "the handler never saw it");
  } finally {
    w.close();
  }
});

Deno.test("an endpoint hands its handler a request from the component that sends that type", async () => {
  const w = wired();
  try {
    const answer = await w.qmgr.request("smar", route, 2_000);
    assert.deepEqual(w.seen, [["qmgr", "qmgr.route"]]);
    assert.deepEqual(answer, { type: "rpc.failure", reason: "handled" });
  } finally {
    w.close();
  }
});
