// A bounded cache of DNS answers that expire by their TTL. Insertion order is age: when full, the oldest
// entry goes. The clock is injected so tests can move time. Touches nothing.

export class TtlCache<V> {
  readonly #entries = new Map<string, { value: V; expires: number }>();

  constructor(
    readonly maxEntries: number,
    readonly now: () => number = Date.now,
  ) {
    if (!(maxEntries >= 1)) {
      throw new RangeError(`Create DNS cache: maxEntries must be at least 1, got ${maxEntries}`);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value stored under `key`, unless it has expired. */
  get(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** Stores `value` for `ttlSeconds` (nothing is stored for a TTL of 0). */
  set(key: string, value: V, ttlSeconds: number): void {
    if (!(ttlSeconds > 0)) return;
    this.#entries.delete(key); // re-inserting makes it the youngest
    while (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value, expires: this.now() + ttlSeconds * 1000 });
  }

  clear(): void {
    this.#entries.clear();
  }
}
