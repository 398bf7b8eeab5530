// The disk guard: probes the free space of the queue's file system every second. Below
// min_disk_space the queue is "low" and smtps is told to answer MAIL with 452 4.3.1; it stays low until the
// free space is back above ok_disk_space (two thresholds, so the state does not flap around one). While
// low, the state is sent again with every probe, so an smtps that restarted meanwhile learns it too.
// The probe is node:fs statfs, which Deno allows only with the `sys` permission "statfs" (worker.ts says
// why qmgr holds it); without it the guard logs once and stays off. Tests inject their own probe.
// Sends: qmgr.disk_state notices (through the function it is given). May touch: statfs of one directory.

import { statfs } from "node:fs/promises";
import { log } from "../util/log.ts";

/** Free bytes available to us on the file system holding `path`. */
export type FreeSpaceProbe = (path: string) => Promise<number>;

export const statfsProbe: FreeSpaceProbe = async (path) => {
  const s = await statfs(path);
  return Number(s.bavail) * Number(s.bsize);
};

/** How often the free space is probed (ms); smtps also probes before each message (smtps/disk_space.ts). */
export const PROBE_INTERVAL = 1_000;

export interface DiskGuardOptions {
  path: string;
  min: number;
  ok: number;
  probe?: FreeSpaceProbe;
  interval?: number;
  /** Called with the state after each probe that found it low or changed it. */
  report: (low: boolean, free: number) => void;
}

export class DiskGuard {
  readonly #o: Required<DiskGuardOptions>;
  #low = false;
  #free = Number.NaN;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #off = false;

  constructor(opts: DiskGuardOptions) {
    this.#o = {
      ...opts,
      probe: opts.probe ?? statfsProbe,
      interval: opts.interval ?? PROBE_INTERVAL,
      ok: Math.max(opts.ok, opts.min),
    };
  }

  get low(): boolean {
    return this.#low;
  }

  /** Free bytes at the last probe (NaN before the first or when the guard is off). */
  get free(): number {
    return this.#free;
  }

  get enabled(): boolean {
    return this.#o.min > 0 && !this.#off;
  }

  /** Probes now and then every interval; resolves after the first probe. */
  async start(): Promise<void> {
    if (this.#o.min <= 0) return;
    await this.check();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One probe: updates the state and reports it when low or changed. */
  async check(): Promise<void> {
    if (this.#off || this.#stopped) return;
    let free: number;
    try {
      free = await this.#o.probe(this.#o.path);
    } catch (err) {
      if ((err as Error).name === "NotCapable") {
        this.#off = true;
        log.warn("qmgr", `disk guard off: probe free space of ${this.#o.path}: ${(err as Error).message}`);
      } else {
        log.error("qmgr", `Probe free space of ${this.#o.path}: ${(err as Error).message}`);
      }
      return;
    }
    if (this.#stopped) return;
    this.#free = free;
    const was = this.#low;
    this.#low = was ? free < this.#o.ok : free < this.#o.min;
    if (this.#low !== was) {
      const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;
      if (this.#low) {
        log.warn("qmgr", `disk space low: ${mb(free)} free, below ${mb(this.#o.min)}: refusing new mail`);
      } else log.info("qmgr", `disk space ok again: ${mb(free)} free: taking mail again`);
    }
    if (this.#low || this.#low !== was) this.#o.report(this.#low, free);
  }

  #schedule(): void {
    if (this.#stopped || this.#off) return;
    this.#timer = setTimeout(async () => {
      await this.check();
      this.#schedule();
    }, this.#o.interval);
  }
}
