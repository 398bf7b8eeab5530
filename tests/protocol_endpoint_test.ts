// The endpoint's own guards: a message whose type another component sends (the tag's prefix names its
// sender) is dropped before any handler sees it, and a request of that kind is answered rpc.failure;
// a request of the sender's own kind reaches the handler.

import assert from "node:assert/strict";
import { Endpoint, senderOf } from "../components/protocol/endpoint.ts";
import { type Message, PROTOCOL_VERSION } from "../components/protocol/messages.ts";

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

Deno.test("an endpoint answers garbage with rpc.failure and never lets a handler error escape", async (t) => {
  const smar = new Endpoint("smar");
  const ch = new MessageChannel();
  smar.setPeer("qmgr", ch.port1);
  const answers: unknown[] = [];
  ch.port2.onmessage = (e) => answers.push(e.data);
  const next = async () => {
    for (let i = 0; i < 200 && answers.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    return answers.shift() as
      | { kind: string; id: number; body: { type: string; reason: string } }
      | undefined;
  };
  try {
    await t.step("a frame of another protocol version is dropped without an answer", async () => {
      ch.port2.postMessage({ v: -1, kind: "request", id: 1, body: route });
      ch.port2.postMessage({ v: PROTOCOL_VERSION, kind: "request", id: 2, body: { type: "qmgr.route" } });
      const a = await next();
      assert.equal(a?.id, 2, "only the second, current frame is answered");
      assert.match(a!.body.reason, /^invalid request: /);
    });
    await t.step("a handler that throws gives rpc.failure naming the message", async () => {
      smar.handle(() => {
        throw new Error("broken on purpose");
      });
      ch.port2.postMessage({ v: PROTOCOL_VERSION, kind: "request", id: 3, body: route });
      const a = await next();
      assert.equal(a?.id, 3);
      assert.match(a!.body.reason, /smar failed on qmgr\.route: broken on purpose/);
    });
    await t.step("a handler with no answer to a request gives rpc.failure", async () => {
      smar.handle(() => undefined);
      ch.port2.postMessage({ v: PROTOCOL_VERSION, kind: "request", id: 4, body: route });
      assert.match((await next())!.body.reason, /qmgr\.route has no answer/);
    });
  } finally {
    smar.close();
    ch.port2.close();
  }
});

Deno.test("a request times out, fails when its peer goes, and a notice to no peer is dropped", async () => {
  const qmgr = new Endpoint("qmgr");
  try {
    assert.match(((await qmgr.request("smar", route)) as { reason: string }).reason, /smar is not available/);
    qmgr.notify("smar", route); // not wired: logged at debug, nothing thrown
    const ch = new MessageChannel();
    qmgr.setPeer("smar", ch.port1);
    const slow = await qmgr.request("smar", route, 30);
    assert.match((slow as { reason: string }).reason, /did not answer qmgr\.route within 30 ms/);
    const pending = qmgr.request("smar", route, 5_000);
    const again = new MessageChannel();
    qmgr.setPeer("smar", again.port1); // smar restarted: the old port's requests fail
    assert.match(((await pending) as { reason: string }).reason, /smar restarted/);
    ch.port2.close();
    again.port2.close();
  } finally {
    qmgr.close();
  }
});
