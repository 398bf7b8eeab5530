// Incoming connection limits per client IP (like Postfix's anvil): concurrent sessions
// (qmgr.smtps.max_connections, or icm: of the qmgr_conf map for the IP or its net) and connections in the
// last 60 s (qmgr.smtps.max_connection_rate, or icr:); 0 means unlimited. Every attempt counts towards the rate, refused ones too, so a client hammering the server
// stays refused. Memory is bounded: an IP with no session and no connection in the window is forgotten,
// and at most `max` timestamps are kept per IP (enough to decide "more than max").
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

  /** A new connection from `ip`: accepted (and counted as a session) or refused with 421. */
  open(ip: string): QmgrConnVerdict {
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
    return { type: "qmgr.conn_verdict", accept: true };
  }

  /** A session from `ip` ended (smtps sends this only for accepted connections). */
  close(ip: string): void {
    const c = this.#clients.get(ip);
    if (!c) return;
    c.sessions = Math.max(0, c.sessions - 1);
    prune(c, this.#now());
    this.#forgetIfIdle(ip, c);
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
