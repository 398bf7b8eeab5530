// A fixed-bucket histogram as a component keeps it for the metrics worker: one counter per bucket, a
// sum and nothing else, so an observation costs a short scan of the bounds and no allocation. What it
// hands out (HistogramData) is the protocol's form; the metrics worker turns it into Prometheus buckets.
// Pure memory.

import type { HistogramData } from "../protocol/messages.ts";

/** Delays and ages in seconds: 1 s to 5 days, the spans a mail queue's times fall in. */
export const DELAY_BOUNDS: readonly number[] = [
  1,
  5,
  15,
  60,
  300,
  900,
  3600,
  4 * 3600,
  86_400,
  5 * 86_400,
];

export class Histogram {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;

  constructor(bounds: readonly number[] = DELAY_BOUNDS) {
    this.bounds = bounds;
    this.#counts = new Array(bounds.length + 1).fill(0);
  }

  /** Counts one observation of `value`. */
  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.#counts[i]++;
    this.#sum += value;
  }

  get count(): number {
    return this.#counts.reduce((a, b) => a + b, 0);
  }

  /** The counts per bucket (not cumulative), the bounds and the sum. */
  data(): HistogramData {
    return { bounds: [...this.bounds], counts: [...this.#counts], sum: this.#sum };
  }
}
