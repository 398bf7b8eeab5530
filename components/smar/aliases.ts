// Alias expansion (sendmail X README 3.9.3.3) at RCPT time: a recipient found in the aliases map is
// replaced by the addresses of its right-hand side (comma-separated), each expanded again, up to
// MAX_DEPTH levels. Which keys are looked up depends on alias_flags:
// - localpart: the local part alone (`user+detail`, then `user` with implicitly_match_detail), for
//   local domains (the default when none of localpart, local_domains, all_domains is given);
// - local_domains: the whole address for local domains; all_domains: the whole address for any domain
//   (`user+detail@dom`, [`user@dom`], then `@dom` and `@.parent` catch-alls).
// A right-hand side item is `user@domain`, a bare `user` (the domain added is the recipient's with
// preserve_domain, else the MTA's hostname), `local:user` (a local mailbox: not expanded again) or
// `error:XYZ A.B.C.D text`. With replace_macros, `${user} ${detail} ${domain} ${tag} ${delimiter}
// ${subdomain} ${extension}` are replaced: user and detail of the recipient, its domain, the key that
// matched, the delimiter ("" without a detail), the labels a `@.parent` key left over, and delimiter +
// detail. An address naming itself is delivered to its mailbox; a longer loop is refused (550 5.4.6).
// Owner lists: when `owner-<alias>` exists, every address expanded from <alias> (at any depth below it,
// unless a nested list has an owner of its own) carries `owner-<alias>@domain` as its owner: qmgr uses it
// as that recipient's envelope sender and sends its DSNs there (sendmail semantics). Touches only the map.

import type { SmtpReply } from "../protocol/messages.ts";
import { parseErrorReply } from "./access.ts";
import { type AddressParts, addressParts } from "./keys.ts";
import type { SmarMap } from "./maps.ts";

export const MAX_DEPTH = 5;

export interface AliasOptions {
  flags: string[];
  delimiter: string;
  /** The domain a bare local name gets without preserve_domain. */
  hostname: string;
  /** Whether mail for `domain` is delivered here (the mailertable routes it lmtp:). */
  isLocal(domain: string): boolean;
}

/** One final address of an expansion. */
export interface Expanded {
  address: string;
  /** A local mailbox (else a remote address). */
  local: boolean;
  /** `owner-<list>@domain` of the innermost list with an owner this address was expanded from. */
  owner?: string;
}

export type Expansion =
  | {
    kind: "ok";
    /** Final addresses, each either remote or a local mailbox. */
    recipients: Expanded[];
    /** `owner-<alias>@domain` of the first alias expanded that has an owner. */
    owner?: string;
    /** Whether any alias matched. */
    expanded: boolean;
  }
  | { kind: "error"; reply: SmtpReply };

interface Match {
  key: string;
  rhs: string;
  subdomain: string;
}

export class Aliases {
  readonly #map: SmarMap;
  readonly #o: AliasOptions;
  readonly #flags: Set<string>;

  constructor(map: SmarMap, o: AliasOptions) {
    this.#map = map;
    this.#o = o;
    this.#flags = new Set(o.flags);
    if (!["localpart", "local_domains", "all_domains"].some((f) => this.#flags.has(f))) {
      this.#flags.add("localpart");
    }
  }

  get map(): SmarMap {
    return this.#map;
  }

  /** The members of the list `name` (its right-hand side, not expanded further), lower case. */
  async members(name: string): Promise<string[]> {
    const rhs = await this.#map.get(name);
    return rhs === undefined ? [] : splitList(rhs).map((m) => m.toLowerCase());
  }

  /** Expands `address`; rejects with MapTempError when the map cannot answer. */
  async expand(address: string): Promise<Expansion> {
    const out: Expanded[] = [];
    const state = { owner: undefined as string | undefined, expanded: false };
    const err = await this.#expand(address, [], 0, out, state, undefined);
    if (err) return { kind: "error", reply: err };
    const seen = new Set<string>();
    const recipients = out.filter((r) => {
      const k = r.address.toLowerCase();
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    return { kind: "ok", recipients, owner: state.owner, expanded: state.expanded };
  }

  async #expand(
    address: string,
    path: string[],
    depth: number,
    out: Expanded[],
    state: { owner?: string; expanded: boolean },
    inherited: string | undefined,
  ): Promise<SmtpReply | undefined> {
    const p = addressParts(address, this.#o.delimiter);
    const local = p.domain !== "" && this.#o.isLocal(p.domain);
    const match = await this.#find(p, local);
    const add = (address: string, local: boolean, owner: string | undefined) =>
      out.push({ address, local, ...(owner !== undefined ? { owner } : {}) });
    if (!match) {
      add(address, local, inherited);
      return undefined;
    }
    // The alias itself, as the address asked and as the key that matched (`list` for `list+news@d`).
    const self = address.toLowerCase();
    const selves = [
      self,
      match.key.startsWith("@") ? self : match.key.includes("@") ? match.key : `${match.key}@${p.domain}`,
    ];
    if (depth >= MAX_DEPTH) {
      return { code: 550, status: "5.4.6", text: `Too many levels of aliases at ${address}` };
    }
    state.expanded = true;
    const owner = (await this.#ownerOf(match.key, p.domain)) ?? inherited;
    state.owner ??= owner;
    const rhs = this.#flags.has("replace_macros") ? this.#macros(match, p) : match.rhs;
    for (const item of splitList(rhs)) {
      if (/^error:/i.test(item)) {
        return parseErrorReply(item) ?? { code: 550, status: "5.1.1", text: `Bad alias ${match.key}` };
      }
      if (/^local:/i.test(item)) {
        const user = item.slice(6).trim();
        add(user.includes("@") ? user : `${user}@${this.#domainFor(p)}`, true, owner);
        continue;
      }
      const next = item.includes("@") ? item : `${item}@${this.#domainFor(p)}`;
      const key = next.toLowerCase();
      if (selves.includes(key)) {
        add(next, true, owner); // `root: root, other`: root's own mailbox too
        continue;
      }
      if (path.includes(key)) return { code: 550, status: "5.4.6", text: `Alias loop detected at ${next}` };
      const err = await this.#expand(next, [...path, ...selves], depth + 1, out, state, owner);
      if (err) return err;
    }
    return undefined;
  }

  /** `owner-<key>@domain` when the alias `key` has an owner- alias (catch-all keys have none). */
  async #ownerOf(key: string, domain: string): Promise<string | undefined> {
    if (key.startsWith("@") || await this.#map.get(`owner-${key}`) === undefined) return undefined;
    return key.includes("@") ? `owner-${key}` : `owner-${key}@${domain !== "" ? domain : this.#o.hostname}`;
  }

  #domainFor(p: AddressParts): string {
    return this.#flags.has("preserve_domain") && p.domain !== "" ? p.domain : this.#o.hostname;
  }

  /** The first alias key that matches, in the order the flags allow. */
  async #find(p: AddressParts, local: boolean): Promise<Match | undefined> {
    const f = this.#flags;
    const detailForms = p.detail === undefined
      ? [p.local]
      : f.has("implicitly_match_detail")
      ? [p.local, p.user]
      : [p.local];
    const keys: { key: string; subdomain: string }[] = [];
    if (p.domain !== "" && ((local && f.has("local_domains")) || f.has("all_domains"))) {
      for (const form of detailForms) keys.push({ key: `${form}@${p.domain}`, subdomain: "" });
      keys.push({ key: `@${p.domain}`, subdomain: "" });
      const labels = p.domain.split(".");
      for (let i = 1; i < labels.length; i++) {
        keys.push({ key: `@.${labels.slice(i).join(".")}`, subdomain: labels.slice(0, i).join(".") });
      }
    }
    if ((local || p.domain === "") && f.has("localpart")) {
      for (const form of detailForms) keys.push({ key: form, subdomain: "" });
    }
    for (const { key, subdomain } of keys) {
      const k = key.toLowerCase();
      const rhs = this.#map.getSync ? this.#map.getSync(k) : await this.#map.get(k);
      if (rhs !== undefined) return { key: k, rhs, subdomain };
    }
    return undefined;
  }

  #macros(m: Match, p: AddressParts): string {
    const values: Record<string, string> = {
      user: p.user,
      detail: p.detail ?? "",
      domain: p.domain,
      tag: m.key,
      delimiter: p.detail === undefined ? "" : this.#o.delimiter,
      subdomain: m.subdomain,
      extension: p.detail === undefined ? "" : `${this.#o.delimiter}${p.detail}`,
    };
    return m.rhs.replace(/\$\{(\w+)\}/g, (all, name: string) => values[name.toLowerCase()] ?? all);
  }
}

/** The items of a comma-separated list, blanks trimmed, quoted commas kept. */
export function splitList(rhs: string): string[] {
  const items: string[] = [];
  let cur = "";
  let quoted = false;
  for (const c of rhs) {
    if (c === '"') quoted = !quoted;
    if (c === "," && !quoted) {
      items.push(cur);
      cur = "";
    } else cur += c;
  }
  items.push(cur);
  return items.map((i) => i.trim()).filter((i) => i !== "");
}
