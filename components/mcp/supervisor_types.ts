// What the supervisor's users see: its options, its events, how it ends, the exit codes it ends with, and
// the order it stops workers in. Re-exported by supervisor.ts. Touches nothing.

import { SERVICES, type WorkerName } from "../protocol/messages.ts";
import type { PermissionSets } from "./permissions.ts";
import type { RestartLimits } from "./restart_policy.ts";
import type { WorkerPermissions } from "./spawn.ts";

/** Exit codes (sysexits.h): usage, permissions, configuration (a restart cannot cure them), and a failure of the MTA itself. */
export const EX_USAGE = 64;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;
export const EX_SOFTWARE = 70;
/** A service the component needs is taken (its listen address is in use by another program). */
export const EX_UNAVAILABLE = 69;
/** A `fatal` frame with one of these codes stops the MTA; any other code restarts the worker. */
export const DO_NOT_RESTART: ReadonlySet<number> = new Set([EX_USAGE, EX_NOPERM, EX_CONFIG, EX_UNAVAILABLE]);

/** Shutdown order: stop taking mail first, then deliveries, the queue manager last so the IBDB is flushed. */
export const STOP_ORDER: readonly WorkerName[] = ["smtps", "smtpc", ...SERVICES, "smar", "qmgr"];

/** The sets to hand out: one per component, and one per optional service that is to run. */
export type SupervisedSets = PermissionSets & Partial<Record<WorkerName, WorkerPermissions>>;

export interface SupervisorOptions {
  permissions: SupervisedSets;
  /** The module each worker runs (tests substitute fake workers). */
  workerUrl?: (name: WorkerName) => URL;
  limits?: Partial<RestartLimits>;
  now?: () => number;
  /** How long each worker gets to answer `shutdown` with `stopped` (ms). */
  stopTimeout?: number;
  /** How long a worker may stay silent before its first `ready` (ms): starting may take a while. */
  startupGrace?: number;
  /** How long start() waits for all workers to be ready (ms). */
  startTimeout?: number;
  /** What a worker's `reload_request` (qmgrctl reload) runs: Mta.reload() when started by startMta(). */
  onReloadRequest?: () => Promise<{ ok: boolean; reason?: string }>;
}

/** `instance`: which of a component's several workers (smtps with processes > 1) the event is about. */
export type SupervisorEvent =
  | { type: "ready"; name: WorkerName; instance?: number; generation: number }
  | { type: "died"; name: WorkerName; instance?: number; generation: number; reason: string }
  /** A new generation started: after a death (`crash`) or because a component it depends on restarted. */
  | {
    type: "restart";
    name: WorkerName;
    instance?: number;
    generation: number;
    cause: "crash" | "dependency";
  }
  | { type: "reloaded"; name: WorkerName; instance?: number; generation: number; error?: string }
  /** A worker ended during shutdown; `clean` when it answered `shutdown` with `stopped` in time. */
  | { type: "stopped"; name: WorkerName; instance?: number; clean: boolean }
  | { type: "exit"; code: number; reason: string };

export interface SupervisorEnd {
  code: number;
  reason: string;
}

/** Why start() failed: the MTA stopped before every component was ready. */
export class StartError extends Error {
  constructor(readonly end: SupervisorEnd) {
    super(`Start the MTA: ${end.reason}`);
    this.name = "StartError";
  }
}
