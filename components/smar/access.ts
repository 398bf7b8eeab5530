// The access map (sendmail X README 3.9.3.1 and 3.12): its right-hand sides and the first-match lookup
// over a key order (keys.ts). A value is `relay`, `ok`, `reject`, `discard`, `cont` or
// `error:XYZ A.B.C.D text`, optionally prefixed by `quick:`. Meanings (the README's):
// - `relay`: accept, and the client (cltaddr:, cltname:, cert...) may relay or the recipient (to:) may be
//   relayed to; `ok`: accept without the checks this entry guards (and exempt from greylisting);
// - `reject`: same as `error:550 5.7.0 Rejected.` (554 at connect, the only refusal RFC 5321 allows
//   before the greeting); `error:...`: refuse with that reply;
// - `discard`: accept, then drop: every message of the session (client), the transaction (sender), or
//   just that recipient (to:; the transaction once none is left, or at once with `quick:discard`);
// - `cont`: stop looking at more general keys of this lookup without deciding, so the other checks go on;
// - `quick:`: `quick:error` / `quick:reject` refuse at once even with delay_checks; only a `to:` entry
//   `quick:ok` / `quick:relay` lifts a refusal delay_checks held back; `quick:ok` / `quick:relay` for the
//   client skip every later anti-spam check (relaying is still checked after `quick:ok`).
// Touches nothing itself; lookups go through the map (which may be a socket map).

import type { SmtpReply } from "../protocol/messages.ts";
import type { SmarMap } from "./maps.ts";
import { log } from "../util/log.ts";

export type AccessAction = "relay" | "ok" | "reject" | "discard" | "cont" | "error";

export interface AccessValue {
  action: AccessAction;
  quick: boolean;
  /** For `error:`. */
  reply?: SmtpReply;
}

/** What an access lookup found: the key that matched and its value. */
export interface AccessHit {
  key: string;
  value: AccessValue;
}

/** Parses an access map value; undefined for one this version does not know. */
export function parseAccessValue(rhs: string): AccessValue | undefined {
  let v = rhs.trim();
  let quick = false;
  if (/^quick:/i.test(v)) {
    quick = true;
    v = v.slice(6).trim();
  }
  const word = v.toLowerCase();
  if (word === "relay" || word === "ok" || word === "reject" || word === "discard" || word === "cont") {
    return { action: word, quick };
  }
  const reply = parseErrorReply(v);
  return reply ? { action: "error", quick, reply } : undefined;
}

/** `error:XYZ A.B.C.D text` (the status and text may be left out); undefined when malformed. */
export function parseErrorReply(v: string): SmtpReply | undefined {
  const m = /^error:\s*([45]\d\d)(?:\s+([45]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?$/i.exec(v.trim());
  if (!m || (m[2] !== undefined && m[2][0] !== m[1][0])) return undefined;
  const code = Number(m[1]);
  const text = m[3]?.trim() || (code >= 500 ? "Access denied" : "Try again later");
  return { code, status: m[2] ?? `${m[1][0]}.0.0`, text };
}

/** The access map as policy code uses it. */
export class AccessMap {
  readonly #known = new Map<string, boolean>();
  constructor(readonly map: SmarMap) {}

  /**
   * The first entry found among `keys`, parsed; an entry whose value is unknown is logged and counts as
   * `cont` (it ends the lookup without deciding). Rejects with MapTempError when the map cannot answer.
   */
  async first(keys: string[]): Promise<AccessHit | undefined> {
    const sync = this.map.getSync;
    for (const key of keys) {
      const rhs = sync ? sync(key) : await this.map.get(key);
      if (rhs === undefined) continue;
      const value = parseAccessValue(rhs);
      if (!value) {
        log.warn("smar", `access map ${this.map.source}: ${key}: ignored unknown value ${rhs}`);
        return { key, value: { action: "cont", quick: false } };
      }
      return { key, value };
    }
    return undefined;
  }

  /** The raw value of the first of `keys` found (for entries that are not access values). */
  async raw(keys: string[]): Promise<{ key: string; rhs: string } | undefined> {
    for (const key of keys) {
      const rhs = this.map.getSync ? this.map.getSync(key) : await this.map.get(key);
      if (rhs !== undefined) return { key, rhs };
    }
    return undefined;
  }

  /** Whether the map may hold keys with this tag (`cltname`): lookups that cost DNS are skipped if not. */
  mayHave(tag: string): boolean {
    let known = this.#known.get(tag);
    if (known === undefined) {
      known = this.map.hasPrefix(`${tag.toLowerCase()}:`) ?? true;
      this.#known.set(tag, known);
    }
    return known;
  }

  close(): void {
    this.map.close();
  }
}
