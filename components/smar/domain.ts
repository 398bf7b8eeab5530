// Domain names as smar receives them (from recipient addresses and route requests): a host name or an
// address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`), checked and put in canonical form. Pure
// functions; touches nothing.

import { domainToASCII } from "node:url";
import ipaddr from "ipaddr.js";

export type Domain =
  /** `name` is lower case without a trailing dot; `ascii` is its A-label form for DNS questions. */
  | { kind: "name"; name: string; ascii: string }
  /** `name` is the literal as a lookup key (`[192.0.2.1]`), `address` the bare IP. */
  | { kind: "literal"; name: string; address: string };

/** Whether `name` can be sent as a DNS question: ASCII labels of 1-63 letters, digits, '-' or '_'. */
export function isQueryableName(name: string): boolean {
  const n = name.replace(/\.$/, "");
  if (n.length === 0 || n.length > 253) return false;
  return n.split(".").every((l) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l));
}

/** Parses a domain or address literal; undefined when it is neither. */
export function parseDomain(text: string): Domain | undefined {
  const s = text.trim().toLowerCase();
  const literal = /^\[(.*)\]$/.exec(s);
  if (literal) {
    const inner = literal[1];
    if (ipaddr.IPv4.isValidFourPartDecimal(inner)) return { kind: "literal", name: s, address: inner };
    const v6 = /^ipv6:(.+)$/.exec(inner);
    if (v6 && ipaddr.IPv6.isValid(v6[1])) {
      const address = ipaddr.IPv6.parse(v6[1]).toString();
      return { kind: "literal", name: `[ipv6:${address}]`, address };
    }
    return undefined;
  }
  const name = s.replace(/\.$/, "");
  if (name === "" || name.startsWith(".") || name.includes("..")) return undefined;
  // deno-lint-ignore no-control-regex
  const ascii = /^[\x00-\x7f]*$/.test(name) ? name : domainToASCII(name);
  if (!isQueryableName(ascii)) return undefined;
  return { kind: "name", name, ascii };
}
