// Runs one component alone as a real, permission-scoped worker, with its peers played by Endpoints in the
// test process. For component tests; end-to-end tests start the whole MTA (tests/helpers/mta.ts).

import type { Config } from "../../config/types.ts";
import { Endpoint, type Handler } from "../../components/protocol/endpoint.ts";
import type { WorkerFrame } from "../../components/protocol/frames.ts";
import { type ComponentName, PROTOCOL_VERSION, type WorkerName } from "../../components/protocol/messages.ts";
import { spawnWorker, type WorkerPermissions } from "../../components/mcp/spawn.ts";

export interface Harness {
  worker: Worker;
  /** The test-side endpoints, one per peer the component was wired to. */
  peers: Map<ComponentName, Endpoint>;
  /** Control frames the worker sent (ready, heartbeat, fatal, stopped). */
  frames: WorkerFrame[];
  /** Asks the component to shut down gracefully, waits for `stopped`, then terminates the worker. */
  stop(): Promise<void>;
}

export const NO_PERMISSIONS: WorkerPermissions = {
  read: false,
  write: false,
  net: false,
  env: false,
  sys: false,
  run: false,
  ffi: false,
  import: false,
};

/**
 * Starts `name` with `permissions`, wires it to one test Endpoint per entry of `peers` (each with its
 * handler), and resolves once the worker reports `ready` (rejects on `fatal`, an error, or after 10 s).
 */
export async function startComponent(
  name: WorkerName,
  config: Config,
  permissions: Partial<WorkerPermissions>,
  peers: Partial<Record<ComponentName, Handler>>,
): Promise<Harness> {
  const worker = spawnWorker(name, { ...NO_PERMISSIONS, ...permissions }, 1, config);
  const frames: WorkerFrame[] = [];
  const endpoints = new Map<ComponentName, Endpoint>();
  for (const [peer, handler] of Object.entries(peers) as [ComponentName, Handler][]) {
    const ch = new MessageChannel();
    worker.postMessage({ v: PROTOCOL_VERSION, kind: "peer", name: peer, port: ch.port1 }, [ch.port1]);
    const ep = new Endpoint(peer);
    ep.handle(handler);
    ep.setPeer(name as ComponentName, ch.port2); // only components have peers; a service gets none
    endpoints.set(peer, ep);
  }
  let onStopped: (() => void) | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not become ready within 10 s`)), 10_000);
    worker.onmessage = (e: MessageEvent) => {
      const f = e.data as WorkerFrame;
      frames.push(f);
      if (f.kind === "ready") {
        clearTimeout(timer);
        resolve();
      } else if (f.kind === "fatal") {
        clearTimeout(timer);
        reject(new Error(`${name} reported fatal: ${f.reason}`));
      } else if (f.kind === "stopped") onStopped?.();
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      clearTimeout(timer);
      reject(new Error(`${name} failed: ${e.message}`));
    };
  });
  const stop = async () => {
    const stopped = new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5_000);
      onStopped = () => {
        clearTimeout(t);
        resolve();
      };
    });
    worker.postMessage({ v: PROTOCOL_VERSION, kind: "shutdown" });
    await stopped;
    for (const ep of endpoints.values()) ep.close();
    worker.terminate();
  };
  try {
    await ready;
  } catch (err) {
    for (const ep of endpoints.values()) ep.close();
    worker.terminate();
    throw err;
  }
  return { worker, peers: endpoints, frames, stop };
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
