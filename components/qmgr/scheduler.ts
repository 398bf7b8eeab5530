// The scheduler: moves recipients into the active queue (fresh commits directly, waiting ones from the
// store when they are due and there is room), asks smar for each domain's route, groups one message's
// recipients that share a route and an envelope sender into delivery transactions (transactions.ts; a
// list owner's recipients leave with the owner as MAIL FROM), hands those to smtpc within the connection
// limits (destinations.ts: per-destination slow start), and records the results (results.ts), handing
// owed DSNs to notices.ts. Each transaction is offered the route's hosts whose destination (address and
// port, occ.ts) is not down, and counts against the first of them; a destination being probed takes one
// transaction at a time. When every host is down, the recipients are deferred at once, without a
// connection attempt, until the probe. smtpc's structured result says which hosts failed and which
// answered: the OCC learns from that, never from reply text. A single timer wakes the scheduler at the
// earliest next retry (at most every few seconds, never a busy loop); freed room wakes it at once.
// Receives: committed envelopes (incoming.ts), smtpc results. Sends: qmgr.route to smar, qmgr.deliver to
// smtpc (through the functions it is given). May touch: the store.

import type { Config } from "../../config/types.ts";
import { destinationKey, reasonResult, relayText } from "../mail/result.ts";
import {
  type DeliveryTransaction,
  type Envelope,
  LMTP_SOCKET_ADDRESS,
  type RecipientResult,
  type SmtpcResult,
} from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { ActiveQueue, AqEntry } from "./active_queue.ts";
import type { Destinations, TaskOutcome } from "./destinations.ts";
import type { GroupCommit } from "./group_commit.ts";
import type { Notices } from "./notices.ts";
import { logTesting, type TlsReporting } from "./tlsrpt.ts";
import type { Occ } from "./occ.ts";
import { readCdbFile } from "../mail/cdb.ts";
import {
  type AttemptInfo,
  failLostMessage,
  isMessageDone,
  recordResult,
  removeMessage,
  type ResultContext,
} from "./results.ts";
import type { RouteCache } from "./route_cache.ts";
import type { Stats } from "./stats.ts";
import type { QueueStore } from "./store.ts";
import { messageOf, type StoredMessage } from "./store_rows.ts";
import {
  addToBatches,
  agentFailure,
  type Batch,
  groupByDomain,
  splitBatch,
  transactionOf,
} from "./transactions.ts";

type Host = DeliveryTransaction["route"]["hosts"][number];

/** Where a transaction goes: a destination and the hosts it may try; or, every host down, a deferral. */
type Plan = { dest: string; hosts: Host[] } | { reply: string; retryAt?: number };

/** Longest the scheduler sleeps between looks at the store (ms). */
export const MAX_SLEEP = 5_000;
/** How soon a result the store refused is recorded again (ms). */
export const RECORD_RETRY = 1_000;

export interface SchedulerDeps {
  store: QueueStore;
  commit: GroupCommit;
  aq: ActiveQueue;
  routes: RouteCache;
  destinations: Destinations;
  deliver: (ta: DeliveryTransaction) => Promise<SmtpcResult>;
  config: Config;
  now: () => number;
  /** Hosts known to be down (none: every destination is tried). */
  occ?: Occ;
  stats?: Stats;
}

export class Scheduler {
  readonly #d: SchedulerDeps;
  readonly #ctx: ResultContext;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #stopped = false;
  #taSeq = 0;
  readonly #retries = new Set<ReturnType<typeof setTimeout>>();
  #notices: Notices | undefined;
  /** Messages being removed (two results may find a message done at once). */
  readonly #removing = new Set<string>();
  /** When each message received since this start was committed (the `a` of a log line's delays=a/b/c/d). */
  readonly #committed = new Map<string, number>();

  constructor(deps: SchedulerDeps) {
    this.#d = deps;
    this.#ctx = {
      store: deps.store,
      commit: deps.commit,
      config: deps.config.qmgr,
      hostname: deps.config.hostname,
      now: deps.now,
      stats: deps.stats,
    };
  }

  /** TLS-RPT (RFC 8460): counts the TLS results of deliveries and the failed policy fetches of routes. */
  tlsRpt: Pick<TlsReporting, "recordResult" | "recordRoute"> | undefined;

  /** Where owed DSNs go (set once; notices.ts needs admit() of this scheduler in turn). */
  set notices(n: Notices) {
    this.#notices = n;
  }

  /** Starts scheduling: loads what is due now and arms the timer. */
  start(): void {
    this.refill();
  }

  /** Stops starting new work; results still arriving are ignored (the store keeps those recipients). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const t of this.#retries) clearTimeout(t);
    this.#retries.clear();
    this.#d.destinations.stop();
  }

  /** A freshly committed message whose first `active` recipients hold AQ slots reserved before commit. */
  admit(env: Envelope, active: number): void {
    this.#committed.set(env.id, this.#d.now());
    if (this.#stopped || active <= 0) return;
    const m = messageOf(env);
    const entries = env.recipients.slice(0, active).map((r, index) => ({
      ...r,
      messageId: env.id,
      index,
      tries: 0,
    }));
    this.#d.aq.add(m, entries, true);
    this.#routeSafely(m, entries);
  }

  /** Moves due recipients from the store into the active queue (as many as there is room for). */
  refill(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const { store, commit, aq } = this.#d;
    try {
      // A recipient already in the active queue (its ACTIVE mark was lost with a failed commit) is not
      // loaded twice.
      const rows = store.due(this.#d.now(), aq.room).filter((d) =>
        !aq.has(d.recipient.messageId, d.recipient.index)
      );
      if (rows.length > 0) {
        // Lost with a failed commit: marked again in the next one (the store would offer them again),
        // as far as they are still in the active queue.
        const mark = (all: boolean) => () => {
          for (const { recipient: r } of rows) {
            if (all || aq.has(r.messageId, r.index)) store.markActive(r.messageId, r.index);
          }
        };
        const again = () => {
          if (!this.#stopped) commit.apply(mark(false), again);
        };
        commit.apply(mark(true), again);
      }
      const byMessage = new Map<string, { m: StoredMessage; entries: AqEntry[] }>();
      for (const { message, recipient } of rows) {
        let g = byMessage.get(message.id);
        if (!g) byMessage.set(message.id, g = { m: aq.message(message.id) ?? message, entries: [] });
        g.entries.push(recipient);
      }
      for (const { m, entries } of byMessage.values()) {
        aq.add(m, entries);
        this.#routeSafely(m, entries);
      }
      const earliest = store.earliestWaiting();
      this.#wake(earliest ?? Infinity);
    } catch (err) {
      log.error("qmgr", `Load due recipients from the queue: ${(err as Error).message}`);
      commit.report(err as Error);
      this.#wake(this.#d.now() + MAX_SLEEP);
    }
  }

  /** Arms the timer for `at` unless it already fires earlier; never sleeps longer than MAX_SLEEP. */
  #wake(at: number): void {
    if (this.#stopped) return;
    const now = this.#d.now();
    // With no room in the active queue, due recipients wait for freed room (#afterResults wakes us),
    // not for a spinning timer.
    const target = this.#d.aq.room > 0 ? Math.min(at, now + MAX_SLEEP) : now + MAX_SLEEP;
    if (this.#timer !== undefined && this.#timerAt <= target) return;
    clearTimeout(this.#timer);
    this.#timerAt = target;
    const delay = Math.max(0, target - now);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.refill();
    }, delay);
  }

  /** Routes and dispatches; a bug in there must not leave entries stuck in the active queue unnoticed. */
  #routeSafely(m: StoredMessage, entries: AqEntry[]): void {
    this.#route(m, entries).catch((err) => {
      log.error("qmgr", `${m.id}: schedule the recipients: ${(err as Error).stack ?? err}`);
    });
  }

  async #route(m: StoredMessage, entries: AqEntry[]): Promise<void> {
    const byDomain = groupByDomain(entries, this.#d.config.hostname);
    const domains = [...byDomain.keys()];
    const routes = await Promise.all(domains.map((d) => this.#d.routes.get(d)));
    if (this.#stopped) return;
    const batches = new Map<string, Batch>();
    let failed = false;
    let owesNotice = false;
    domains.forEach((domain, i) => {
      const route = routes[i];
      const list = byDomain.get(domain)!;
      this.tlsRpt?.recordRoute(domain, route);
      if (route.status !== "ok" || route.hosts.length === 0) {
        const status = route.status === "perm" ? "perm" : "temp";
        const reply = route.status === "ok" ? `no hosts for ${domain}` : route.text;
        for (const e of list) {
          owesNotice = this.#finish(m, e, reasonResult(e.index, status, "routing", reply), {}) || owesNotice;
        }
        failed = true;
        return;
      }
      addToBatches(batches, m, route, list);
    });
    if (owesNotice) this.#notices?.owe(m.id, false);
    for (const batch of batches.values()) {
      for (const list of splitBatch(batch, this.#d.config.qmgr.smtpc)) {
        const taId = `${m.id}.${(++this.#taSeq).toString(36)}`;
        this.#dispatch(m, transactionOf(taId, m, batch.route, batch.sender, list));
      }
    }
    if (failed) this.#afterResults(m);
  }

  /**
   * Where a transaction on `route` goes now: its hosts that take mail, counted against the first of them
   * (`self`: the destination the asking transaction already counts against). A destination being probed
   * takes no second transaction while its probe runs: the route's other hosts serve, or the transaction
   * waits for the probe's result. When every host is down: the reply to defer with and when to retry.
   */
  #plan(route: DeliveryTransaction["route"], self?: string): Plan {
    const occ = this.#d.occ;
    const keyOf = (h: Host) => destinationKey(h.address, route.port);
    if (!occ) return { dest: keyOf(route.hosts[0]), hosts: route.hosts };
    const open: Host[] = [];
    const probing: Host[] = [];
    const down: Host[] = [];
    let until = Infinity;
    let retryAt: number | undefined;
    let longDown = false;
    for (const h of route.hosts) {
      const key = keyOf(h);
      const state = occ.state(key);
      if (state === "up") open.push(h);
      else if (state === "probe") {
        const running = this.#d.destinations.activeFor(key) - (key === self ? 1 : 0);
        (running > 0 ? probing : open).push(h);
      } else {
        down.push(h);
        until = Math.min(until, occ.downUntil(key) ?? Infinity);
        const at = occ.retryAt(key);
        if (at === undefined) longDown = true;
        else retryAt = Math.min(retryAt ?? Infinity, at);
      }
    }
    if (open.length > 0) return { dest: keyOf(open[0]), hosts: open };
    if (probing.length > 0) return { dest: keyOf(probing[0]), hosts: probing };
    const names = down.map((h) => relayText({ ...h, port: route.port })).join(", ");
    const when = Number.isFinite(until) ? ` (not tried again before ${new Date(until).toISOString()})` : "";
    const what = down.length === 1 ? `host ${names} is` : `hosts ${names} are`;
    return {
      reply: `${what} down${when}`,
      retryAt: longDown ? undefined : retryAt,
    };
  }

  /** Queues `ta` at the destination its plan names, or defers it at once when all its hosts are down. */
  #dispatch(m: StoredMessage, ta: DeliveryTransaction, route = ta.route): void {
    const plan = this.#plan(route);
    if ("reply" in plan) {
      this.#deferDown(m, ta, plan);
      return;
    }
    const planned = { ...ta, route: { ...route, hosts: plan.hosts } };
    this.#d.destinations.enqueue(plan.dest, () => this.#deliver(m, planned, route, plan.dest));
  }

  /** Defers the transaction without a connection attempt: every host of its route is down. */
  #deferDown(m: StoredMessage, ta: DeliveryTransaction, down: { reply: string; retryAt?: number }): void {
    let owesNotice = false;
    for (const r of ta.recipients) {
      const e = this.#d.aq.get(m.id, r.index);
      if (e) {
        const result = reasonResult(r.index, "temp", "agent", down.reply);
        owesNotice = this.#finish(m, e, result, { retryAt: down.retryAt }) || owesNotice;
      }
    }
    if (owesNotice) this.#notices?.owe(m.id, false);
    this.#afterResults(m);
  }

  /**
   * Runs one transaction towards `dest` (its route's hosts as planned; `route` is the whole one); first
   * plans again, as the destinations may have changed while it waited. The result tells the OCC which
   * hosts failed (down marks) and which answered (slow start).
   */
  async #deliver(
    m: StoredMessage,
    ta: DeliveryTransaction,
    route: DeliveryTransaction["route"],
    dest: string,
  ): Promise<TaskOutcome> {
    if (this.#stopped) return "none";
    const plan = this.#plan(route, dest);
    if ("reply" in plan) {
      this.#deferDown(m, ta, plan);
      return "none";
    }
    if (plan.dest !== dest) {
      this.#dispatch(m, ta, route);
      return "none";
    }
    ta = { ...ta, route: { ...route, hosts: plan.hosts } };
    let res: SmtpcResult;
    const started = this.#d.now();
    try {
      res = await this.#d.deliver(ta);
      if (res.type !== "smtpc.result") throw new Error("no result");
    } catch (err) {
      res = agentFailure(ta, err as Error);
    }
    if (this.#stopped) return "none";
    if (res.taId !== ta.taId) log.warn("qmgr", `${m.id}: result for ${res.taId} answers ${ta.taId}`);
    logTesting(m.id, route.tls, res);
    this.tlsRpt?.recordResult(route, res);
    const retryAt = this.#learn(res, route);
    if (res.tls) this.#d.stats?.addTls(res.tls);
    const byIndex = new Map(res.results.map((r) => [r.index, r]));
    let owesNotice = false;
    for (const r of ta.recipients) {
      const e = this.#d.aq.get(m.id, r.index);
      if (!e) continue;
      const result = byIndex.get(r.index) ??
        reasonResult(r.index, "temp", "agent", "delivery agent reported no result for this recipient");
      owesNotice = this.#finish(m, e, result, {
        relay: result.relay ?? res.relay,
        dsnOffered: res.dsn,
        lmtp: ta.route.protocol === "lmtp",
        retryAt: res.relay === undefined && result.status === "temp" ? retryAt : undefined,
        committed: this.#committed.get(m.id),
        started,
      }) || owesNotice;
    }
    // Owed only once every result of the transaction is recorded, so its failures leave in one DSN
    // even when merge_delay_max is 0.
    if (owesNotice) this.#notices?.owe(m.id, false);
    this.#afterResults(m);
    // No host was reached: perhaps smtpc could not read the content. A lost file is not retried.
    if (res.relay === undefined && res.results.some((r) => r.status === "temp")) void this.checkContent(m);
    return "none";
  }

  /**
   * What a result tells the OCC: each failed host is marked down, the host that answered grows its
   * window. Returns when recipients no host took should come back (the earliest probe of a briefly
   * down destination), or undefined for their own back-off.
   */
  #learn(res: SmtpcResult, route: DeliveryTransaction["route"]): number | undefined {
    const occ = this.#d.occ;
    if (!occ) return undefined;
    for (const f of res.failedHosts ?? []) occ.failure(destinationKey(f.address, f.port), f.reason);
    if (res.relay !== undefined && res.relay.port !== 0) {
      occ.success(destinationKey(res.relay.address, res.relay.port));
    } else if (res.relay !== undefined) {
      // The LMTP unix socket: its route host stands for it.
      const host = route.hosts.find((h) => h.address === LMTP_SOCKET_ADDRESS);
      if (host) occ.success(destinationKey(host.address, route.port));
    }
    if (res.relay !== undefined || !res.failedHosts?.length) return undefined;
    const plan = this.#plan(route);
    return "reply" in plan ? plan.retryAt : undefined;
  }

  /**
   * Fails the message when its content file is missing or unfinished (the sender gets a DSN, the
   * postmaster a log line); resolves true when it did.
   */
  async checkContent(m: { id: string; cdbPath: string }): Promise<boolean> {
    let why: string | undefined;
    try {
      const f = await readCdbFile(m.cdbPath, { envelope: false });
      if (f.state === "incomplete") why = `its content file ${m.cdbPath} is damaged (incomplete)`;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) why = `its content file ${m.cdbPath} is missing`;
      else return false;
    }
    if (why === undefined || this.#stopped) return false;
    try {
      if (await failLostMessage(this.#ctx, m.id, why) === 0) return false;
    } catch (err) {
      log.error("qmgr", `${m.id}: fail the recipients of a lost message: ${(err as Error).message}`);
      return false;
    }
    this.#notices?.owe(m.id, true);
    return true;
  }

  /** Records one recipient's result; true when the recipient now owes a DSN. */
  #finish(m: StoredMessage, e: AqEntry, r: RecipientResult, info: AttemptInfo): boolean {
    this.#d.aq.remove(m.id, e.index);
    const again = () => this.#recordAgain(m, e, r, info);
    const recorded = recordResult(this.#ctx, m, e, r, info, again);
    if (recorded.failed) again();
    if (recorded.next !== undefined) this.#wake(recorded.next);
    return recorded.notice === true;
  }

  /**
   * A result the store did not take (the change failed, or the commit that carried it): the row is still
   * ACTIVE on disk, owned by no one in memory. Records it again shortly, until the store takes it.
   */
  #recordAgain(m: StoredMessage, e: AqEntry, r: RecipientResult, info: AttemptInfo): void {
    if (this.#stopped) return;
    this.#later(() => {
      if (this.#finish(m, e, r, info)) this.#notices?.owe(m.id, false);
      this.#afterResults(m);
    });
  }

  /** Runs `fn` after RECORD_RETRY unless the scheduler stops first. */
  #later(fn: () => void): void {
    const timer = setTimeout(() => {
      this.#retries.delete(timer);
      if (!this.#stopped) fn();
    }, RECORD_RETRY);
    this.#retries.add(timer);
  }

  /** Store changes waiting to be tried again (tests, status). */
  get pendingRetries(): number {
    return this.#retries.size;
  }

  /** After results: remove the message when it is done, and refill the room that was freed. */
  #afterResults(m: StoredMessage): void {
    this.settle(m.id, m.cdbPath);
    this.#wake(this.#d.now());
  }

  /**
   * Looks at a message whose recipients or notices changed: removes it when it is done; when only its
   * DSNs are left, has them made now rather than after the merge delay.
   */
  settle(id: string, cdbPath?: string): void {
    try {
      if (this.#removing.has(id) || !this.#d.store.hasMessage(id)) return;
      if (isMessageDone(this.#ctx, id)) {
        const path = cdbPath ?? this.#d.store.getMessage(id)?.cdbPath;
        if (path === undefined) return;
        this.#removing.add(id);
        this.#committed.delete(id);
        void removeMessage(this.#ctx, { id, cdbPath: path }).then((removed) => {
          this.#removing.delete(id);
          if (!removed) this.#later(() => this.settle(id, path)); // the store refused: later
        });
      } else if (this.#d.store.openCount(id) === 0) {
        this.#notices?.owe(id, true);
      }
    } catch (err) {
      log.error("qmgr", `${id}: check whether the message is done: ${(err as Error).message}`);
    }
  }
}
