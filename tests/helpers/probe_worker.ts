// A probe for least-privilege tests (started by tests/helpers/probe.ts runProbes()): started with exactly the permission set the MCP computes for a
// component, it tries each operation it is sent and answers, in order, "ok" or the error's name (e.g.
// "NotCapable", "ConnectionRefused"). Receives Probe[]; sends string[]. Touches only what it is told to try.

export type Probe =
  | { op: "read"; path: string }
  | { op: "write"; path: string }
  | { op: "listen"; hostname: string; port: number }
  | { op: "connect"; hostname: string; port: number }
  | { op: "connect_unix"; path: string }
  | { op: "listen_unix"; path: string }
  | { op: "statfs"; path: string }
  | { op: "env"; key: string }
  /** Answers the permission state ("granted", "prompt", "denied") of net access to `host` (host:port). */
  | { op: "query_net"; host: string };

import { statfs } from "node:fs/promises";

async function attempt(p: Probe): Promise<string> {
  try {
    switch (p.op) {
      case "read":
        await Deno.readFile(p.path);
        break;
      case "write":
        await Deno.writeTextFile(p.path, "probe\n");
        break;
      case "listen":
        Deno.listen({ hostname: p.hostname, port: p.port }).close();
        break;
      case "connect":
        (await Deno.connect({ hostname: p.hostname, port: p.port })).close();
        break;
      case "connect_unix":
        (await Deno.connect({ transport: "unix", path: p.path })).close();
        break;
      case "listen_unix":
        Deno.listen({ transport: "unix", path: p.path }).close();
        break;
      case "statfs":
        await statfs(p.path);
        break;
      case "env":
        Deno.env.get(p.key);
        break;
      case "query_net":
        return Deno.permissions.querySync({ name: "net", host: p.host }).state;
      default: {
        const never: never = p;
        throw new TypeError(`Run a probe: unknown operation ${JSON.stringify(never)}`);
      }
    }
    return "ok";
  } catch (err) {
    return (err as Error).name;
  }
}

// deno-lint-ignore no-explicit-any
const scope = self as any as {
  onmessage: (e: MessageEvent<Probe[]>) => void;
  postMessage(m: string[]): void;
};
scope.onmessage = async (e) => {
  const results: string[] = [];
  for (const p of e.data) results.push(await attempt(p));
  scope.postMessage(results);
};
