// The test side of least-privilege probes: starts tests/helpers/probe_worker.ts with exactly a given
// permission set, sends it the operations to try, and returns, in order, "ok" or the error's name.

import type { Probe } from "./probe_worker.ts";

export type { Probe };

const PROBE_WORKER_URL = new URL("./probe_worker.ts", import.meta.url);

/** Runs `probes` in a worker holding exactly `permissions`. */
export function runProbes(permissions: Deno.PermissionOptionsObject, probes: Probe[]): Promise<string[]> {
  const worker = new Worker(PROBE_WORKER_URL, { type: "module", deno: { permissions } });
  return new Promise<string[]>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent) => resolve(e.data as string[]);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      reject(new Error(`probe worker failed: ${e.message}`));
    };
    worker.postMessage(probes);
  }).finally(() => worker.terminate());
}
