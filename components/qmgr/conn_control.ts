// Incoming connection limits per client IP (like Postfix's anvil): concurrent sessions
// (qmgr.smtps.max_connections, or icm: of the qmgr_conf map for the IP or its net) and connections in the
// last 60 s (qmgr.smtps.max_connection_rate, or icr:); 0 means unlimited. Every attempt counts towards the rate, refused ones too, so a client hammering the server
// stays refused. Memory is bounded: an IP with no session and no connection in the window is forgotten,
// and at most `max` timestamps are kept per IP (enough to decide "more than max"). The limits hold across
// every smtps worker (one count per client, however many workers serve it); each worker's sessions are
// also counted on their own, so when one restarts, the sessions it held (whose closes will never come)
// are forgotten (forgetOwner).
// Receives: smtps.conn_open / smtps.conn_close (through dispatch.ts). Touches nothing.

import type { QmgrConnVerdict } from "../protocol/messages.ts";

export const RATE_WINDOW = 60_000;

const TOO_MANY: QmgrConnVerdict = {
  type: "qmgr.conn_verdict",
  accept: false,
  reply: { code: 421, status: "4.7.0", text: "Too many connections from your host" },
};

interface Client {
  /** This client's limits (the conf map's icm:/icr: for its address, else the options). */
  maxSessions: number;
  maxRate: number;
  sessions: number;
  /** Connection times within the rate window, oldest first. */
  recent: number[];
}

export interface ConnLimits {
  max_connections: number;
  max_connection_rate: number;
}

/** Per-address limits (the qmgr_conf map, conf_map.ts): icm (sessions) and icr (rate). */
export interface ConnConf {
  get(tag: "icm" | "icr", ip: string): number;
}

export class ConnControl {
  readonly #conf: ConnConf;
  readonly #now: () => number;
  readonly #clients = new Map<string, Client>();
  /** Sessions per smtps worker (its peer id) and client IP. */
  readonly #owned = new Map<string, Map<string, number>>();
  #lastSweep: number;

  constructor(limits: ConnLimits | ConnConf, now: () => number = Date.now) {
    this.#conf = "get" in limits
      ? limits
      : { get: (tag) => tag === "icm" ? limits.max_connections : limits.max_connection_rate };
    this.#now = now;
    this.#lastSweep = now();
  }

  /** How many IPs are remembered (for tests: memory stays bounded). */
  get tracked(): number {
    return this.#clients.size;
  }

  /** A new connection from `ip` at smtps worker `owner`: accepted (and counted as a session) or refused with 421. */
  open(ip: string, owner = "smtps"): QmgrConnVerdict {
    const now = this.#now();
    this.#sweep(now);
    let c = this.#clients.get(ip);
    if (!c) {
      c = {
        maxSessions: this.#conf.get("icm", ip),
        maxRate: this.#conf.get("icr", ip),
        sessions: 0,
        recent: [],
      };
      this.#clients.set(ip, c);
    }
    const { maxSessions, maxRate } = c;
    let refuse = maxSessions > 0 && c.sessions >= maxSessions;
    if (maxRate > 0) {
      prune(c, now);
      c.recent.push(now);
      if (c.recent.length > maxRate + 1) c.recent.splice(0, c.recent.length - (maxRate + 1));
      if (c.recent.length > maxRate) refuse = true;
    }
    if (refuse) {
      this.#forgetIfIdle(ip, c);
      return TOO_MANY;
    }
    c.sessions++;
    let owned = this.#owned.get(owner);
    if (!owned) this.#owned.set(owner, owned = new Map());
    owned.set(ip, (owned.get(ip) ?? 0) + 1);
    return { type: "qmgr.conn_verdict", accept: true };
  }

  /**
   * What open(ip) would answer now, without counting anything (qmgrctl explain): the client's limits,
   * its sessions and its connections in the rate window, and whether a new one would be refused.
   */
  peek(
    ip: string,
  ): { maxSessions: number; maxRate: number; sessions: number; recent: number; refuse: boolean } {
    const now = this.#now();
    const c = this.#clients.get(ip);
    const maxSessions = c?.maxSessions ?? this.#conf.get("icm", ip);
    const maxRate = c?.maxRate ?? this.#conf.get("icr", ip);
    const sessions = c?.sessions ?? 0;
    const recent = c ? c.recent.filter((t) => t > now - RATE_WINDOW).length : 0;
    const refuse = (maxSessions > 0 && sessions >= maxSessions) || (maxRate > 0 && recent + 1 > maxRate);
    return { maxSessions, maxRate, sessions, recent, refuse };
  }

  /** A session from `ip` at smtps worker `owner` ended (smtps sends this only for accepted connections). */
  close(ip: string, owner = "smtps"): void {
    const owned = this.#owned.get(owner);
    const held = owned?.get(ip) ?? 0;
    if (held === 0) return; // not counted, or forgotten with a restart of its worker
    if (held === 1) owned!.delete(ip);
    else owned!.set(ip, held - 1);
    const c = this.#clients.get(ip);
    if (!c) return;
    c.sessions = Math.max(0, c.sessions - 1);
    prune(c, this.#now());
    this.#forgetIfIdle(ip, c);
  }

  /** Smtps worker `owner` restarted: the sessions it held are over (their closes never come). */
  forgetOwner(owner: string): number {
    const owned = this.#owned.get(owner);
    if (!owned) return 0;
    this.#owned.delete(owner);
    let dropped = 0;
    for (const [ip, n] of owned) {
      dropped += n;
      const c = this.#clients.get(ip);
      if (!c) continue;
      c.sessions = Math.max(0, c.sessions - n);
      this.#forgetIfIdle(ip, c);
    }
    return dropped;
  }

  #forgetIfIdle(ip: string, c: Client): void {
    if (c.sessions === 0 && c.recent.length === 0) this.#clients.delete(ip);
  }

  /** Once per window, forgets IPs whose sessions ended and whose connections left the window. */
  #sweep(now: number): void {
    if (now - this.#lastSweep < RATE_WINDOW) return;
    this.#lastSweep = now;
    for (const [ip, c] of this.#clients) {
      prune(c, now);
      this.#forgetIfIdle(ip, c);
    }
  }
}

function prune(c: Client, now: number): void {
  let drop = 0;
  while (drop < c.recent.length && c.recent[drop] <= now - RATE_WINDOW) drop++;
  if (drop > 0) c.recent.splice(0, drop);
}
