// The supervisor: starts the four component workers (and each optional service that has a permission
// set), each with only its own permission set, wires every pair of components with a MessageChannel, and
// watches them. Receives the workers' control frames (ready, heartbeat, fatal, reloaded, stopped) and error
// events; sends init, peer, reload and shutdown frames. A worker that errors or falls silent (3 heartbeat
// intervals) is terminated and started again as a new generation, rewired to every running peer, and the
// components listed in its `restart_dependencies` are restarted with it (gracefully); a worker that keeps
// dying stops the MTA, as does a `fatal` frame whose exit code says a restart cannot help. Each worker's
// own life (its generations, the frames it sends, a graceful stop) is kept in worker_slot.ts. smtps runs
// as several workers when its sections ask for more than one process (config/processes.ts): one slot
// each (smtps@1, smtps@2 ...), each wired to every other component and restarted on its own; the others
// keep serving meanwhile. Touches nothing.

import type { Config } from "../../config/types.ts";
import { serviceOptions } from "../../config/service.ts";
import { smtpsInstances } from "../../config/processes.ts";
import type { WorkerFrame } from "../protocol/frames.ts";
import {
  type ComponentName,
  COMPONENTS,
  METRICS_PEERS,
  type PeerName,
  PROTOCOL_VERSION,
  SERVICES,
  type WorkerName,
} from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { DEFAULT_LIMITS, type RestartLimits } from "./restart_policy.ts";
import { wirePeers, workerUrl } from "./spawn.ts";
import { WorkerSlot } from "./worker_slot.ts";

export {
  DO_NOT_RESTART,
  EX_CONFIG,
  EX_NOPERM,
  EX_SOFTWARE,
  EX_USAGE,
  StartError,
  STOP_ORDER,
  type SupervisedSets,
  type SupervisorEnd,
  type SupervisorEvent,
  type SupervisorOptions,
} from "./supervisor_types.ts";
import {
  DO_NOT_RESTART,
  EX_CONFIG,
  EX_SOFTWARE,
  StartError,
  STOP_ORDER,
  type SupervisorEnd,
  type SupervisorEvent,
  type SupervisorOptions,
} from "./supervisor_types.ts";

const isComponent = (name: WorkerName): name is ComponentName => COMPONENTS.includes(name as ComponentName);

/**
 * Whether two workers talk over a peer port: workers of different components, and metrics with the
 * components it reads (every worker of them).
 */
function arePeers(a: WorkerName, b: WorkerName): boolean {
  if (a === b) return false; // workers of one component are not peers of each other (several smtps share nothing)
  if (isComponent(a) && isComponent(b)) return true;
  const reads = (m: WorkerName, c: WorkerName) =>
    m === "metrics" && isComponent(c) && METRICS_PEERS.includes(c);
  return reads(a, b) || reads(b, a);
}

/** The `instance` field of a slot's events: present only for one of several workers of a component. */
const at = (slot: WorkerSlot) => (slot.instance !== undefined ? { instance: slot.instance } : {});

export class Supervisor {
  #config: Config;
  readonly #opts: Required<Omit<SupervisorOptions, "limits">> & { limits: RestartLimits };
  /** Every worker's slot by its label (`qmgr`, `smtps`, or `smtps@1`, `smtps@2` ... for several). */
  readonly #slots = new Map<string, WorkerSlot>();
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
      onReloadRequest: opts.onReloadRequest ??
        (() => Promise.resolve({ ok: false, reason: "this MCP does not reload on request" })),
    };
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    const names = [...COMPONENTS, ...SERVICES.filter((s) => opts.permissions[s] !== undefined)];
    for (const name of names) {
      const count = name === "smtps" ? smtpsInstances(config) : 1;
      for (let i = 1; i <= count; i++) {
        const slot = new WorkerSlot(name, this.#opts.limits, this.#opts.now, count > 1 ? i : undefined);
        this.#slots.set(slot.label, slot);
      }
    }
  }

  /** Subscribes to supervision events; returns the unsubscribe function. */
  onEvent(listener: (e: SupervisorEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The workers this supervisor runs, by label (`smtps@2` for one of several smtps workers). */
  get names(): string[] {
    return [...this.#slots.keys()];
  }

  /** How many workers run component `name` (smtps: its processes; every other: 1, or 0 when absent). */
  instances(name: WorkerName): number {
    return this.#slotsOf(name).length;
  }

  /** The configuration workers get when they (re)start. */
  get config(): Config {
    return this.#config;
  }

  /** Starts and wires all workers; resolves when each has reported `ready`. */
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
      const late = [...this.#slots.values()].filter((s) => !s.ready).map((s) => s.label);
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

  /**
   * Hands every running worker a new configuration (later generations start with it too) and resolves
   * with each worker's answer: undefined when applied, else the reason it was not. The caller checks
   * that the new configuration needs no other permissions (reload.ts).
   */
  async reload(
    config: Config,
    timeout = this.#opts.stopTimeout,
  ): Promise<Map<string, string | undefined>> {
    this.#config = config;
    const answers = new Map<string, string | undefined>();
    const running = [...this.#slots.values()].filter((s) => s.worker && !s.stopping);
    await Promise.all(
      running.map(async (slot) => answers.set(slot.label, await slot.reload(config, timeout))),
    );
    return answers;
  }

  /**
   * How often `name` has been restarted (after a death or as a dependency). `name` is a component or a
   * worker's label (`smtps@2`); a component of several workers means its first.
   */
  restarts(name: string): number {
    return this.#slot(name).restarts;
  }

  /** The generation of `name`'s current (or last) worker; 1 for the first. */
  generation(name: string): number {
    return this.#slot(name).generation;
  }

  /** Whether `name`'s current worker has reported ready. */
  isReady(name: string): boolean {
    return this.#slot(name).ready;
  }

  /** Terminates `name`'s worker abruptly (for tests); the supervisor restarts it like any dead worker. */
  kill(name: string): void {
    const slot = this.#slot(name);
    if (slot.worker && !slot.stopping) this.#died(slot, "killed");
  }

  #slot(name: string): WorkerSlot {
    const slot = this.#slots.get(name) ?? this.#slotsOf(name as WorkerName)[0];
    if (!slot) throw new RangeError(`Look up a component: no component named ${name}`);
    return slot;
  }

  /** The slots of component `name`: one, several for smtps with processes > 1, none when it does not run. */
  #slotsOf(name: WorkerName): WorkerSlot[] {
    return [...this.#slots.values()].filter((s) => s.name === name);
  }

  #emit(e: SupervisorEvent): void {
    for (const l of [...this.#listeners]) l(e);
  }

  #spawn(slot: WorkerSlot, cause: "crash" | "dependency" = "crash"): void {
    const { name, instance } = slot;
    const worker = slot.start(this.#opts.permissions[name]!, this.#config, this.#opts.workerUrl(name), {
      frame: (f) => this.#frame(slot, f),
      died: (reason) => this.#died(slot, reason),
    });
    const generation = slot.generation;
    for (const peer of this.#slots.values()) {
      if (peer.worker && !peer.stopping && arePeers(name, peer.name)) {
        wirePeers({ name: name as PeerName, instance, worker }, {
          name: peer.name as PeerName,
          instance: peer.instance,
          worker: peer.worker,
        });
      }
    }
    if (generation > 1) {
      slot.restarts++;
      const why = cause === "dependency" ? ", as a dependency" : "";
      log.info("mcp", `${slot.label} restarted as generation ${generation} (restart ${slot.restarts}${why})`);
      this.#emit({ type: "restart", name, ...at(slot), generation, cause });
    }
  }

  /** A frame from the current generation of `slot`'s worker. */
  #frame(slot: WorkerSlot, f: WorkerFrame): void {
    switch (f.kind) {
      case "ready":
        if (this.#ending || slot.stopping) return;
        slot.ready = true;
        log.info("mcp", `${slot.label}#${slot.generation} ready`);
        this.#emit({ type: "ready", name: slot.name, ...at(slot), generation: slot.generation });
        return;
      case "heartbeat":
        return;
      case "fatal": {
        const code = f.code ?? EX_CONFIG;
        if (!DO_NOT_RESTART.has(code)) return this.#died(slot, `failed with exit code ${code}: ${f.reason}`);
        log.error("mcp", `${slot.label} reported a condition a restart cannot cure: ${f.reason}`);
        this.#shutdown(code, `${slot.label}: ${f.reason}`);
        return;
      }
      case "reloaded":
        slot.reloaded(f.error);
        this.#emit({
          type: "reloaded",
          name: slot.name,
          ...at(slot),
          generation: slot.generation,
          error: f.error,
        });
        return;
      case "stopped":
        slot.stopped();
        return;
      case "status_request": {
        const now = this.#opts.now();
        const components = [...this.#slots.values()].map((s) => s.status(now));
        slot.worker?.postMessage({ v: PROTOCOL_VERSION, kind: "status", id: f.id, components });
        return;
      }
      case "reload_request": {
        const worker = slot.worker;
        log.info("mcp", `${slot.label} asks for a reload`);
        void this.#opts.onReloadRequest().then((r) =>
          worker?.postMessage({ v: PROTOCOL_VERSION, kind: "reload_result", id: f.id, ...r })
        );
        return;
      }
      default: {
        const never: never = f;
        log.error(
          "mcp",
          `dropped an unknown control frame from ${slot.label}: ${JSON.stringify(never).slice(0, 80)}`,
        );
      }
    }
  }

  #checkHeartbeats(): void {
    if (this.#ending) return;
    const interval = this.#config.mcp.heartbeat_interval;
    const now = this.#opts.now();
    for (const slot of this.#slots.values()) {
      if (!slot.worker || slot.stopping) continue;
      const limit = slot.ready ? 3 * interval : Math.max(3 * interval, this.#opts.startupGrace);
      const silent = now - slot.lastSeen;
      if (silent > limit) this.#died(slot, `no heartbeat for ${silent} ms`);
    }
  }

  /** Ends a dead (or hung) worker and schedules its restart, or stops the MTA when it keeps dying. */
  #died(slot: WorkerSlot, reason: string): void {
    if (!slot.worker || this.#ending || slot.stopping) return;
    slot.terminate();
    log.warn("mcp", `${slot.label}#${slot.generation} died: ${reason}`);
    this.#emit({ type: "died", name: slot.name, ...at(slot), generation: slot.generation, reason });
    const decision = slot.policy.died();
    if (decision.action === "give-up") {
      const why = `${slot.label} keeps failing (${decision.reason}, last: ${reason})`;
      log.error("mcp", `stopping the MTA: ${why}`);
      this.#shutdown(EX_SOFTWARE, why);
      return;
    }
    log.info("mcp", `restarting ${slot.label} in ${decision.delay} ms`);
    slot.restartTimer = setTimeout(() => this.#spawn(slot), decision.delay);
    for (const dep of serviceOptions(this.#config, slot.name).restart_dependencies) {
      for (const other of this.#slotsOf(dep as WorkerName)) void this.#restartDependency(other, slot.label);
    }
  }

  /** Restarts `slot` because `cause` restarted: a graceful stop, then a new generation at once. */
  async #restartDependency(slot: WorkerSlot, cause: string): Promise<void> {
    if (!slot.worker || slot.stopping || this.#ending) return; // already down: its own restart is pending
    log.info("mcp", `restarting ${slot.label}: it depends on ${cause}`);
    await slot.stop(this.#opts.stopTimeout);
    if (!this.#ending) this.#spawn(slot, "dependency");
  }

  #shutdown(code: number, reason: string): Promise<SupervisorEnd> {
    if (this.#ending) return this.#ending;
    this.#ending = (async () => {
      clearInterval(this.#watch);
      for (const slot of this.#slots.values()) clearTimeout(slot.restartTimer);
      log.info("mcp", `stopping: ${reason}`);
      for (const name of STOP_ORDER) {
        // Several workers of one component (smtps) stop together.
        await Promise.all(
          this.#slotsOf(name).filter((slot) => slot.worker).map(async (slot) => {
            const clean = await slot.stop(this.#opts.stopTimeout);
            this.#emit({ type: "stopped", name, ...at(slot), clean });
          }),
        );
      }
      const end = { code, reason };
      log.info("mcp", `stopped (exit code ${code})`);
      this.#emit({ type: "exit", ...end });
      this.#resolveDone(end);
      return end;
    })();
    return this.#ending;
  }
}
