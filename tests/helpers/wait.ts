// Waiting in tests for a condition instead of sleeping a fixed time: waitFor() polls until the condition
// holds, failing after a timeout with what it waited for. "Nothing more arrives" is no sleep either: wait
// for the state after which nothing can arrive (the queue empty, the message removed), then check.
// Touches nothing.

export interface WaitOptions {
  /** Give up after this many ms (default 5 s). */
  timeout?: number;
  /** Poll this often, in ms (default 10; more when each check costs something, e.g. a connection). */
  every?: number;
}

/** Resolves once `check` holds; throws `gave up waiting for <what>` after the timeout. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  opts: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeout ?? 5_000);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.every ?? 10));
  }
}
