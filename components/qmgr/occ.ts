// The outgoing connection cache (OCC): what qmgr remembers per destination IP address.
// - Slow start: the window (how many delivery connections may be open towards the address at once)
//   starts at oci (initial_connections), grows by one with each transaction that reached the host, up to
//   ocm (max_connections), and halves (down to 1) when a connection attempt fails.
// - Hosts that are down: a failed connection attempt marks the address down for octo; until then its
//   recipients are deferred without a new connection attempt. qmgrctl flush forgets the marks.
// Bounded by OCC_max_entries: the least recently used address is forgotten first (it then starts over at
// oci). Pure memory; the per-address limits come from the qmgr_conf map (conf_map.ts).

import type { ConfTag } from "./conf_map.ts";

export interface OccLimits {
  get(tag: ConfTag, ip: string): number;
}

interface Entry {
  window: number;
  downUntil: number;
  /** Consecutive failed connection attempts. */
  failures: number;
}

export interface OccEntryView {
  address: string;
  window: number;
  max: number;
  /** When the host is down: until when (ms since the epoch). */
  downUntil?: number;
  failures: number;
}

export class Occ {
  readonly #limits: OccLimits;
  readonly #max: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(limits: OccLimits, opts: { maxEntries: number; now?: () => number }) {
    this.#limits = limits;
    this.#max = Math.max(1, opts.maxEntries);
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** How many connections may be open towards `ip` now. */
  window(ip: string): number {
    return this.#entry(ip).window;
  }

  /** A transaction towards `ip` reached the host: the window grows by one, up to ocm. */
  success(ip: string): void {
    const e = this.#entry(ip);
    e.window = Math.min(this.#ceiling(ip), e.window + 1);
    e.failures = 0;
    e.downUntil = 0;
  }

  /** A connection attempt towards `ip` failed: the window halves and the host is down for octo. */
  failure(ip: string): void {
    const e = this.#entry(ip);
    e.window = Math.max(1, Math.floor(e.window / 2));
    e.failures++;
    e.downUntil = this.#now() + this.#limits.get("octo", ip);
  }

  /** Until when `ip` is known to be down, or undefined when it is not (or the mark expired). */
  downUntil(ip: string): number | undefined {
    const e = this.#entries.get(ip);
    return e && e.downUntil > this.#now() ? e.downUntil : undefined;
  }

  /** Forgets every down mark (qmgrctl flush: try again now). */
  clearDown(): void {
    for (const e of this.#entries.values()) e.downUntil = 0;
  }

  /** Every remembered address (qmgrctl status). */
  view(): OccEntryView[] {
    const now = this.#now();
    return [...this.#entries].map(([address, e]) => ({
      address,
      window: e.window,
      max: this.#ceiling(address),
      downUntil: e.downUntil > now ? e.downUntil : undefined,
      failures: e.failures,
    }));
  }

  #ceiling(ip: string): number {
    return Math.max(1, this.#limits.get("ocm", ip));
  }

  /** The entry of `ip`, created at the initial window; touched so eviction takes the least recent. */
  #entry(ip: string): Entry {
    let e = this.#entries.get(ip);
    if (e) {
      this.#entries.delete(ip);
    } else {
      const initial = Math.max(1, this.#limits.get("oci", ip));
      e = { window: Math.min(initial, this.#ceiling(ip)), downUntil: 0, failures: 0 };
      if (this.#entries.size >= this.#max) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
    }
    this.#entries.set(ip, e);
    return e;
  }
}
