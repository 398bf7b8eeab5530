// Connection slots per destination: how many delivery transactions may run at once towards one
// destination (an address and port, occ.ts) and in total. Transactions beyond the limits wait in a FIFO
// per destination. The per-destination limit is the slow-start window of the outgoing connection cache
// (occ.ts); the scheduler tells the OCC what each result says about its hosts (tasks it runs report
// "none"), a caller without an OCC may report a task's outcome here instead.
// Pure scheduling; the work itself (a delivery) is a function handed in with each task.

/** What a task did: reached the host, failed to connect, or made no connection attempt. */
export type TaskOutcome = "connected" | "unreachable" | "none";
export type Task = () => Promise<TaskOutcome>;

/** The per-destination window and where outcomes go (the OCC; a fixed limit in tests). */
export interface Windows {
  window(dest: string): number;
  success(dest: string): void;
  failure(dest: string): void;
}

/** A fixed window and no memory (tests and callers without slow start). */
export function fixedWindows(n: number): Windows {
  return { window: () => Math.max(1, n), success: () => {}, failure: () => {} };
}

interface Destination {
  active: number;
  waiting: Task[];
}

export interface DestinationOptions {
  /** Per-destination concurrency: the slow-start windows, or a fixed number. */
  windows: Windows | number;
  /** Concurrency over all destinations. */
  maxTotal: number;
}

export class Destinations {
  readonly #windows: Windows;
  readonly #maxTotal: number;
  readonly #dests = new Map<string, Destination>();
  /** Destinations with waiting tasks, in the order they started waiting. */
  readonly #ready = new Set<string>();
  #active = 0;
  #stopped = false;

  constructor(opts: DestinationOptions) {
    this.#windows = typeof opts.windows === "number" ? fixedWindows(opts.windows) : opts.windows;
    this.#maxTotal = Math.max(1, opts.maxTotal);
  }

  /** Transactions running now. */
  get active(): number {
    return this.#active;
  }

  /** Transactions waiting for a slot. */
  get waiting(): number {
    let n = 0;
    for (const d of this.#ready) n += this.#dests.get(d)?.waiting.length ?? 0;
    return n;
  }

  /** How many transactions may run towards `dest` at once (its slow-start window). */
  window(dest: string): number {
    return this.#windows.window(dest);
  }

  /** Transactions running towards `dest` now. */
  activeFor(dest: string): number {
    return this.#dests.get(dest)?.active ?? 0;
  }

  /** Queues `task` for `dest`; it runs when a slot is free. The task resolves true on success. */
  enqueue(dest: string, task: Task): void {
    if (this.#stopped) return;
    let d = this.#dests.get(dest);
    if (!d) {
      d = { active: 0, waiting: [] };
      this.#dests.set(dest, d);
    }
    d.waiting.push(task);
    this.#ready.add(dest);
    this.#pump();
  }

  /** Starts no more tasks and forgets waiting ones (running ones finish on their own). */
  stop(): void {
    this.#stopped = true;
    this.#ready.clear();
    for (const d of this.#dests.values()) d.waiting = [];
  }

  #pump(): void {
    if (this.#stopped) return;
    for (const name of this.#ready) {
      if (this.#active >= this.#maxTotal) return;
      const d = this.#dests.get(name)!;
      while (d.waiting.length > 0 && d.active < this.window(name) && this.#active < this.#maxTotal) {
        this.#start(name, d, d.waiting.shift()!);
      }
      if (d.waiting.length === 0) this.#ready.delete(name);
    }
  }

  #start(name: string, d: Destination, task: Task): void {
    d.active++;
    this.#active++;
    task().catch((): TaskOutcome => "none").then((outcome) => this.done(name, outcome)).finally(() => {
      d.active--;
      this.#active--;
      if (d.active === 0 && d.waiting.length === 0 && this.#dests.get(name) === d) this.#dests.delete(name);
      this.#pump();
    });
  }

  /** Outcome of one transaction towards `dest`: the window grows or shrinks. */
  done(dest: string, outcome: TaskOutcome): void {
    if (outcome === "connected") this.#windows.success(dest);
    else if (outcome === "unreachable") this.#windows.failure(dest);
  }
}
