// The real smtpc worker for tests, played against by a test acting as qmgr: started with the permission
// set computePermissions() gives it for the test's configuration (so the tests run smtpc with exactly its
// production rights), reading CDB files from a temp dir. `deliver` writes the content as a CDB file and
// hands smtpc a transaction the way qmgr would. Touches its temp dir.

import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig } from "../../config/defaults.ts";
import type { Config } from "../../config/types.ts";
import { computePermissions } from "../../components/mcp/permissions.ts";
import type { DeliveryTransaction, SmtpcResult } from "../../components/protocol/messages.ts";
import { type Harness, startComponent } from "./harness.ts";

export interface SmtpcEnv {
  /** Writes `content` as a CDB file and delivers it; `over` replaces fields of the default transaction. */
  deliver(content: string | Uint8Array, over?: Partial<DeliveryTransaction>): Promise<SmtpcResult>;
  /** Hands smtpc a transaction as it is. */
  send(ta: DeliveryTransaction): Promise<SmtpcResult>;
  dir: string;
  config: Config;
}

export interface SmtpcOptions {
  /** Destination ports smtpc may reach. */
  ports: number[];
  /** Default io_timeout 5 s. */
  ioTimeout?: number;
  /** Changes to the configuration before the worker starts. */
  adjust?: (config: Config) => void;
}

let serial = 0;
const enc = new TextEncoder();

/** Runs `fn` with one smtpc worker, then stops it and removes the temp dir. */
export async function withSmtpc(opts: SmtpcOptions, fn: (env: SmtpcEnv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smtpc_w_" });
  const config = structuredClone(defaultConfig());
  config.hostname = "client.test";
  config.CDB_base_directory = dir;
  config.smtpc = { ...config.smtpc, io_timeout: opts.ioTimeout ?? 5_000, ports: opts.ports };
  opts.adjust?.(config);
  let h: Harness | undefined;
  try {
    const sets = await computePermissions(config, { readFiles: false });
    h = await startComponent("smtpc", config, sets.smtpc, { qmgr: () => {} });
    const qmgr = h.peers.get("qmgr")!;
    const send = async (ta: DeliveryTransaction) => {
      const answer = await qmgr.request("smtpc", { type: "qmgr.deliver", ta }, 30_000);
      assert.equal(answer.type, "smtpc.result", JSON.stringify(answer));
      return answer as SmtpcResult;
    };
    await fn({
      dir,
      config,
      send,
      deliver: async (content, over = {}) => {
        const id = `W${++serial}`;
        const path = join(dir, id);
        const bytes = typeof content === "string" ? enc.encode(content) : content;
        await Deno.writeFile(path, bytes);
        return await send({
          taId: `ta-${id}`,
          messageId: id,
          cdbPath: path,
          size: bytes.length,
          sender: "sender@origin.test",
          recipients: [{ address: "rcpt@dest.test", index: 0 }],
          route: {
            protocol: "esmtp",
            port: opts.ports[0],
            hosts: [{ name: "mx.test", address: "127.0.0.1" }],
          },
          ...over,
        });
      },
    });
  } finally {
    await h?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** `index:status` of each result, e.g. ["0:sent", "1:temp"]. */
export function statuses(r: SmtpcResult): string[] {
  return r.results.map((x) => `${x.index}:${x.status}`);
}

/** Recipients `addresses` with indexes 0, 1, ... */
export function rcpts(...addresses: string[]): { address: string; index: number }[] {
  return addresses.map((address, index) => ({ address, index }));
}
