// Where a domain's mail goes (qmgr.route): the mailertable first, else the domain's MX records sorted by
// preference (equal preferences shuffled), each exchanger resolved to its A records; no MX means the
// domain's own A records (implicit MX); a null MX (RFC 7505) refuses mail. Answers RouteResult: ok with
// hosts in the order smtpc should try them, perm (bounce) or temp (retry later). Touches only what the
// resolver and the mailertable touch.

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
  /** Random source in [0, 1) for shuffling equal MX preferences. */
  random?: () => number;
  /** What the TLS facts of a route come from (tls_route.ts); absent: routes carry none. */
  tls?: TlsRouteDeps;
  /** The SMTP port of hosts found by MX records (25; the testing option MTA_STS.MX_port moves it). */
  mxPort?: number;
}

type Host = { name: string; address: string };

const NOT_FOUND = "Host or domain name not found";

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
    if (h.kind === "literal") return { hosts: [{ name: h.address, address: h.address }] };
    if (h.kind === "lmtp_socket") return { hosts: [{ name: "localhost", address: LMTP_SOCKET_ADDRESS }] };
    return hostsOf(h.name, await deps.resolver.query(h.name, "A"));
  }));
  const hosts = lookups.flatMap((l) => l.hosts).slice(0, MAX_ROUTE_HOSTS);
  if (hosts.length > 0) return { status: "ok", protocol: route.protocol, port: route.port, hosts };
  // The administrator named these hosts: a lookup that fails is a problem to fix, not a reason to bounce.
  const temp = lookups.find((l) => l.temp)?.temp;
  return {
    status: "temp",
    text: temp ?? `No address for the mailertable hosts of ${domain}`,
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
  const lookups = await Promise.all(
    ordered.map(async (name) => hostsOf(name, await deps.resolver.query(name, "A"))),
  );
  const hosts = lookups.flatMap((l) => l.hosts).slice(0, MAX_ROUTE_HOSTS);
  if (hosts.length > 0) {
    const secureHosts = ordered.filter((_, i) => lookups[i].secure);
    const origin = { mx: true, secure: mx.secure === true, secureHosts };
    return { status: "ok", protocol: "esmtp", port: deps.mxPort ?? 25, hosts, origin };
  }
  const temp = lookups.find((l) => l.temp)?.temp;
  if (temp) return { status: "temp", text: temp };
  return { status: "perm", text: `No address for any mail exchanger of ${domain}` };
}

async function implicitMx(domain: string, deps: RouteDeps): Promise<Found> {
  const a = await deps.resolver.query(domain, "A");
  const l = hostsOf(domain, a);
  if (l.hosts.length > 0) {
    const secure = a.kind === "answer" && a.secure === true;
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
  if (a.kind === "nxdomain") return { status: "perm", text: NOT_FOUND };
  return { status: "perm", text: `No MX or A record for ${domain}` };
}

interface HostLookup {
  hosts: Host[];
  temp?: string;
  /** The address records were DNSSEC-validated (DANE looks up TLSA only for such hosts). */
  secure?: boolean;
}

function hostsOf(name: string, r: DnsResult): HostLookup {
  if (r.kind === "temp") return { hosts: [], temp: r.reason };
  if (r.kind !== "answer") return { hosts: [] };
  const hosts: Host[] = [];
  for (const rec of r.records) if (rec.type === "A") hosts.push({ name, address: rec.address });
  return { hosts, secure: r.secure === true };
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
