// Alias expansion (sendmail X README 3.9.3.3, 3.12.1, 3.12.3, 4.3.2) at RCPT time: a recipient found in
// the aliases map is replaced by the addresses of its right-hand side, each expanded again, up to
// MAX_DEPTH levels. Which keys are looked up depends on alias_flags, each in the README's order
// (keys.ts: `user+detail`, `user++`, `user+*`, `user*`, then `user` with implicitly_match_detail or
// without a detail):
// - localpart: the local part alone, for local domains (the default when none of localpart,
//   local_domains, all_domains is given);
// - local_domains: the whole address for local domains; all_domains: the whole address for any domain
//   (those forms at `host.dom`, then `@host.dom`, then at `.dom` and `@.dom` for every parent).
// The right-hand side is the README's: addresses in angle brackets separated by spaces
// (`<a@b.dom> <c@d.dom>`); brackets may be left out and commas separate too (as in sendmail 8). An item
// without `@` (`localuser`, `user+abuse`) gets the MTA's hostname, or with preserve_domain the domain
// of the address expanded. `local:` alone marks the address itself as a valid local mailbox
// (`user: local:`, `user++: local:`); `local:user` names one. `error:XYZ A.B.C.D text` as the whole
// right-hand side refuses the address. With replace_macros, `${user} ${detail} ${domain} ${tag}
// ${delimiter} ${subdomain} ${extension}` are replaced: user and detail of the recipient, its domain,
// the key that matched, the delimiter ("" without a detail), the labels a `@.parent` key left over, and
// delimiter + detail. An address naming itself is delivered to its mailbox; a longer loop is refused
// (550 5.4.6).
// Owner lists: when `owner-<alias>` exists, every address expanded from <alias> (at any depth below it,
// unless a nested list has an owner of its own) carries `owner-<alias>@domain` as its owner: qmgr uses it
// as that recipient's envelope sender and sends its DSNs there (sendmail semantics). Touches only the map.

import type { SmtpReply } from "../protocol/messages.ts";
import { parseErrorReply } from "./access.ts";
import { type AddressParts, addressParts, domainKeys, localForms } from "./keys.ts";
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

  /** The same aliases over a view of their map that `wrap` makes (qmgrctl explain traces the lookups). */
  withMap(wrap: (map: SmarMap) => SmarMap): Aliases {
    return new Aliases(wrap(this.#map), this.#o);
  }

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

  /**
   * The members of the list `list` (`name` or `name@domain`, angle brackets allowed): its right-hand
   * side, not expanded further, each qualified as expansion would, in lower case.
   */
  async members(list: string): Promise<string[]> {
    const p = addressParts(list.trim().replace(/^<(.*)>$/, "$1"), this.#o.delimiter);
    const match = await this.#find(p, p.domain === "" || this.#o.isLocal(p.domain));
    if (!match || /^error:/i.test(match.rhs.trim())) return [];
    return splitList(match.rhs).flatMap((item) =>
      /^local:/i.test(item) ? [] : [this.#qualify(item, p).toLowerCase()]
    );
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
    if (/^error:/i.test(rhs.trim())) {
      return parseErrorReply(rhs) ?? { code: 550, status: "5.1.1", text: `Bad alias ${match.key}` };
    }
    for (const item of splitList(rhs)) {
      if (/^local:/i.test(item)) {
        // `user: local:` — the address itself is a valid local mailbox (README 4.3.2).
        const user = item.slice(6).trim();
        add(user === "" ? address : this.#qualify(user, p), true, owner);
        continue;
      }
      const next = this.#qualify(item, p);
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

  /** A right-hand side item as an address: one without `@` gets the hostname (or the domain of `p`). */
  #qualify(item: string, p: AddressParts): string {
    return item.includes("@") ? item : `${item}@${this.#domainFor(p)}`;
  }

  /** `owner-<key>@domain` when the alias `key` has an owner- alias (catch-all keys have none). */
  async #ownerOf(key: string, domain: string): Promise<string | undefined> {
    if (key.startsWith("@") || await this.#map.get(`owner-${key}`) === undefined) return undefined;
    return key.includes("@") ? `owner-${key}` : `owner-${key}@${domain !== "" ? domain : this.#o.hostname}`;
  }

  #domainFor(p: AddressParts): string {
    return this.#flags.has("preserve_domain") && p.domain !== "" ? p.domain : this.#o.hostname;
  }

  /** The first alias key that matches, in the order the flags allow (README 3.12.1). */
  async #find(p: AddressParts, local: boolean): Promise<Match | undefined> {
    const f = this.#flags;
    const forms = localForms(p, this.#o.delimiter, f.has("implicitly_match_detail"));
    const keys: { key: string; subdomain: string }[] = [];
    if (p.domain !== "" && ((local && f.has("local_domains")) || f.has("all_domains"))) {
      const labels = p.domain.split(".");
      domainKeys(p.domain).forEach((d, i) => {
        const subdomain = labels.slice(0, i).join(".");
        for (const form of forms) keys.push({ key: `${form}@${d}`, subdomain });
        keys.push({ key: `@${d}`, subdomain });
      });
    }
    if ((local || p.domain === "") && f.has("localpart")) {
      for (const form of forms) keys.push({ key: form, subdomain: "" });
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

/**
 * The items of an alias right-hand side: separated by blanks or commas, each without its angle
 * brackets; blanks and commas inside quotes or brackets are kept.
 */
export function splitList(rhs: string): string[] {
  const items: string[] = [];
  let cur = "";
  let quoted = false;
  let bracket = false;
  const end = () => {
    const item = cur.trim().replace(/^<(.*)>$/, "$1").trim();
    if (item !== "") items.push(item);
    cur = "";
  };
  for (const c of rhs) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === "<") bracket = true;
    else if (!quoted && c === ">") bracket = false;
    if (!quoted && !bracket && (c === "," || /\s/.test(c))) end();
    else cur += c;
  }
  end();
  return items;
}
