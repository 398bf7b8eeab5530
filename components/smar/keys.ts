// The lookup orders of the access map (sendmail X README 3.12.1): which keys are tried, most specific
// first, for a client address, a host or domain name, and a mail address. Pure functions; touch nothing.
//
// - IPv4 `A.B.C.D`: `A.B.C.D`, `A.B.C`, `A.B`, `A` (an IPv4-mapped IPv6 address counts as IPv4); IPv6:
//   the address as written and in canonical form (no prefixes).
// - Domain `host.sub.dom`: `host.sub.dom`, `.sub.dom`, `.dom` (a leading dot matches every subdomain
//   but not the domain itself; an address literal `[1.2.3.4]` is only looked up as itself).
// - Address `user+detail@host.sub.dom` (delimiter `+`), exactly the README's order:
//     1. for each domain key above (`host.sub.dom`, `.sub.dom`, `.dom`) in turn: `user+detail@D`,
//        `user++@D` (any non-empty detail), `user+*@D` (any detail, empty too), `user*@D` (with or
//        without a detail), `user@D` (an address without a detail; with a detail only with
//        implicitly_match_detail), then `@D` (anyone at D: `@host.sub.dom` exactly, `@.sub.dom` every
//        subdomain of sub.dom);
//     2. the local part alone, the same forms without `@D`: `user+detail`, `user++`, `user+*`,
//        `user*`, `user` (the README's `to:root`, `to:abuse`).
//   The null sender `<>` is looked up as `<>` only; a bare `postmaster` as its local-part forms.
//   A key naming a domain without `@` (`to:example.com`) is a local part, as in the README: domains
//   are written `@example.com`.

import ipaddr from "ipaddr.js";

/** An address split the way lookups need it. Case is kept; keys are lower-cased by the maps. */
export interface AddressParts {
  /** The local part as received (quoted if it was). */
  local: string;
  /** The local part before the delimiter (all of it when there is none). */
  user: string;
  /** What follows the delimiter; undefined when there is no delimiter ("" for `user+`). */
  detail: string | undefined;
  /** The domain in lower case; "" for a bare `postmaster` and for `<>`. */
  domain: string;
}

/** Splits `local@domain` at its last `@` and the local part at the first `delimiter`. */
export function addressParts(address: string, delimiter = "+"): AddressParts {
  const at = address.lastIndexOf("@");
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? "" : address.slice(at + 1).toLowerCase();
  const d = delimiter === "" ? -1 : local.indexOf(delimiter);
  // A delimiter first ("+foo") is part of the user, not a separator with an empty user.
  if (d <= 0) return { local, user: local, detail: undefined, domain };
  return { local, user: local.slice(0, d), detail: local.slice(d + delimiter.length), domain };
}

/** The keys tried for a client address, most specific first (without a tag). */
export function ipKeys(ip: string): string[] {
  let addr = ip.trim().toLowerCase();
  if (ipaddr.IPv6.isValid(addr)) {
    const v6 = ipaddr.IPv6.parse(addr);
    if (!v6.isIPv4MappedAddress()) return [...new Set([addr, v6.toString()])];
    addr = v6.toIPv4Address().toString();
  }
  if (!ipaddr.IPv4.isValidFourPartDecimal(addr)) return [addr];
  const octets = addr.split(".");
  return [4, 3, 2, 1].map((n) => octets.slice(0, n).join("."));
}

/** The keys tried for a host or domain name: itself, then each parent with a leading dot. */
export function domainKeys(domain: string): string[] {
  const d = domain.toLowerCase().replace(/\.$/, "");
  if (d === "") return [];
  if (d.startsWith("[")) return [d];
  const labels = d.split(".");
  const keys = [d];
  for (let i = 1; i < labels.length; i++) keys.push("." + labels.slice(i).join("."));
  return keys;
}

/** The local-part forms tried for `p`, each followed by `@` and a domain key (or nothing), in order. */
export function localForms(p: AddressParts, delimiter = "+", implicitDetail = false): string[] {
  if (p.detail === undefined) return [`${p.user}*`, p.local];
  const forms = [p.local];
  if (p.detail !== "") forms.push(`${p.user}${delimiter}${delimiter}`);
  forms.push(`${p.user}${delimiter}*`, `${p.user}*`);
  if (implicitDetail) forms.push(p.user);
  return forms;
}

export interface AddressKeyOptions {
  delimiter?: string;
  /** `user@...` also matches `user+detail@...`. */
  implicitDetail?: boolean;
  /** Leave out the local-part-only keys (step 2). */
  noLocalPart?: boolean;
}

/** The keys tried for a mail address (without a tag), in the order above. */
export function addressKeys(address: string, opts: AddressKeyOptions = {}): string[] {
  if (address === "" || address === "<>") return ["<>"];
  const delimiter = opts.delimiter ?? "+";
  const p = addressParts(address, delimiter);
  const forms = localForms(p, delimiter, opts.implicitDetail);
  const keys: string[] = [];
  for (const d of domainKeys(p.domain)) {
    for (const f of forms) keys.push(`${f}@${d}`);
    keys.push(`@${d}`);
  }
  if (!opts.noLocalPart || p.domain === "") keys.push(...forms);
  return [...new Set(keys)];
}

/** `keys` with `tag:` in front of each. */
export function tagged(tag: string, keys: string[]): string[] {
  return keys.map((k) => `${tag}:${k}`);
}
