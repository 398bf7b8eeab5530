// smtps's own look at the free space of the CDB's file system, so the disk guard guards each message and
// not only every few seconds (qmgr's timer, qmgr/disk_guard.ts, still tells smtps too): MAIL probes it
// (statfs is cheap) and is refused with 452 4.3.1 below min_disk_space, until the space is back above
// ok_disk_space; while a message is written, each buffer is written only if at least half of
// min_disk_space stays free after it (the rest is kept for the queue database, DSNs and the messages
// being committed), else the message stops there and is refused with 452 4.3.1 after its end, so no
// message fills the disk. A reading is reused for `maxAge` ms (the server uses PROBE_REUSE_MS), less what
// this worker has been allowed to write since, and probes under way are shared: at hundreds of messages a
// second, one statfs per MAIL and per buffer was a seventh of smtps's busy time (README, Benchmark). Needs
// the `sys` permission "statfs" (mcp/permissions.ts); without it, it says so once and leaves the guarding
// to qmgr's notices. Touches: statfs of the CDB directory.

import { type FreeSpaceProbe, statfsProbe } from "../qmgr/disk_guard.ts";
import { log } from "../util/log.ts";

export interface DiskSpaceOptions {
  path: string;
  /** min_disk_space (bytes); 0 turns the checks off. */
  min: number;
  /** ok_disk_space (bytes). */
  ok: number;
  probe?: FreeSpaceProbe;
  /** How long a reading is reused (ms); 0 (the default): every check probes. */
  maxAge?: number;
}

/** How long smtps reuses a reading of the free space (ms). */
export const PROBE_REUSE_MS = 100;

export class DiskSpace {
  readonly #path: string;
  readonly #min: number;
  readonly #ok: number;
  readonly #probe: FreeSpaceProbe;
  readonly #maxAge: number;
  #low = false;
  #off: boolean;
  /** The last reading, when it was taken (performance.now()), and the bytes room() granted since. */
  #reading: { free: number; at: number; granted: number } | undefined;
  #probing: Promise<number | undefined> | undefined;

  constructor(opts: DiskSpaceOptions) {
    this.#path = opts.path;
    this.#min = opts.min;
    this.#ok = Math.max(opts.ok, opts.min);
    this.#probe = opts.probe ?? statfsProbe;
    this.#maxAge = opts.maxAge ?? 0;
    this.#off = opts.min <= 0;
  }

  /** Probes now: true when a new message must be refused (below min_disk_space, or not yet above ok). */
  async low(): Promise<boolean> {
    const free = await this.#free();
    if (free === undefined) return false;
    const was = this.#low;
    this.#low = was ? free < this.#ok : free < this.#min;
    if (this.#low !== was) {
      const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
      if (this.#low) {
        log.warn("smtps", `disk space low: ${mb(free)} free in ${this.#path}: refusing new mail`);
      } else log.info("smtps", `disk space ok again: ${mb(free)} free in ${this.#path}: taking mail again`);
    }
    return this.#low;
  }

  /** Whether `bytes` more may be written and still leave half of min_disk_space free. */
  async room(bytes: number): Promise<boolean> {
    const free = await this.#free();
    const ok = free === undefined || free - bytes >= this.#min / 2;
    if (ok && this.#reading) this.#reading.granted += bytes;
    return ok;
  }

  /** The free space: a fresh enough reading less what was granted since, else a new probe (shared). */
  async #free(): Promise<number | undefined> {
    if (this.#off) return undefined;
    const r = this.#reading;
    if (r && performance.now() - r.at < this.#maxAge) return r.free - r.granted;
    this.#probing ??= this.#read().finally(() => (this.#probing = undefined));
    return await this.#probing;
  }

  async #read(): Promise<number | undefined> {
    try {
      const free = await this.#probe(this.#path);
      this.#reading = this.#maxAge > 0 ? { free, at: performance.now(), granted: 0 } : undefined;
      return free;
    } catch (err) {
      if ((err as Error).name === "NotCapable") {
        this.#off = true;
        log.warn("smtps", `own disk checks off (qmgr's notices still apply): ${(err as Error).message}`);
      } else log.error("smtps", `Probe free space of ${this.#path}: ${(err as Error).message}`);
      return undefined;
    }
  }
}
