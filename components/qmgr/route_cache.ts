// A small cache in front of smar's route lookups: "ok" routes are kept for a while (60 s by default),
// bounded in size (oldest first out); temporary and permanent failures are never cached, so the next
// attempt asks again. Concurrent lookups for one domain share one request.
// Receives: domains from the scheduler. Sends: qmgr.route to smar through the lookup function it is given.

import type { RouteResult } from "../protocol/messages.ts";

export type RouteLookup = (domain: string) => Promise<RouteResult>;

export interface RouteCacheOptions {
  ttl?: number;
  maxEntries?: number;
  now?: () => number;
}

export class RouteCache {
  readonly #lookup: RouteLookup;
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { result: RouteResult; expires: number }>();
  readonly #inflight = new Map<string, Promise<RouteResult>>();

  constructor(lookup: RouteLookup, opts: RouteCacheOptions = {}) {
    this.#lookup = lookup;
    this.#ttl = opts.ttl ?? 60_000;
    this.#max = Math.max(1, opts.maxEntries ?? 10_000);
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#cache.size;
  }

  /** The route for `domain` (lower-cased by the caller), from the cache when fresh. */
  get(domain: string): Promise<RouteResult> {
    const hit = this.#cache.get(domain);
    if (hit) {
      if (hit.expires > this.#now()) return Promise.resolve(hit.result);
      this.#cache.delete(domain);
    }
    const pending = this.#inflight.get(domain);
    if (pending) return pending;
    const p = this.#lookup(domain).then((result) => {
      this.#inflight.delete(domain);
      if (result.status === "ok") this.#remember(domain, result);
      return result;
    }, (err: Error): RouteResult => {
      this.#inflight.delete(domain);
      return { status: "temp", text: `route lookup failed: ${err.message}` };
    });
    this.#inflight.set(domain, p);
    return p;
  }

  /**
   * Forgets the route of `domain` (qmgrctl requeue: route it afresh); a lookup under way is no longer
   * shared with later callers. Returns the route that was cached, if any.
   */
  forget(domain: string): RouteResult | undefined {
    const hit = this.#cache.get(domain);
    this.#cache.delete(domain);
    this.#inflight.delete(domain);
    return hit?.result;
  }

  #remember(domain: string, result: RouteResult): void {
    this.#cache.delete(domain);
    if (this.#cache.size >= this.#max) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(domain, { result, expires: this.#now() + this.#ttl });
  }
}
