// Where a domain's mail goes (qmgr.route): the mailertable first, else the domain's MX records sorted by
// preference (equal preferences shuffled), each exchanger resolved to its addresses; no MX means the
// domain's own addresses (implicit MX); a null MX (RFC 7505) refuses mail. A host's addresses are its A
// records, or with IPv6 delivery on (smtpc's ipv6 flag) its AAAA records followed by its A records: per
// host, IPv6 first and IPv4 as the fallback. With IPv6 off, a destination whose hosts have only AAAA
// records, or an `[IPv6:...]` domain literal, is deferred with a reason saying so (the operator can turn
// IPv6 on; the mail waits). Answers RouteResult: ok with hosts in the order smtpc should try them, perm
// (bounce) or temp (retry later). Touches only what the resolver and the mailertable touch.

import { LMTP_SOCKET_ADDRESS, type RouteResult } from "../protocol/messages.ts";
import type { ResourceRecord } from "./dns/packet.ts";
import type { DnsResult, Resolver } from "./dns/resolver.ts";
import { parseDomain } from "./domain.ts";
import type { Mailertable, MailertableRoute } from "./mailertable.ts";
import { MapTempError } from "./maps.ts";
import { type RouteOrigin, routeTls, type TlsRouteDeps } from "./tls_route.ts";

/** Most addresses a route lists: beyond this smtpc would not get through them before giving up anyway. */
export const MAX_ROUTE_HOSTS = 10;

export interface RouteDeps {
  resolver: Pick<Resolver, "query">;
  mailertable?: Mailertable;
  /** IPv6 delivery (smtpc's ipv6 flag): AAAA records before A records; otherwise A records only. */
  ipv6?: boolean;
  /** Random source in [0, 1) for shuffling equal MX preferences. */
  random?: () => number;
  /** What the TLS facts of a route come from (tls_route.ts); absent: routes carry none. */
  tls?: TlsRouteDeps;
  /** The SMTP port of hosts found by MX records (25; the testing option MTA_STS.MX_port moves it). */
  mxPort?: number;
}

type Host = { name: string; address: string };

const NOT_FOUND = "Host or domain name not found";
const IPV6_OFF = "IPv6 delivery is off (smtpc flags = { ipv6 })";

/** A route and how its hosts were found (for its TLS facts). */
type Found = RouteResult & { origin?: RouteOrigin };

const BY_OPERATOR: RouteOrigin = { mx: false, secure: false };

/**
 * Routes mail for `domainText`, with the route's TLS facts (tls_route.ts); never throws for bad input
 * (that is a perm answer).
 */
export async function resolveRoute(domainText: string, deps: RouteDeps): Promise<RouteResult> {
  const domain = parseDomain(domainText);
  if (!domain) return { status: "perm", text: `Malformed domain name: ${JSON.stringify(domainText)}` };
  const { origin, ...found } = await findRoute(domain, deps);
  const result = found as RouteResult;
  if (result.status !== "ok" || !deps.tls) return result;
  const name = domain.kind === "literal" ? domain.address : domain.ascii;
  try {
    const tls = await routeTls(name, result, origin ?? BY_OPERATOR, deps.tls);
    return tls ? { ...result, tls } : result;
  } catch (err) {
    if (!(err instanceof MapTempError)) throw err;
    return { status: "temp", text: `Look up the TLS policy of ${name}: ${err.message}` };
  }
}

async function findRoute(
  domain: NonNullable<ReturnType<typeof parseDomain>>,
  deps: RouteDeps,
): Promise<Found> {
  const entry = deps.mailertable?.find(domain.name, { catchAll: true });
  if (entry) return { ...await mailertableRoute(domain.name, entry.route, deps), origin: BY_OPERATOR };
  if (domain.kind === "literal") {
    if (domain.address.includes(":") && !deps.ipv6) {
      return { status: "temp", text: `Cannot deliver to ${domain.name}: ${IPV6_OFF}` };
    }
    return {
      status: "ok",
      protocol: "esmtp",
      port: 25,
      hosts: [{ name: domain.address, address: domain.address }],
      origin: BY_OPERATOR,
    };
  }
  return await mxRoute(domain.ascii, deps);
}

async function mailertableRoute(
  domain: string,
  route: MailertableRoute,
  deps: RouteDeps,
): Promise<RouteResult> {
  const lookups = await Promise.all(route.hosts.map(async (h): Promise<HostLookup> => {
    // An IPv6 literal of the mailertable is in smtpc's permission even with IPv6 delivery off.
    if (h.kind === "literal") return { name: h.address, hosts: [{ name: h.address, address: h.address }] };
    if (h.kind === "lmtp_socket") {
      return { name: "localhost", hosts: [{ name: "localhost", address: LMTP_SOCKET_ADDRESS }] };
    }
    return await addressesOf(h.name, deps);
  }));
  const hosts = lookups.flatMap((l) => l.hosts).slice(0, MAX_ROUTE_HOSTS);
  if (hosts.length > 0) {
    const wrap = route.implicitTls ? { implicitTls: true } : {};
    return { status: "ok", protocol: route.protocol, port: route.port, hosts, ...wrap };
  }
  // The administrator named these hosts: a lookup that fails is a problem to fix, not a reason to bounce.
  const temp = lookups.find((l) => l.temp)?.temp;
  const v6only = await onlyIpv6(lookups, deps);
  return {
    status: "temp",
    text: temp ?? (v6only ? `${v6only}: ${IPV6_OFF}` : `No address for the mailertable hosts of ${domain}`),
  };
}

async function mxRoute(domain: string, deps: RouteDeps): Promise<Found> {
  const mx = await deps.resolver.query(domain, "MX");
  switch (mx.kind) {
    case "temp":
      return { status: "temp", text: mx.reason };
    case "nxdomain":
      return { status: "perm", text: NOT_FOUND };
    case "nodata":
      return await implicitMx(domain, deps);
    case "answer":
      break;
    default: {
      const never: never = mx;
      throw new TypeError(`Route ${domain}: unexpected DNS result ${JSON.stringify(never)}`);
    }
  }
  const records = mx.records.filter((r) => r.type === "MX");
  const exchangers = records.filter((r) => r.exchange !== "");
  if (exchangers.length === 0) return { status: "perm", text: "Domain does not accept mail (null MX)" };
  const ordered = sortByPreference(exchangers, deps.random ?? Math.random);
  const lookups = await Promise.all(ordered.map((name) => addressesOf(name, deps)));
  const hosts = lookups.flatMap((l) => l.hosts).slice(0, MAX_ROUTE_HOSTS);
  if (hosts.length > 0) {
    const secureHosts = ordered.filter((_, i) => lookups[i].secure);
    const origin = { mx: true, secure: mx.secure === true, secureHosts };
    return { status: "ok", protocol: "esmtp", port: deps.mxPort ?? 25, hosts, origin };
  }
  const temp = lookups.find((l) => l.temp)?.temp;
  if (temp) return { status: "temp", text: temp };
  const v6only = await onlyIpv6(lookups, deps);
  if (v6only) return { status: "temp", text: `Mail exchanger ${v6only}: ${IPV6_OFF}` };
  return { status: "perm", text: `No address for any mail exchanger of ${domain}` };
}

async function implicitMx(domain: string, deps: RouteDeps): Promise<Found> {
  const l = await addressesOf(domain, deps);
  if (l.hosts.length > 0) {
    const secure = l.secure === true;
    const origin = { mx: true, secure, secureHosts: secure ? [domain] : [] };
    return {
      status: "ok",
      protocol: "esmtp",
      port: deps.mxPort ?? 25,
      hosts: l.hosts.slice(0, MAX_ROUTE_HOSTS),
      origin,
    };
  }
  if (l.temp) return { status: "temp", text: l.temp };
  const v6only = await onlyIpv6([l], deps);
  if (v6only) return { status: "temp", text: `${v6only}: ${IPV6_OFF}` };
  if (l.nxdomain) return { status: "perm", text: NOT_FOUND };
  return { status: "perm", text: `No MX or ${deps.ipv6 ? "address" : "A"} record for ${domain}` };
}

interface HostLookup {
  name: string;
  hosts: Host[];
  temp?: string;
  /** The name does not exist (every lookup said NXDOMAIN). */
  nxdomain?: boolean;
  /** The address records were DNSSEC-validated, every answer (DANE looks up TLSA only for such hosts). */
  secure?: boolean;
}

/**
 * The addresses of host `name` in the order smtpc should try them: with IPv6 on, its AAAA records and
 * then its A records (both asked at once), else its A records. A lookup that fails while the other
 * finds addresses is left out (the host is still reachable); temp only when nothing was found.
 */
async function addressesOf(name: string, deps: RouteDeps): Promise<HostLookup> {
  const types: ("AAAA" | "A")[] = deps.ipv6 ? ["AAAA", "A"] : ["A"];
  const answers = await Promise.all(types.map((t) => deps.resolver.query(name, t)));
  const hosts: Host[] = [];
  for (const [i, r] of answers.entries()) {
    if (r.kind !== "answer") continue;
    for (const rec of r.records) if (rec.type === types[i]) hosts.push({ name, address: rec.address });
  }
  const temp = answers.find((r): r is Extract<DnsResult, { kind: "temp" }> => r.kind === "temp")?.reason;
  const answered = answers.filter((r) => r.kind === "answer");
  return {
    name,
    hosts,
    temp: hosts.length === 0 ? temp : undefined,
    nxdomain: answers.every((r) => r.kind === "nxdomain"),
    secure: answered.length > 0 && answered.every((r) => r.secure === true),
  };
}

/**
 * With IPv6 off and no host found by its A records: the first host that has AAAA records, so the mail is
 * deferred with the reason (rather than bounced as having no address). Undefined otherwise.
 */
async function onlyIpv6(lookups: HostLookup[], deps: RouteDeps): Promise<string | undefined> {
  if (deps.ipv6) return undefined;
  for (const l of lookups) {
    if (l.temp !== undefined || l.hosts.length > 0) continue;
    const aaaa = await deps.resolver.query(l.name, "AAAA");
    if (aaaa.kind === "answer" && aaaa.records.some((r) => r.type === "AAAA")) {
      return `${l.name} has only IPv6 addresses`;
    }
  }
  return undefined;
}

/** MX exchangers by preference, lowest first; exchangers of equal preference in random order. */
export function sortByPreference(
  records: Extract<ResourceRecord, { type: "MX" }>[],
  random: () => number,
): string[] {
  const byPref = new Map<number, string[]>();
  for (const r of records) {
    const list = byPref.get(r.preference) ?? [];
    if (!list.includes(r.exchange)) list.push(r.exchange);
    byPref.set(r.preference, list);
  }
  const out: string[] = [];
  for (const pref of [...byPref.keys()].sort((a, b) => a - b)) {
    const list = byPref.get(pref)!;
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [list[i], list[j]] = [list[j], list[i]];
    }
    for (const name of list) if (!out.includes(name)) out.push(name);
  }
  return out;
}
