// The connection cache: after a transaction a healthy link (link.ts) is kept idle for a short time
// (connection_cache_time_limit, 2 s by default) so the next transaction to the same server (same protocol,
// address and port) skips the TCP handshake, the greeting, EHLO and TLS. A link is not reused once it
// is older than connection_reuse_time_limit or has carried connection_reuse_count_limit transactions; an
// idle link whose time is up gets a QUIT.
//
// qmgr's limits: qmgr hands smtpc at most `window` transactions at once per destination (its slow-start
// key: the address and port of the first host of the route it hands over, the first one it considers up)
// and knows nothing of this cache. Each idle link is counted against the destination of the transaction
// that used it last, and a transaction opens a new connection only
// when no idle link serves it, after closing the idle links counted against its own destination. So the
// connections open towards a destination never exceed the transactions qmgr lets run there (each
// running transaction holds one, an idle link only fills a slot nobody uses). The one exception is short:
// when qmgr shrinks a window, idle links beyond it live until their idle time is up.
// Touches only the sockets of the links it holds.

import { destinationKey } from "../mail/result.ts";
import type { DeliveryTransaction } from "../protocol/messages.ts";
import { type Link, linkKey } from "./link.ts";

export interface CacheLimits {
  /** How long a link may stay idle (ms); 0 turns the cache off. */
  idleMs: number;
  /** A link opened longer ago than this (ms) is not reused. */
  maxAgeMs: number;
  /** A link that carried this many transactions is not reused. */
  maxTransactions: number;
  /** Idle links kept over all servers; the oldest goes first beyond it. */
  maxIdle: number;
}

interface Idle {
  link: Link;
  /** qmgr's destination key the link counts against. */
  dest: string;
  timer: ReturnType<typeof setTimeout>;
}

/** qmgr's destination key for `ta`: the address and port of the first host of its route. */
export function destinationOf(ta: DeliveryTransaction): string {
  const first = ta.route.hosts[0];
  return first ? destinationKey(first.address, ta.route.port) : "";
}

export class ConnectionCache {
  /** Idle links by link key, oldest first. */
  readonly #idle = new Map<string, Idle[]>();
  #count = 0;
  readonly #quitting = new Set<Promise<void>>();
  #closed = false;

  constructor(readonly limits: CacheLimits, readonly now: () => number = Date.now) {}

  /** Idle links held now. */
  get size(): number {
    return this.#count;
  }

  /**
   * An idle link to one of `ta`'s route hosts (in route order) that `fits` (its TLS requirement is the
   * transaction's), taken out of the cache, or undefined. Links that do not fit stay idle.
   */
  take(ta: DeliveryTransaction, fits: (link: Link) => boolean = () => true): Link | undefined {
    const { protocol, port, hosts } = ta.route;
    for (const host of hosts) {
      const list = this.#idle.get(linkKey({ protocol, host, port, implicitTls: ta.route.implicitTls }));
      if (!list) continue;
      for (let i = list.length - 1; i >= 0; i--) {
        const entry = list[i];
        if (this.#reusable(entry.link) && !fits(entry.link)) continue;
        list.splice(i, 1);
        this.#forget(entry);
        if (this.#reusable(entry.link)) return entry.link;
        this.#retire(entry.link);
      }
    }
    return undefined;
  }

  /** Keeps `link` idle for the next transaction, counted against `dest`; or says QUIT when it is done. */
  put(link: Link, dest: string): void {
    if (this.#closed || this.limits.idleMs <= 0 || !this.#reusable(link) || link.needsRset) {
      this.#retire(link);
      return;
    }
    while (this.#count >= Math.max(1, this.limits.maxIdle)) this.#evictOldest();
    const entry: Idle = { link, dest, timer: 0 as unknown as ReturnType<typeof setTimeout> };
    entry.timer = setTimeout(() => {
      const list = this.#idle.get(link.key);
      const i = list?.indexOf(entry) ?? -1;
      if (i < 0) return;
      list!.splice(i, 1);
      this.#forget(entry);
      this.#retire(link);
    }, this.limits.idleMs);
    const list = this.#idle.get(link.key);
    if (list) list.push(entry);
    else this.#idle.set(link.key, [entry]);
    this.#count++;
  }

  /** Closes the idle links counted against `dest` (before a new connection is opened for it). */
  dropDestination(dest: string): void {
    for (const list of this.#idle.values()) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i].dest !== dest) continue;
        const [entry] = list.splice(i, 1);
        this.#forget(entry);
        this.#retire(entry.link);
      }
    }
  }

  /** Says QUIT on every idle link and waits for them to close; put() retires links from now on. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const list of this.#idle.values()) {
      for (const entry of list.splice(0)) {
        this.#forget(entry);
        this.#retire(entry.link);
      }
    }
    await Promise.allSettled([...this.#quitting]);
  }

  #reusable(link: Link): boolean {
    return link.usable && link.transactions < this.limits.maxTransactions &&
      this.now() - link.opened < this.limits.maxAgeMs;
  }

  #evictOldest(): void {
    let oldest: Idle | undefined;
    for (const list of this.#idle.values()) {
      if (list.length > 0 && (!oldest || list[0].link.opened < oldest.link.opened)) oldest = list[0];
    }
    if (!oldest) {
      this.#count = 0;
      return;
    }
    this.#idle.get(oldest.link.key)!.shift();
    this.#forget(oldest);
    this.#retire(oldest.link);
  }

  /** Bookkeeping for an entry leaving the cache. */
  #forget(entry: Idle): void {
    clearTimeout(entry.timer);
    this.#count--;
    const list = this.#idle.get(entry.link.key);
    if (list && list.length === 0) this.#idle.delete(entry.link.key);
  }

  #retire(link: Link): void {
    if (!link.usable) return;
    const quitting: Promise<void> = link.quit().finally(() => this.#quitting.delete(quitting));
    this.#quitting.add(quitting);
  }
}
