// Least privilege for the filters: with the set the MCP computes, smtps may connect to its configured
// milter and policy service (TCP, and a milter's unix socket) and to no other address.

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { runProbes } from "./helpers/probe.ts";

Deno.test("smtps may connect to its milters and policy services and nowhere else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-filter-perm-" });
  const listeners = [0, 1, 2].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const [milter, policy, other] = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  const sock = join(dir, "milter.sock");
  const unix = Deno.listen({ transport: "unix", path: sock });
  try {
    const config = parseConfig(
      `CDB_base_directory = "${dir}/cdb";
       smtps {
         policy_milter { socket { type = inet; address = 127.0.0.1; port = ${milter}; } }
         policy_milter { socket { type = unix; path = "${sock}"; } }
         policy_service { socket { type = inet; address = 127.0.0.1; port = ${policy}; } }
       }`,
      "t.conf",
    );
    const sets = await computePermissions(config, { readFiles: false });
    const at = (port: number) => ({ op: "connect" as const, hostname: "127.0.0.1", port });
    const got = await runProbes(sets.smtps as Deno.PermissionOptionsObject, [
      at(milter),
      at(policy),
      { op: "connect_unix", path: sock },
      at(other),
    ]);
    assert.deepEqual(got, ["ok", "ok", "ok", "NotCapable"]);
  } finally {
    for (const l of listeners) l.close();
    unix.close();
    await Deno.remove(dir, { recursive: true });
  }
});
