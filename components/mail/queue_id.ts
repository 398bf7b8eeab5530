// Queue ids: 20 upper-case hex digits, unique across restarts and across several smtps instances without
// coordination: 12 digits of arrival time (ms), 4 of a per-worker counter, 4 random. The last digit
// (random) picks the CDB subdirectory, so files spread evenly over the 16 directories. Each of several
// smtps workers (one isolate each, so one counter each) draws from its own series: the counter's first
// digit is the worker's number, so two workers never make the same id in the same millisecond.

let counter = Math.floor(Math.random() * 0x10000);
let series: number | undefined;

/** Makes this worker's ids start with counter digit `n` (1-15: smtps worker n; it wraps after 15). */
export function setQueueIdSeries(n: number): void {
  series = n & 0xf;
  counter &= 0xfff;
}

/** Makes a new queue id, e.g. `0193A1B2C3D40007F3A9`. */
export function newQueueId(now = Date.now()): string {
  counter = series === undefined ? (counter + 1) & 0xffff : (series << 12) | ((counter + 1) & 0xfff);
  const rand = crypto.getRandomValues(new Uint16Array(1))[0];
  return (now.toString(16).padStart(12, "0").slice(-12) + counter.toString(16).padStart(4, "0") +
    rand.toString(16).padStart(4, "0")).toUpperCase();
}

/** True for a string shaped like a queue id (used to validate control requests and CDB file names). */
export function isQueueId(s: string): boolean {
  return /^[0-9A-F]{20}$/.test(s);
}
