// The outgoing connection cache (OCC): what qmgr remembers per destination, an address and port
// (`192.0.2.1:25`, `[2001:db8::1]:25`, the LMTP socket): each address of each MX host of a route, for SMTP
// and LMTP alike, is a destination of its own, so a dead port or a dead first MX never holds up another.
// - Slow start: the window (how many delivery connections may be open towards the destination at once)
//   starts at oci (initial_connections), grows by one with each transaction that reached the host, up to
//   ocm (max_connections), and halves (down to 1) when a connection attempt fails.
// - Dead destinations (as Postfix's): a failed connection attempt marks the destination down for a short
//   interval that doubles with each consecutive failure (DOWN_MIN, 2 DOWN_MIN, ... up to octo); while it
//   is down no transaction goes there. Then it is probed: one transaction at a time (window 1) until one
//   gets through, which clears the failures. qmgrctl flush forgets the marks.
// Bounded by OCC_max_entries: the least recently used destination is forgotten first (it then starts over
// at oci). Pure memory; the per-address limits come from the qmgr_conf map (conf_map.ts).

import { addressOfKey } from "../mail/result.ts";
import type { ConfTag } from "./conf_map.ts";

/** The first down interval after a failed connection (ms); it doubles with each failure up to octo. */
export const DOWN_MIN = 1_000;

/** A destination's state: taking mail, marked down, or waiting for a probe to get through. */
export type DestState = "up" | "down" | "probe";

export interface OccLimits {
  get(tag: ConfTag, ip: string): number;
}

interface Entry {
  window: number;
  downUntil: number;
  /** Consecutive failed connection attempts. */
  failures: number;
  /** Why the last attempt failed. */
  reason?: string;
}

export interface OccEntryView {
  /** The destination key, address and port. */
  address: string;
  state: DestState;
  window: number;
  max: number;
  /** When the destination is down: until when (ms since the epoch). */
  downUntil?: number;
  failures: number;
  /** Why the last connection attempt failed, while failures > 0. */
  reason?: string;
}

export class Occ {
  readonly #limits: OccLimits;
  readonly #max: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #downMin: number;

  constructor(limits: OccLimits, opts: { maxEntries: number; now?: () => number; downMin?: number }) {
    this.#limits = limits;
    this.#max = Math.max(1, opts.maxEntries);
    this.#now = opts.now ?? Date.now;
    this.#downMin = Math.max(1, opts.downMin ?? DOWN_MIN);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** How many connections may be open towards `dest` now (1 while it is probed). */
  window(dest: string): number {
    const e = this.#entry(dest);
    return e.failures > 0 ? 1 : e.window;
  }

  /** Whether `dest` takes mail (up), is marked down, or waits for a probe. */
  state(dest: string): DestState {
    const e = this.#entries.get(dest);
    if (!e || e.failures === 0) return "up";
    return e.downUntil > this.#now() ? "down" : "probe";
  }

  /** A transaction towards `dest` reached the host: the window grows by one, up to ocm. */
  success(dest: string): void {
    const e = this.#entry(dest);
    e.window = Math.min(this.#ceiling(dest), e.window + 1);
    e.failures = 0;
    e.downUntil = 0;
    e.reason = undefined;
  }

  /** A connection attempt towards `dest` failed: the window halves and it is down for a growing interval. */
  failure(dest: string, reason?: string): void {
    const e = this.#entry(dest);
    e.window = Math.max(1, Math.floor(e.window / 2));
    e.failures++;
    e.reason = reason;
    e.downUntil = this.#now() + this.#interval(dest, e.failures);
  }

  /**
   * When the mail of a destination that is down should come back: at its probe while the down interval
   * is still growing (a short outage: mail flows again soon after), undefined once it reached octo (a long
   * outage: the recipients' own back-off, as Postfix does).
   */
  retryAt(dest: string): number | undefined {
    const e = this.#entries.get(dest);
    if (!e || e.failures === 0 || e.downUntil <= this.#now()) return undefined;
    return this.#interval(dest, e.failures) < this.#cap(dest) ? e.downUntil : undefined;
  }

  #cap(dest: string): number {
    return Math.max(this.#downMin, this.#limits.get("octo", addressOfKey(dest)));
  }

  #interval(dest: string, failures: number): number {
    return Math.min(this.#cap(dest), this.#downMin * 2 ** Math.min(failures - 1, 30));
  }

  /** Until when `dest` is known to be down, or undefined when it is not (or the mark expired). */
  downUntil(dest: string): number | undefined {
    const e = this.#entries.get(dest);
    return e && e.downUntil > this.#now() ? e.downUntil : undefined;
  }

  /**
   * Forgets the down marks of `dests` (qmgrctl requeue), or every down mark without (qmgrctl flush): try
   * again now; a probe goes first.
   */
  clearDown(dests?: Iterable<string>): void {
    if (dests === undefined) {
      for (const e of this.#entries.values()) e.downUntil = 0;
      return;
    }
    for (const d of dests) {
      const e = this.#entries.get(d);
      if (e) e.downUntil = 0;
    }
  }

  /** Every remembered destination (qmgrctl status). */
  view(): OccEntryView[] {
    const now = this.#now();
    return [...this.#entries].map(([address, e]) => {
      const v: OccEntryView = {
        address,
        state: e.failures === 0 ? "up" : e.downUntil > now ? "down" : "probe",
        window: e.failures > 0 ? 1 : e.window,
        max: this.#ceiling(address),
        downUntil: e.downUntil > now ? e.downUntil : undefined,
        failures: e.failures,
      };
      if (e.reason !== undefined) v.reason = e.reason;
      return v;
    });
  }

  #ceiling(dest: string): number {
    return Math.max(1, this.#limits.get("ocm", addressOfKey(dest)));
  }

  /** The entry of `dest`, created at the initial window; touched so eviction takes the least recent. */
  #entry(dest: string): Entry {
    let e = this.#entries.get(dest);
    if (e) {
      this.#entries.delete(dest);
    } else {
      const initial = Math.max(1, this.#limits.get("oci", addressOfKey(dest)));
      e = { window: Math.min(initial, this.#ceiling(dest)), downUntil: 0, failures: 0 };
      if (this.#entries.size >= this.#max) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
    }
    this.#entries.set(dest, e);
    return e;
  }
}
