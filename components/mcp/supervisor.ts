// The supervisor: starts the four component workers, each with only its own permission set, wires every
// pair with a MessageChannel, and watches them. Receives the workers' control frames (ready, heartbeat,
// fatal, stopped) and error events; sends init, peer and shutdown frames. A worker that errors or falls
// silent (3 heartbeat intervals) is terminated and started again as a new generation, rewired to every
// running peer; a worker that keeps dying stops the MTA, as does a `fatal` frame. Touches nothing itself.

import type { Config } from "../../config/types.ts";
import type { WorkerFrame } from "../protocol/frames.ts";
import { type ComponentName, COMPONENTS, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { PermissionSets } from "./permissions.ts";
import { DEFAULT_LIMITS, type RestartLimits, RestartPolicy } from "./restart_policy.ts";
import { spawnWorker, wirePeers, workerUrl } from "./spawn.ts";

/** Exit codes (sysexits.h): a configuration a restart cannot cure, and a failure of the MTA itself. */
export const EX_CONFIG = 78;
export const EX_SOFTWARE = 70;

/** Shutdown order: stop taking mail first, the queue manager last so the IBDB is flushed. */
export const STOP_ORDER: readonly ComponentName[] = ["smtps", "smtpc", "smar", "qmgr"];

export interface SupervisorOptions {
  permissions: PermissionSets;
  /** The module each component runs (tests substitute fake workers). */
  workerUrl?: (name: ComponentName) => URL;
  limits?: Partial<RestartLimits>;
  now?: () => number;
  /** How long each worker gets to answer `shutdown` with `stopped` (ms). */
  stopTimeout?: number;
  /** How long a worker may stay silent before its first `ready` (ms): starting may take a while. */
  startupGrace?: number;
  /** How long start() waits for all four workers to be ready (ms). */
  startTimeout?: number;
}

export type SupervisorEvent =
  | { type: "ready"; name: ComponentName; generation: number }
  | { type: "died"; name: ComponentName; generation: number; reason: string }
  | { type: "restart"; name: ComponentName; generation: number }
  /** A worker ended during shutdown; `clean` when it answered `shutdown` with `stopped` in time. */
  | { type: "stopped"; name: ComponentName; clean: boolean }
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

interface Slot {
  name: ComponentName;
  generation: number;
  restarts: number;
  worker?: Worker;
  ready: boolean;
  lastSeen: number;
  policy: RestartPolicy;
  restartTimer?: ReturnType<typeof setTimeout>;
  onStopped?: () => void;
}

export class Supervisor {
  readonly #config: Config;
  readonly #opts: Required<Omit<SupervisorOptions, "limits">> & { limits: RestartLimits };
  readonly #slots = new Map<ComponentName, Slot>();
  readonly #listeners = new Set<(e: SupervisorEvent) => void>();
  #watch?: ReturnType<typeof setInterval>;
  #ending?: Promise<SupervisorEnd>;
  #resolveDone!: (end: SupervisorEnd) => void;
  /** Resolves once the MTA has stopped, by stop(), a fatal frame, or a crash loop. */
  readonly done: Promise<SupervisorEnd>;

  constructor(config: Config, opts: SupervisorOptions) {
    this.#config = config;
    this.#opts = {
      permissions: opts.permissions,
      workerUrl: opts.workerUrl ?? workerUrl,
      limits: { ...DEFAULT_LIMITS, ...opts.limits },
      now: opts.now ?? Date.now,
      stopTimeout: opts.stopTimeout ?? 10_000,
      startupGrace: opts.startupGrace ?? 30_000,
      startTimeout: opts.startTimeout ?? 60_000,
    };
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    for (const name of COMPONENTS) {
      const policy = new RestartPolicy(this.#opts.limits, this.#opts.now);
      this.#slots.set(name, { name, generation: 0, restarts: 0, ready: false, lastSeen: 0, policy });
    }
  }

  /** Subscribes to supervision events; returns the unsubscribe function. */
  onEvent(listener: (e: SupervisorEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts and wires all four workers; resolves when each has reported `ready`. */
  async start(): Promise<void> {
    const allReady = new Promise<void>((resolve) => {
      const check = () => {
        if ([...this.#slots.values()].every((s) => s.ready)) {
          off();
          resolve();
        }
      };
      const off = this.onEvent((e) => e.type === "ready" && check());
    });
    for (const slot of this.#slots.values()) this.#spawn(slot);
    const hb = this.#config.mcp.heartbeat_interval;
    this.#watch = setInterval(() => this.#checkHeartbeats(), Math.max(10, Math.min(hb, 1000)));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((
      r,
    ) => (timer = setTimeout(() => r("timeout"), this.#opts.startTimeout)));
    const first = await Promise.race([allReady, this.done, timedOut]);
    clearTimeout(timer);
    if (first === "timeout") {
      const late = [...this.#slots.values()].filter((s) => !s.ready).map((s) => s.name);
      const reason = `${late.join(", ")} did not become ready within ${this.#opts.startTimeout} ms`;
      throw new StartError(await this.#shutdown(EX_SOFTWARE, reason));
    }
    if (first || this.#ending) throw new StartError(await this.done);
    log.info("mcp", "all components ready");
  }

  /** Stops every worker gracefully (smtps first, qmgr last) and resolves with the end of the MTA. */
  stop(reason = "stop requested"): Promise<SupervisorEnd> {
    return this.#shutdown(0, reason);
  }

  /** How often `name` has been restarted. */
  restarts(name: ComponentName): number {
    return this.#slot(name).restarts;
  }

  /** The generation of `name`'s current (or last) worker; 1 for the first. */
  generation(name: ComponentName): number {
    return this.#slot(name).generation;
  }

  /** Whether `name`'s current worker has reported ready. */
  isReady(name: ComponentName): boolean {
    return this.#slot(name).ready;
  }

  /** Terminates `name`'s worker abruptly (for tests); the supervisor restarts it like any dead worker. */
  kill(name: ComponentName): void {
    const slot = this.#slot(name);
    if (slot.worker) this.#died(slot, "killed");
  }

  #slot(name: ComponentName): Slot {
    const slot = this.#slots.get(name);
    if (!slot) throw new RangeError(`Look up a component: no component named ${name}`);
    return slot;
  }

  #emit(e: SupervisorEvent): void {
    for (const l of [...this.#listeners]) l(e);
  }

  #spawn(slot: Slot): void {
    slot.restartTimer = undefined;
    slot.generation++;
    slot.ready = false;
    slot.lastSeen = this.#opts.now();
    const { name, generation } = slot;
    const worker = spawnWorker(
      name,
      this.#opts.permissions[name],
      generation,
      this.#config,
      this.#opts.workerUrl(name),
    );
    slot.worker = worker;
    slot.policy.started();
    worker.onmessage = (e: MessageEvent) => {
      if (slot.worker === worker) this.#frame(slot, e.data);
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault(); // an uncaught error in a worker must not end the MTA
      if (slot.worker !== worker) return;
      log.error("mcp", `${name}#${generation} failed: ${e.message}`);
      if (!this.#ending) {
        this.#died(slot, `error: ${e.message}`);
        return;
      }
      slot.worker = undefined; // failed while stopping: nothing left to wait for
      worker.terminate();
      slot.onStopped?.();
    };
    worker.onmessageerror = () => log.error("mcp", `${name}#${generation} sent a frame that cannot be read`);
    for (const peer of this.#slots.values()) {
      if (peer !== slot && peer.worker) wirePeers({ name, worker }, { name: peer.name, worker: peer.worker });
    }
    if (generation > 1) {
      slot.restarts++;
      log.info("mcp", `${name} restarted as generation ${generation} (restart ${slot.restarts})`);
      this.#emit({ type: "restart", name, generation });
    }
  }

  #frame(slot: Slot, data: unknown): void {
    const f = data as WorkerFrame;
    if (typeof f !== "object" || f === null || f.v !== PROTOCOL_VERSION) {
      log.error("mcp", `dropped a control frame from ${slot.name}: wrong protocol version or not a frame`);
      return;
    }
    if (f.generation !== slot.generation) {
      log.warn("mcp", `ignored a ${f.kind} frame from ${slot.name} generation ${f.generation}`);
      return;
    }
    slot.lastSeen = this.#opts.now();
    switch (f.kind) {
      case "ready":
        if (this.#ending) return;
        slot.ready = true;
        log.info("mcp", `${slot.name}#${slot.generation} ready`);
        this.#emit({ type: "ready", name: slot.name, generation: slot.generation });
        return;
      case "heartbeat":
        return;
      case "fatal":
        log.error("mcp", `${slot.name} reported a fatal error: ${f.reason}`);
        this.#shutdown(EX_CONFIG, `${slot.name}: ${f.reason}`);
        return;
      case "stopped":
        slot.onStopped?.();
        return;
      default: {
        const never: never = f;
        log.error(
          "mcp",
          `dropped an unknown control frame from ${slot.name}: ${JSON.stringify(never).slice(0, 80)}`,
        );
      }
    }
  }

  #checkHeartbeats(): void {
    if (this.#ending) return;
    const interval = this.#config.mcp.heartbeat_interval;
    const now = this.#opts.now();
    for (const slot of this.#slots.values()) {
      if (!slot.worker) continue;
      const limit = slot.ready ? 3 * interval : Math.max(3 * interval, this.#opts.startupGrace);
      const silent = now - slot.lastSeen;
      if (silent > limit) this.#died(slot, `no heartbeat for ${silent} ms`);
    }
  }

  /** Ends a dead (or hung) worker and schedules its restart, or stops the MTA when it keeps dying. */
  #died(slot: Slot, reason: string): void {
    const worker = slot.worker;
    if (!worker || this.#ending) return;
    slot.worker = undefined;
    slot.ready = false;
    worker.onmessage = null;
    worker.onerror = null;
    worker.terminate();
    log.warn("mcp", `${slot.name}#${slot.generation} died: ${reason}`);
    this.#emit({ type: "died", name: slot.name, generation: slot.generation, reason });
    const decision = slot.policy.died();
    if (decision.action === "give-up") {
      const why = `${slot.name} keeps failing (${decision.reason}, last: ${reason})`;
      log.error("mcp", `stopping the MTA: ${why}`);
      this.#shutdown(EX_SOFTWARE, why);
      return;
    }
    log.info("mcp", `restarting ${slot.name} in ${decision.delay} ms`);
    slot.restartTimer = setTimeout(() => this.#spawn(slot), decision.delay);
  }

  #shutdown(code: number, reason: string): Promise<SupervisorEnd> {
    if (this.#ending) return this.#ending;
    this.#ending = (async () => {
      clearInterval(this.#watch);
      for (const slot of this.#slots.values()) clearTimeout(slot.restartTimer);
      log.info("mcp", `stopping: ${reason}`);
      for (const name of STOP_ORDER) await this.#stopOne(this.#slot(name));
      const end = { code, reason };
      log.info("mcp", `stopped (exit code ${code})`);
      this.#emit({ type: "exit", ...end });
      this.#resolveDone(end);
      return end;
    })();
    return this.#ending;
  }

  async #stopOne(slot: Slot): Promise<void> {
    const worker = slot.worker;
    if (!worker) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = new Promise<boolean>((resolve) => {
      slot.onStopped = () => resolve(true);
      timer = setTimeout(() => resolve(false), this.#opts.stopTimeout);
    });
    worker.postMessage({ v: PROTOCOL_VERSION, kind: "shutdown" });
    const clean = await stopped;
    clearTimeout(timer);
    if (!clean) {
      log.warn("mcp", `${slot.name} did not stop within ${this.#opts.stopTimeout} ms: terminating it`);
    }
    slot.onStopped = undefined;
    slot.worker = undefined;
    slot.ready = false;
    worker.onmessage = null;
    worker.onerror = null;
    worker.terminate();
    this.#emit({ type: "stopped", name: slot.name, clean });
  }
}
