// Start-up failures a restart cannot cure end the MTA at once with one line and a sysexits code: a listen
// address another program holds is `smtps: cannot listen on 127.0.0.1:PORT: address already in use` and
// exit code 69 (EX_UNAVAILABLE), with no restart of smtps and no stack trace in the reason.

import assert from "node:assert/strict";
import { StartError } from "../components/mcp/supervisor.ts";
import { startTestMta } from "./helpers/mta.ts";

Deno.test("a listen address in use stops the MTA with one line and exit code 69, no restart loop", async () => {
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (holder.addr as Deno.NetAddr).port;
  try {
    const err = await startTestMta({ smtpsPort: port }).then(
      () => assert.fail("the MTA started on a port in use"),
      (e) => e,
    );
    assert.ok(err instanceof StartError, String(err));
    assert.deepEqual(err.end, {
      code: 69,
      reason: `smtps: cannot listen on 127.0.0.1:${port}: address already in use`,
    });
    assert.ok(!/\n|\bat /.test(err.end.reason), "no stack trace");
  } finally {
    holder.close();
  }
});
