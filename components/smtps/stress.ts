// The session slots of one smtps section (max_threads) and its stress mode, after Postfix's: once
// `stress_threshold` percent of the slots are in use, every wait for a command (the first one after the
// greeting included) is cut to `stress_timeout`, sessions already waiting too, and one client address may
// hold at most `stress_client_share` percent of the slots (more get 421 4.7.0). When every slot is taken
// under stress, a new connection gets the slot of the session that has waited longest for a command
// (at least MIN_IDLE_MS; it gets the 421 4.4.2 of a timeout), so a crowd of slow clients cannot lock out
// one that talks at normal speed. Stress mode ends when fewer than three quarters of the threshold are in
// use. Logs when it starts and ends. Pure bookkeeping: the sessions do the talking.

import type { SmtpsConfig } from "../../config/types.ts";
import { reply, type SmtpReply } from "../mail/reply.ts";
import { log } from "../util/log.ts";
import { R } from "./replies.ts";

/** What the slots need of a session. */
export interface Slot {
  readonly ip: string;
  /** How long it has waited for its current command (ms), or -1 when it is not waiting for one. */
  idleFor(now: number): number;
  /** Ends the session as timed out, when it still waits for a command; false otherwise. */
  evict(): boolean;
  /** Caps its waits for commands at `timeout` (ms) from their start; undefined lifts the cap. */
  stress(timeout: number | undefined): void;
}

/** A session waiting for less than this is never given up for a newcomer (it may be about to talk). */
export const MIN_IDLE_MS = 1_000;

export type Admit = { ok: true } | { ok: false; reply: SmtpReply; reason: string };

export class SessionSlots {
  readonly #slots = new Set<Slot>();
  readonly #perIp = new Map<string, number>();
  /** Sessions told to go that have not ended yet: their slots are already promised to newcomers. */
  #leaving = 0;
  #stressed = false;
  #server: () => SmtpsConfig;

  /** `server` gives the section's current options (a reload may change them). */
  constructor(server: () => SmtpsConfig) {
    this.#server = server;
  }

  get active(): number {
    return this.#slots.size;
  }

  get stressed(): boolean {
    return this.#stressed;
  }

  /** Whether a new connection from `ip` gets a slot; may end an idle session to make room. */
  admit(ip: string, now = Date.now()): Admit {
    const c = this.#server();
    const share = Math.max(1, Math.floor(c.max_threads * Math.min(100, c.stress_client_share) / 100));
    const overShare = this.#stressed && (this.#perIp.get(ip) ?? 0) >= share;
    if (this.#slots.size - this.#leaving >= c.max_threads && (overShare || !this.#evictIdlest(now))) {
      return { ok: false, reply: R.tooManySessions(c.hostname), reason: `${c.max_threads} sessions in use` };
    }
    if (overShare) {
      return {
        ok: false,
        reply: reply(421, "4.7.0", `${c.hostname} Too many connections from your host`),
        reason: `stress mode: at most ${share} session(s) per client`,
      };
    }
    return { ok: true };
  }

  /** Counts a session that was admitted. */
  add(slot: Slot): void {
    this.#slots.add(slot);
    this.#perIp.set(slot.ip, (this.#perIp.get(slot.ip) ?? 0) + 1);
    if (this.#stressed) slot.stress(this.#server().stress_timeout);
    this.#update();
  }

  /** Forgets a session that ended; `evicted` when it was told to go by admit(). */
  remove(slot: Slot, evicted: boolean): void {
    if (!this.#slots.delete(slot)) return;
    if (evicted) this.#leaving--;
    const n = (this.#perIp.get(slot.ip) ?? 1) - 1;
    if (n > 0) this.#perIp.set(slot.ip, n);
    else this.#perIp.delete(slot.ip);
    this.#update();
  }

  #evictIdlest(now: number): boolean {
    if (!this.#stressed) return false;
    let idlest: Slot | undefined;
    let longest = MIN_IDLE_MS - 1;
    for (const s of this.#slots) {
      const idle = s.idleFor(now);
      if (idle > longest) {
        longest = idle;
        idlest = s;
      }
    }
    if (!idlest?.evict()) return false;
    this.#leaving++;
    log.info("smtps", `stress mode: [${idlest.ip}] idle for ${longest} ms gives its slot to a new client`);
    return true;
  }

  #update(): void {
    const c = this.#server();
    if (c.stress_threshold <= 0) return this.#set(false, c);
    const start = Math.max(1, Math.ceil(c.max_threads * Math.min(100, c.stress_threshold) / 100));
    if (!this.#stressed && this.#slots.size >= start) this.#set(true, c);
    else if (this.#stressed && this.#slots.size < Math.ceil(start * 3 / 4)) this.#set(false, c);
  }

  #set(on: boolean, c: SmtpsConfig): void {
    if (on === this.#stressed) return;
    this.#stressed = on;
    const use = `${this.#slots.size} of ${c.max_threads} sessions in use`;
    if (on) {
      log.warn(
        "smtps",
        `stress mode on for ${c.name}: ${use}; command timeout ${c.stress_timeout / 1000} s, ` +
          `${c.stress_client_share}% of the sessions per client`,
      );
    } else log.info("smtps", `stress mode off for ${c.name}: ${use}`);
    for (const s of this.#slots) s.stress(on ? c.stress_timeout : undefined);
  }
}
