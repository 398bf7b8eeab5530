// The connection cache (conn_cache.ts) on its own, with in-memory links: which idle link a transaction
// gets, the age and count limits, the bound on idle links, and dropDestination(), which keeps the
// connections to a destination within what qmgr lets run there. The clock is injected.

import assert from "node:assert/strict";
import { ConnectionCache } from "../components/smtpc/conn_cache.ts";
import { Link } from "../components/smtpc/link.ts";
import { deadlines } from "../components/smtpc/timeouts.ts";
import { type ByteStream, Wire } from "../components/smtpc/wire.ts";
import type { DeliveryTransaction } from "../components/protocol/messages.ts";

/** A stream that answers every write with one 221 line, and records whether it was closed. */
class FakeStream implements ByteStream {
  closed = false;
  written = "";
  #pending = "";
  read(p: Uint8Array): Promise<number | null> {
    if (this.closed || this.#pending === "") return Promise.resolve(null);
    const n = new TextEncoder().encodeInto(this.#pending, p).written;
    this.#pending = "";
    return Promise.resolve(n);
  }
  write(p: Uint8Array): Promise<number> {
    this.written += new TextDecoder().decode(p);
    this.#pending = "221 2.0.0 Bye\r\n";
    return Promise.resolve(p.length);
  }
  close(): void {
    this.closed = true;
  }
}

let clock = 0;
const now = () => clock;

function link(address: string, port = 25): { link: Link; stream: FakeStream } {
  const stream = new FakeStream();
  const l = new Link(
    new Wire(stream, 1000),
    { protocol: "esmtp", host: { name: address, address }, port },
    `${address}:${port}`,
    new Map(),
    deadlines(1000),
    undefined,
    clock,
    { name: address, address, port },
  );
  return { link: l, stream };
}

function ta(...addresses: string[]): DeliveryTransaction {
  return {
    taId: "t",
    messageId: "m",
    cdbPath: "/nonexistent",
    size: 1,
    sender: "",
    recipients: [{ address: "a@b.test", index: 0 }],
    route: { protocol: "esmtp", port: 25, hosts: addresses.map((address) => ({ name: address, address })) },
  };
}

const LIMITS = { idleMs: 60_000, maxAgeMs: 10_000, maxTransactions: 3, maxIdle: 2 };
const settle = () => new Promise((r) => setTimeout(r, 0));

Deno.test("ConnectionCache hands out idle links by route host and within the limits", async (t) => {
  await t.step(
    "a link to any of the route's hosts, in route order; none for other hosts or ports",
    async () => {
      clock = 0;
      const cache = new ConnectionCache(LIMITS, now);
      const a = link("10.0.0.1");
      const b = link("10.0.0.2");
      cache.put(a.link, "10.0.0.1");
      cache.put(b.link, "10.0.0.1");
      assert.equal(cache.take(ta("10.0.0.9")), undefined);
      assert.equal(
        cache.take({ ...ta("10.0.0.1"), route: { ...ta("10.0.0.1").route, port: 587 } }),
        undefined,
      );
      assert.equal(cache.take(ta("10.0.0.2", "10.0.0.1")), b.link);
      assert.equal(cache.take(ta("10.0.0.2", "10.0.0.1")), a.link);
      assert.equal(cache.size, 0);
      await cache.close();
    },
  );
  await t.step("a link too old or used too often is not handed out: it gets QUIT", async () => {
    clock = 0;
    const cache = new ConnectionCache(LIMITS, now);
    const old = link("10.0.0.1");
    cache.put(old.link, "d");
    clock = 10_000;
    assert.equal(cache.take(ta("10.0.0.1")), undefined);
    const worn = link("10.0.0.1");
    worn.link.transactions = 3;
    cache.put(worn.link, "d");
    assert.equal(cache.size, 0);
    await cache.close();
    await settle();
    for (const l of [old, worn]) {
      assert.equal(l.stream.written, "QUIT\r\n");
      assert.equal(l.stream.closed, true);
    }
  });
  await t.step("at most maxIdle links idle: the oldest goes first", async () => {
    clock = 0;
    const cache = new ConnectionCache(LIMITS, now);
    const links = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map((addr, i) => {
      clock = i;
      const l = link(addr);
      cache.put(l.link, addr);
      return l;
    });
    assert.equal(cache.size, 2);
    await settle();
    assert.equal(links[0].stream.closed, true);
    assert.equal(cache.take(ta("10.0.0.1")), undefined);
    assert.equal(cache.take(ta("10.0.0.3")), links[2].link);
    await cache.close();
  });
  await t.step("dropDestination() closes the idle links counted against one destination only", async () => {
    clock = 0;
    const cache = new ConnectionCache({ ...LIMITS, maxIdle: 10 }, now);
    const mine = [link("10.0.0.1"), link("10.0.0.1", 2525)];
    const other = link("10.0.0.2");
    for (const l of mine) cache.put(l.link, "10.0.0.1");
    cache.put(other.link, "10.0.0.2");
    cache.dropDestination("10.0.0.1");
    assert.equal(cache.size, 1);
    await settle();
    assert.deepEqual(mine.map((l) => l.stream.closed), [true, true]);
    assert.equal(cache.take(ta("10.0.0.2")), other.link);
    await cache.close();
  });
  await t.step("a link that still needs RSET, or a closed cache, is not kept", async () => {
    clock = 0;
    const cache = new ConnectionCache(LIMITS, now);
    const dirty = link("10.0.0.1");
    dirty.link.needsRset = true;
    cache.put(dirty.link, "d");
    assert.equal(cache.size, 0);
    await cache.close();
    const late = link("10.0.0.1");
    cache.put(late.link, "d");
    assert.equal(cache.size, 0);
    await settle();
    assert.equal(late.stream.closed, true);
  });
});
