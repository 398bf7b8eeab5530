// Incoming connection control: concurrent sessions (icm / smtps.max_connections) and connections per 60 s
// (icr / smtps.max_connection_rate) per client IP, from the qmgr_conf map (address and net entries) or
// the options, answered 421 4.7.0. ConnControl alone with many client addresses and an injected clock,
// then a whole MTA with clients on several loopback addresses.

import assert from "node:assert/strict";
import { join } from "node:path";
import { ConnControl } from "../components/qmgr/conn_control.ts";
import { startTestMta } from "./helpers/mta.ts";
import { SmtpConnection } from "./helpers/smtp_client.ts";
import { waitFor } from "./helpers/wait.ts";

Deno.test("ConnControl applies each client's own limits from the conf map, for many clients", () => {
  let now = 0;
  const limits: Record<string, number> = { "icm:10.1": 1, "icm:": 3, "icr:10.2.0.7": 2, "icr:": 0 };
  const conf = {
    get: (tag: "icm" | "icr", ip: string) => {
      const parts = ip.split(".");
      for (let n = 4; n >= 0; n--) {
        const v = limits[`${tag}:${parts.slice(0, n).join(".")}`];
        if (v !== undefined) return v;
      }
      return 0;
    },
  };
  const cc = new ConnControl(conf, () => now);
  const accepted = (ip: string, times: number) =>
    Array.from({ length: times }, () => cc.open(ip).accept).filter(Boolean).length;
  // 100 clients in 10.1/16 may have one session each, 100 others three each.
  for (let i = 0; i < 100; i++) {
    assert.equal(accepted(`10.1.0.${i}`, 3), 1, `10.1.0.${i}: icm 1 from the net entry`);
    assert.equal(accepted(`10.3.0.${i}`, 5), 3, `10.3.0.${i}: icm 3 from the map's default`);
  }
  assert.equal(cc.tracked, 200);
  // 10.2.0.7 may connect twice per 60 s, however short its sessions; refused attempts count too.
  const ip = "10.2.0.7";
  const opens = [0, 1_000, 2_000, 61_500, 61_900].map((at) => {
    now = at;
    const v = cc.open(ip);
    if (v.accept) cc.close(ip);
    return v.accept;
  });
  assert.deepEqual(opens, [true, true, false, true, false]);
});

Deno.test("a whole MTA answers 421 4.7.0 past icm and icr, per client address", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "qmgr_conn_" });
  const file = join(dir, "qmgr_conf");
  await Deno.writeTextFile(file, "icm:127.0.0 2\nicm:127.0.0.9 1\nicr:127.0.0.5 3\nicr: 100\n");
  const mta = await startTestMta({ adjust: (c) => c.qmgr.conf = { name: "qmgr_conf", type: "hash", file } });
  const open: SmtpConnection[] = [];
  const greet = async (localAddress: string) => {
    const c = await SmtpConnection.open(mta.port, { localAddress });
    open.push(c);
    return (await c.reply()).slice(0, 9);
  };
  try {
    await t.step("many concurrent clients: each address gets its own icm", async () => {
      const clients = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6", "127.0.0.7"];
      for (const ip of clients) {
        assert.deepEqual([await greet(ip), await greet(ip), await greet(ip)], [
          "220 local",
          "220 local",
          "421 4.7.0",
        ], ip);
      }
      assert.deepEqual(
        [await greet("127.0.0.9"), await greet("127.0.0.9")],
        ["220 local", "421 4.7.0"],
        "an address entry wins over its net",
      );
    });
    await t.step("a closed session frees its slot", async () => {
      for (const c of open.splice(0)) await c.close();
      // smtps tells qmgr the sessions ended: until then the slot is still taken.
      // Each try is a connection, counted by icr: poll slowly.
      await waitFor(async () => await greet("127.0.0.2") === "220 local", "the slot to be freed", {
        every: 100,
      });
    });
    await t.step("icr: the fourth connection in 60 s from 127.0.0.5 is refused", async () => {
      const got: string[] = [];
      for (let i = 0; i < 4; i++) {
        got.push(await greet("127.0.0.5"));
        await open.pop()!.close();
      }
      assert.deepEqual(got, ["220 local", "220 local", "220 local", "421 4.7.0"]);
    });
  } finally {
    for (const c of open) await c.close();
    await mta.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
