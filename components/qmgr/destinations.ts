// Connection slots per destination: how many delivery transactions may run at once towards one
// destination (the first address of a route) and in total. Transactions beyond the limits wait in a FIFO
// per destination. The per-destination limit comes from one function, window(), so per-destination slow
// start (initial_connections growing to max_connections on success, shrinking on failure) only has to
// change that function and feed it outcomes through done().
// Pure scheduling; the work itself (a delivery) is a function handed in with each task.

export type Task = () => Promise<boolean>;

interface Destination {
  active: number;
  waiting: Task[];
}

export interface DestinationOptions {
  /** Per-destination concurrency (qmgr.smtpc.max_connections). */
  maxPerDestination: number;
  /** Concurrency over all destinations. */
  maxTotal: number;
}

export class Destinations {
  readonly #opts: DestinationOptions;
  readonly #dests = new Map<string, Destination>();
  /** Destinations with waiting tasks, in the order they started waiting. */
  readonly #ready = new Set<string>();
  #active = 0;
  #stopped = false;

  constructor(opts: DestinationOptions) {
    this.#opts = {
      maxPerDestination: Math.max(1, opts.maxPerDestination),
      maxTotal: Math.max(1, opts.maxTotal),
    };
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

  /** How many transactions may run towards `dest` at once (the hook for slow start). */
  window(_dest: string): number {
    return this.#opts.maxPerDestination;
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
      if (this.#active >= this.#opts.maxTotal) return;
      const d = this.#dests.get(name)!;
      while (d.waiting.length > 0 && d.active < this.window(name) && this.#active < this.#opts.maxTotal) {
        this.#start(name, d, d.waiting.shift()!);
      }
      if (d.waiting.length === 0) this.#ready.delete(name);
    }
  }

  #start(name: string, d: Destination, task: Task): void {
    d.active++;
    this.#active++;
    task().catch(() => false).then((ok) => this.done(name, ok)).finally(() => {
      d.active--;
      this.#active--;
      if (d.active === 0 && d.waiting.length === 0 && this.#dests.get(name) === d) this.#dests.delete(name);
      this.#pump();
    });
  }

  /** Outcome of one transaction towards `dest` (slow start will grow or shrink the window here). */
  done(_dest: string, _ok: boolean): void {}
}
