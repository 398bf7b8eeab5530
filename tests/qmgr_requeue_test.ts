// qmgrctl requeue routes a message afresh (as postsuper -r): the route qmgr cached for its recipients'
// domain is forgotten and asked of smar again, and the down mark of the host that failed is cleared, so
// the next attempt goes where the route now points, at once. Against the real control socket of a qmgr
// running in this process (its smar answers routes from a table the test changes).

import assert from "node:assert/strict";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { MX, startInProcessQmgr, until } from "./helpers/qmgr_inprocess.ts";

const NEW_MX = { name: "mx2.dest.test", address: "192.0.2.26" };

Deno.test("qmgrctl requeue forgets the cached route and the down mark: the message goes to the new route", async () => {
  const q = await startInProcessQmgr();
  const socket = controlSocketPath(q.config);
  try {
    // The old host cannot be reached (every attempt fails before a connection: it is marked down).
    q.script.relay = (ta) =>
      ta.route.hosts[0].address === NEW_MX.address
        ? { name: NEW_MX.name, address: NEW_MX.address, port: 25 }
        : undefined;
    q.script.answer = (ta) => ta.route.hosts[0].address === NEW_MX.address ? "sent" : "temp";
    const m = await q.submit(["a@dest.test"]);
    await until(() => q.delivered.length === 1, "the first attempt");
    await until(async () => {
      const out: string[] = [];
      await qmgrctl(["--socket", socket, "--json", "list", "--state", "deferred"], {
        out: (t) => out.push(t),
        err: () => {},
      });
      return (JSON.parse(out.join("")) as { rows: unknown[] }).rows.length === 1;
    }, "the message deferred");
    assert.equal(q.delivered[0].ta.route.hosts[0].address, MX.address);

    // The operator fixes the route (smar now answers the new host) and requeues the message.
    q.routes["dest.test"] = { status: "ok", protocol: "esmtp", port: 25, hosts: [NEW_MX] };
    const out: string[] = [];
    const code = await qmgrctl(["--socket", socket, "requeue", m.id], {
      out: (t) => out.push(t),
      err: (t) => out.push(t),
    });
    assert.equal(code, 0, out.join("\n"));
    await until(() => q.delivered.length === 2, "the attempt after the requeue");
    assert.equal(
      q.delivered[1].ta.route.hosts[0].address,
      NEW_MX.address,
      "routed afresh, not from the cache",
    );
    await until(async () => {
      const lines: string[] = [];
      await qmgrctl(["--socket", socket, "--json", "list"], { out: (t) => lines.push(t), err: () => {} });
      return (JSON.parse(lines.join("")) as { rows: unknown[] }).rows.length === 0;
    }, "the message delivered and removed");
  } finally {
    await q.stop();
  }
});
