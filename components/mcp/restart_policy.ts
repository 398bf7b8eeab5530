// When to restart a dead worker, and when to give up: the crash-loop protection of the supervisor, kept
// apart as plain logic with an injected clock. The delay starts small and doubles up to a ceiling; it
// resets once the worker has stayed healthy for a while; too many restarts within a window stop the MTA.
// Like Postfix's master_spawn throttle, a worker that keeps dying is restarted ever more slowly.

export interface RestartLimits {
  /** First restart delay (ms). */
  minDelay: number;
  /** The delay doubles up to this (ms). */
  maxDelay: number;
  /** A worker healthy this long (ms) is forgiven: its delay starts over. */
  healthyAfter: number;
  /** More than `maxRestarts` restarts within `window` ms means a crash loop. */
  maxRestarts: number;
  window: number;
}

export const DEFAULT_LIMITS: RestartLimits = {
  minDelay: 100,
  maxDelay: 10_000,
  healthyAfter: 60_000,
  maxRestarts: 10,
  window: 60_000,
};

export type RestartDecision = { action: "restart"; delay: number } | { action: "give-up"; reason: string };

/** The restart history of one worker. */
export class RestartPolicy {
  #delay: number;
  #times: number[] = [];
  #startedAt: number;

  constructor(readonly limits: RestartLimits = DEFAULT_LIMITS, readonly now: () => number = Date.now) {
    this.#delay = limits.minDelay;
    this.#startedAt = now();
  }

  /** Records that a (re)started worker is up from now on. */
  started(): void {
    this.#startedAt = this.now();
  }

  /** The worker died: how long to wait before the next start, or whether to give up. */
  died(): RestartDecision {
    const t = this.now();
    if (t - this.#startedAt >= this.limits.healthyAfter) this.#delay = this.limits.minDelay;
    this.#times = this.#times.filter((x) => t - x < this.limits.window);
    if (this.#times.length >= this.limits.maxRestarts) {
      return {
        action: "give-up",
        reason: `${this.#times.length} restarts within ${this.limits.window / 1000} s`,
      };
    }
    this.#times.push(t);
    const delay = this.#delay;
    this.#delay = Math.min(this.#delay * 2, this.limits.maxDelay);
    return { action: "restart", delay };
  }
}
