// DNS questions about the connecting client: its name (PTR, confirmed by a forward A/AAAA lookup that
// gives the client's address back: sendmail X's `cltresolve:` ok / no / tempptr / tempa) and its
// listings in DNS blacklists (the A records of `<reversed address>.<dnsbl domain>`). Touches only the
// resolver.

import ipaddr from "ipaddr.js";
import type { DnsResult, Resolver } from "./dns/resolver.ts";

export type ResolveState = "ok" | "no" | "tempptr" | "tempa";

/** Most PTR names checked for a client (a PTR set larger than this is suspicious anyway). */
const MAX_PTR_NAMES = 5;

/** The reversed form of an address under a zone: `4.3.2.1.<zone>`, IPv6 by nibbles. */
export function reverseName(ip: string, zone: string): string | undefined {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(ip);
  } catch {
    return undefined;
  }
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  }
  if (addr.kind() === "ipv4") return `${addr.toByteArray().reverse().join(".")}.${zone}`;
  const nibbles = addr.toByteArray().flatMap((b) => [b >> 4, b & 15].map((n) => n.toString(16)));
  return `${nibbles.reverse().join(".")}.${zone}`;
}

/** The client's confirmed name and how its lookups went. */
export async function resolveClient(
  resolver: Pick<Resolver, "query">,
  ip: string,
): Promise<{ state: ResolveState; name?: string }> {
  const v4 = !ip.includes(":") || /^::ffff:\d/i.test(ip);
  const arpa = reverseName(ip, v4 ? "in-addr.arpa" : "ip6.arpa");
  if (!arpa) return { state: "no" };
  const ptr = await resolver.query(arpa, "PTR");
  if (ptr.kind === "temp") return { state: "tempptr" };
  if (ptr.kind !== "answer") return { state: "no" };
  const names = [...new Set(ptr.records.flatMap((r) => r.type === "PTR" ? [r.target] : []))]
    .slice(0, MAX_PTR_NAMES);
  const want = canonicalIp(ip);
  let temp = false;
  for (const name of names) {
    const a = await resolver.query(name, v4 ? "A" : "AAAA");
    if (a.kind === "temp") temp = true;
    if (addresses(a).some((x) => canonicalIp(x) === want)) return { state: "ok", name };
  }
  return { state: temp ? "tempa" : "no" };
}

/** What one blacklist said about the client. */
export type ListingResult =
  | { kind: "listed"; addresses: string[] }
  | { kind: "temp" }
  /** Not listed (NXDOMAIN or no A record), or the question cannot be asked: sendmail X's `perm`. */
  | { kind: "perm" };

/** Asks one blacklist about the client. */
export async function listing(
  resolver: Pick<Resolver, "query">,
  ip: string,
  domain: string,
): Promise<ListingResult> {
  const name = reverseName(ip, domain.replace(/^\.|\.$/g, ""));
  if (!name) return { kind: "perm" };
  const r = await resolver.query(name, "A");
  if (r.kind === "temp") return { kind: "temp" };
  const found = addresses(r);
  return found.length > 0 ? { kind: "listed", addresses: found } : { kind: "perm" };
}

function addresses(r: DnsResult): string[] {
  if (r.kind !== "answer") return [];
  return r.records.flatMap((x) => x.type === "A" || x.type === "AAAA" ? [x.address] : []);
}

function canonicalIp(ip: string): string {
  try {
    const a = ipaddr.process(ip);
    return a.toString();
  } catch {
    return ip.toLowerCase();
  }
}
