// One supervised worker as the supervisor keeps it: its generation, restart count and policy, the Worker
// now running it, and the exchanges that concern this worker alone: starting a new generation (frames of
// older generations are ignored, frames of the current one are passed on), asking it to reload, and
// stopping it (a graceful `shutdown`, then terminate once `stopped` came or the time is up). A component
// that runs several workers (smtps with processes > 1) has one slot per worker, each with its `instance`
// number, generations and restarts of its own. What a frame means for the MTA (ready, fatal, deaths,
// restarts) is the supervisor's business. Touches nothing.

import type { Config } from "../../config/types.ts";
import type { ComponentStatus, WorkerFrame } from "../protocol/frames.ts";
import { PROTOCOL_VERSION, type WorkerName } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { type RestartLimits, RestartPolicy } from "./restart_policy.ts";
import { instanceLabel, spawnWorker, type WorkerPermissions } from "./spawn.ts";

/** What start() tells the supervisor about the new worker. */
export interface SlotHandlers {
  /** A well-formed frame of the current generation (`stopped` and reload answers are seen here too). */
  frame(f: WorkerFrame): void;
  /** The worker failed (an uncaught error) while it was not being stopped. */
  died(reason: string): void;
}

export class WorkerSlot {
  readonly name: WorkerName;
  /** Which of the component's workers this slot runs (1-based), absent when the component has one. */
  readonly instance?: number;
  /** How the MCP's lines name it: `smtps@2`, or the component's name. */
  readonly label: string;
  readonly policy: RestartPolicy;
  generation = 0;
  restarts = 0;
  worker?: Worker;
  ready = false;
  lastSeen = 0;
  /** When its current worker was started (uptime for status requests). */
  startedAt = 0;
  restartTimer?: ReturnType<typeof setTimeout>;
  /** Set while the worker is being stopped (shutdown or a dependency restart): resolves once it is gone. */
  stopping?: Promise<boolean>;
  readonly #now: () => number;
  #onStopped?: () => void;
  #onReloaded?: (error?: string) => void;

  constructor(name: WorkerName, limits: RestartLimits, now: () => number, instance?: number) {
    this.name = name;
    if (instance !== undefined) this.instance = instance;
    this.label = instanceLabel(name, instance);
    this.#now = now;
    this.policy = new RestartPolicy(limits, now);
  }

  /** Starts the next generation with `permissions` and `config`; returns its worker. */
  start(permissions: WorkerPermissions, config: Config, url: URL, handlers: SlotHandlers): Worker {
    this.restartTimer = undefined;
    this.generation++;
    this.ready = false;
    this.lastSeen = this.#now();
    this.startedAt = this.lastSeen;
    const { label: name, generation } = this;
    const worker = spawnWorker(this.name, permissions, generation, config, url, this.instance);
    this.worker = worker;
    this.policy.started();
    worker.onmessage = (e: MessageEvent) => {
      if (this.worker === worker) this.#receive(e.data, handlers);
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault(); // an uncaught error in a worker must not end the MTA
      if (this.worker !== worker) return;
      log.error("mcp", `${name}#${generation} failed: ${e.message}`);
      if (!this.stopping) return handlers.died(`error: ${e.message}`);
      this.#onStopped?.(); // failed while stopping: nothing left to wait for
    };
    worker.onmessageerror = () => log.error("mcp", `${name}#${generation} sent a frame that cannot be read`);
    return worker;
  }

  /** The worker answered `shutdown`. */
  stopped(): void {
    this.#onStopped?.();
  }

  /** The worker answered `reload`: undefined when applied, else why not. */
  reloaded(error?: string): void {
    this.#onReloaded?.(error);
  }

  /** Hands the worker a new configuration; resolves with its answer (undefined: applied), or why none came. */
  reload(config: Config, timeout: number): Promise<string | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(`no answer within ${timeout} ms`), timeout);
      const finish = (error?: string) => {
        clearTimeout(timer);
        this.#onReloaded = undefined;
        resolve(error);
      };
      this.#onReloaded = finish;
      this.worker!.postMessage({ v: PROTOCOL_VERSION, kind: "reload", config });
    });
  }

  /** Asks the worker to stop, waits for `stopped` (or the timeout), terminates it; true when it stopped in time. */
  stop(timeout: number): Promise<boolean> {
    if (this.stopping) return this.stopping;
    const worker = this.worker;
    if (!worker) return Promise.resolve(true);
    this.stopping = (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stopped = new Promise<boolean>((resolve) => {
        this.#onStopped = () => resolve(true);
        timer = setTimeout(() => resolve(false), timeout);
      });
      worker.postMessage({ v: PROTOCOL_VERSION, kind: "shutdown" });
      const clean = await stopped;
      clearTimeout(timer);
      if (!clean) log.warn("mcp", `${this.label} did not stop within ${timeout} ms: terminating it`);
      this.#onStopped = undefined;
      this.#onReloaded?.("stopped before answering");
      this.#forget(worker);
      this.stopping = undefined;
      return clean;
    })();
    return this.stopping;
  }

  /** Terminates the worker at once; nothing it sends afterwards is heard. */
  terminate(): void {
    if (this.worker) this.#forget(this.worker);
  }

  #forget(worker: Worker): void {
    this.worker = undefined;
    this.ready = false;
    worker.onmessage = null;
    worker.onerror = null;
    worker.terminate();
  }

  /** The slot as a status request shows it at time `now`. */
  status(now: number): ComponentStatus {
    return {
      name: this.name,
      ...(this.instance !== undefined ? { instance: this.instance } : {}),
      generation: this.generation,
      restarts: this.restarts,
      ready: this.ready,
      uptime: this.worker ? now - this.startedAt : 0,
    };
  }

  #receive(data: unknown, handlers: SlotHandlers): void {
    const f = data as WorkerFrame;
    if (typeof f !== "object" || f === null || f.v !== PROTOCOL_VERSION) {
      log.error("mcp", `dropped a control frame from ${this.label}: wrong protocol version or not a frame`);
      return;
    }
    if (f.generation !== this.generation) {
      log.warn("mcp", `ignored a ${f.kind} frame from ${this.label} generation ${f.generation}`);
      return;
    }
    this.lastSeen = this.#now();
    handlers.frame(f);
  }
}
