// Counters of what qmgr did since it started (qmgrctl stats and status, the metrics worker): messages
// received, recipients delivered, deferred and bounced, DSNs sent. Besides the totals, each counter keeps
// per-minute buckets for the last hour, so rates over the last 1, 5 and 60 minutes (and the status page's
// chart) cost a fixed 60 numbers per counter. For the metrics worker also the delay of each result
// (arrival to delivery, deferral or bounce) as histograms, and the outgoing TLS sessions smtpc reported.
// Pure memory, with the clock injected.

import { Histogram } from "../util/histogram.ts";

export const COUNTERS = ["received", "delivered", "deferred", "bounced", "dsn"] as const;
export type Counter = typeof COUNTERS[number];

const MINUTE = 60_000;
const BUCKETS = 60;

export interface CounterView {
  total: number;
  /** Events per minute over the last 1, 5 and 60 minutes (fewer when qmgr runs for less). */
  perMinute: { last1: number; last5: number; last60: number };
}

export class Stats {
  readonly started: number;
  readonly #now: () => number;
  readonly #totals = new Map<Counter, number>();
  readonly #buckets = new Map<Counter, Float64Array>();
  /** The minute (since the epoch) the newest bucket stands for. */
  #minute: number;
  /** Seconds from arrival to each recipient's result, by its status. */
  readonly delay = { sent: new Histogram(), deferred: new Histogram(), bounced: new Histogram() };
  /** Outgoing TLS sessions by `trust|protocol|cipher`. */
  readonly tlsOut = new Map<string, number>();

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.started = now();
    this.#minute = Math.floor(this.started / MINUTE);
    for (const c of COUNTERS) {
      this.#totals.set(c, 0);
      this.#buckets.set(c, new Float64Array(BUCKETS));
    }
  }

  /** Counts `n` events of `c` now. */
  add(c: Counter, n = 1): void {
    this.#advance();
    this.#totals.set(c, this.#totals.get(c)! + n);
    this.#buckets.get(c)![this.#minute % BUCKETS] += n;
  }

  /** Counts a result of status `status` for a message that arrived at `arrival` (ms since the epoch). */
  observeDelay(status: "sent" | "deferred" | "bounced", arrival: number): void {
    this.delay[status].observe(Math.max(0, this.#now() - arrival) / 1000);
  }

  /** Counts an outgoing TLS session smtpc reported. */
  addTls(tls: { version: string; cipher: string; verified: boolean }): void {
    const key = `${tls.verified ? "Verified" : "Untrusted"}|${tls.version}|${tls.cipher}`;
    this.tlsOut.set(key, (this.tlsOut.get(key) ?? 0) + 1);
  }

  /** The last 60 minutes' counts of `c`, oldest first; the last is the current minute. */
  series(c: Counter): number[] {
    this.#advance();
    const b = this.#buckets.get(c)!;
    const out: number[] = [];
    for (let i = BUCKETS - 1; i >= 0; i--) out.push(b[(this.#minute - i + BUCKETS * 2) % BUCKETS]);
    return out;
  }

  total(c: Counter): number {
    return this.#totals.get(c)!;
  }

  /** Totals and rates of every counter. */
  view(): Record<Counter, CounterView> {
    this.#advance();
    const now = this.#now();
    const out = {} as Record<Counter, CounterView>;
    for (const c of COUNTERS) {
      const b = this.#buckets.get(c)!;
      const rate = (minutes: number) => {
        let sum = 0;
        for (let i = 0; i < minutes; i++) sum += b[(this.#minute - i + BUCKETS) % BUCKETS];
        // The current minute is only partly over; so is the whole span when qmgr started recently.
        const span = Math.min(
          minutes * MINUTE,
          Math.max(now - this.started, 1),
          (minutes - 1) * MINUTE +
            (now % MINUTE || MINUTE),
        );
        return Math.round((sum / (span / MINUTE)) * 10) / 10;
      };
      out[c] = {
        total: this.#totals.get(c)!,
        perMinute: { last1: rate(1), last5: rate(5), last60: rate(60) },
      };
    }
    return out;
  }

  /** Clears the buckets of minutes that passed since the last event. */
  #advance(): void {
    const minute = Math.floor(this.#now() / MINUTE);
    if (minute === this.#minute) return;
    const steps = Math.min(BUCKETS, minute - this.#minute);
    for (let i = 1; i <= steps; i++) {
      for (const b of this.#buckets.values()) b[(this.#minute + i) % BUCKETS] = 0;
    }
    this.#minute = minute;
  }
}
