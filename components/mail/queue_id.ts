// Queue ids: 20 upper-case hex digits, unique across restarts and across several smtps instances without
// coordination: 12 digits of arrival time (ms), 4 of a per-process counter, 4 random. The last digit
// (random) picks the CDB subdirectory, so files spread evenly over the 16 directories.

let counter = Math.floor(Math.random() * 0x10000);

/** Makes a new queue id, e.g. `0193A1B2C3D40007F3A9`. */
export function newQueueId(now = Date.now()): string {
  counter = (counter + 1) & 0xffff;
  const rand = crypto.getRandomValues(new Uint16Array(1))[0];
  return (now.toString(16).padStart(12, "0").slice(-12) + counter.toString(16).padStart(4, "0") +
    rand.toString(16).padStart(4, "0")).toUpperCase();
}

/** True for a string shaped like a queue id (used to validate control requests and CDB file names). */
export function isQueueId(s: string): boolean {
  return /^[0-9A-F]{20}$/.test(s);
}
