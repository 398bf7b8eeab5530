// Starting one component as a Deno worker with an explicit permission set (never "inherit"), and
// sending it its init frame. Used by the supervisor and by tests that run one component alone.

import type { Config } from "../../config/types.ts";
import type { McpFrame } from "../protocol/frames.ts";
import { type PeerName, PROTOCOL_VERSION, type WorkerName } from "../protocol/messages.ts";

/** The permission set of one worker: every key explicit, nothing inherited. */
export interface WorkerPermissions {
  read: string[] | false;
  write: string[] | false;
  /** true (any host, any port) only for smtpc with the ipv6 flag (components/smtpc/worker.ts). */
  net: string[] | boolean;
  env: false;
  /** Only qmgr holds any: "statfs" for its disk guard. */
  sys: string[] | false;
  run: false;
  ffi: false;
  import: false;
}

/** The module URL of a component's worker entry. */
export function workerUrl(name: WorkerName): URL {
  return new URL(`../${name}/worker.ts`, import.meta.url);
}

/** How the MCP's lines and Worker names call worker `instance` of `name`: `smtps@2`, or `qmgr` alone. */
export function instanceLabel(name: WorkerName, instance?: number): string {
  return instance === undefined ? name : `${name}@${instance}`;
}

/**
 * Starts `name` as a worker holding exactly `permissions` and sends it its init frame. `url` replaces the
 * component's own module (tests run fake workers under the real supervisor); `instance` numbers one of
 * several workers of the component (smtps with processes > 1).
 */
export function spawnWorker(
  name: WorkerName,
  permissions: WorkerPermissions,
  generation: number,
  config: Config,
  url: URL = workerUrl(name),
  instance?: number,
): Worker {
  const worker = new Worker(url, {
    type: "module",
    name: `${instanceLabel(name, instance)}#${generation}`,
    deno: { permissions: permissions as Deno.PermissionOptionsObject },
  });
  const init: McpFrame = {
    v: PROTOCOL_VERSION,
    kind: "init",
    name,
    ...(instance !== undefined ? { instance } : {}),
    generation,
    config,
  };
  worker.postMessage(init);
  return worker;
}

/** One end of a peer channel: a component's worker (`instance` when the component runs several). */
export interface PeerEnd {
  name: PeerName;
  instance?: number;
  worker: Worker;
}

/** Connects two workers with a fresh MessageChannel (each gets a `peer` frame naming the other). */
export function wirePeers(a: PeerEnd, b: PeerEnd): void {
  const ch = new MessageChannel();
  const end = (p: PeerEnd) => (p.instance !== undefined ? { instance: p.instance } : {});
  const toA: McpFrame = { v: PROTOCOL_VERSION, kind: "peer", name: b.name, ...end(b), port: ch.port1 };
  const toB: McpFrame = { v: PROTOCOL_VERSION, kind: "peer", name: a.name, ...end(a), port: ch.port2 };
  a.worker.postMessage(toA, [ch.port1]);
  b.worker.postMessage(toB, [ch.port2]);
}
