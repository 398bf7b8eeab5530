// The TLS facts of a route (mail/tls_policy.ts RouteTls), gathered when smar routes a domain and sent
// with the route, so smtpc can decide per host what protection a delivery needs:
// - the access map's `tls_srv:` entry for the next hop domain (`tls_srv:example.com`, then
//   `tls_srv:.com` style parents, then the bare `tls_srv:` as the default, sendmail 8's order);
// - `try_tls:` entries for each route host, by name (and parents) then address (`try_tls:10.1.2.3`);
// - for routes found through MX (not mailertable routes, whose hosts the operator named): each MX host's
//   DANE TLSA records (tlsa.ts), when the MX answer and the host's address records were validated (RFC
//   7672 2.2.1, 2.2.2: else DANE does not apply to it);
// - for MX routes: the domain's MTA-STS policy, from the MtaStsSource smar was given (the MTA-STS
//   component's): THIS is where an MTA-STS lookup result enters the policy decision.
// Touches nothing itself: the access map, the resolver and the MTA-STS source do the work.

import type { AccessEntry, DaneLookup, MtaStsSource, RouteTls } from "../mail/tls_policy.ts";
import type { RouteResult } from "../protocol/messages.ts";
import { LMTP_SOCKET_ADDRESS } from "../protocol/messages.ts";
import type { AccessMap } from "./access.ts";
import { domainKeys, ipKeys, tagged } from "./keys.ts";
import { log } from "../util/log.ts";

export interface TlsRouteDeps {
  access?: AccessMap;
  /** The domain's MTA-STS policy; absent: MTA-STS is not used. */
  mtaSts?: MtaStsSource;
  /** TLSA lookups of MX hosts (tlsa.ts); absent: DANE is not used (no validating nameserver configured). */
  dane?: (host: string, port: number) => Promise<DaneLookup>;
}

/** How smar found the route's hosts: DANE needs an MX answer that was validated (RFC 7672 2.2.1). */
export interface RouteOrigin {
  /** The hosts are the domain's MX hosts (or the domain itself, implicit MX), not a mailertable's. */
  mx: boolean;
  /** The MX (or implicit-MX address) answers carried the AD bit from a trusted nameserver. */
  secure: boolean;
  /** Host names whose address records were validated too (RFC 7672 2.2.2: only those get TLSA lookups). */
  secureHosts?: string[];
}

type OkRoute = Extract<RouteResult, { status: "ok" }>;

/**
 * The TLS facts of `route` for next hop `domain`; undefined when there are none worth sending (an LMTP
 * route, nothing in the access map, no DANE, no MTA-STS). Rejects with MapTempError when the access map
 * cannot answer now: the route is then temp (guessing "no entry" could send in clear what must not be).
 */
export async function routeTls(
  domain: string,
  route: OkRoute,
  origin: RouteOrigin,
  deps: TlsRouteDeps,
): Promise<RouteTls | undefined> {
  if (route.protocol !== "esmtp" || route.hosts.every((h) => h.address === LMTP_SOCKET_ADDRESS)) {
    return undefined;
  }
  const tls: RouteTls = { domain: domain.toLowerCase() };
  const access = deps.access;
  if (access?.mayHave("tls_srv")) {
    const hit = await lookup(access, [...tagged("tls_srv", domainKeys(domain)), "tls_srv:"]);
    if (hit) tls.tlsSrv = hit;
  }
  if (access?.mayHave("try_tls")) {
    const tryTls: Record<string, AccessEntry> = {};
    for (const h of route.hosts) {
      const name = h.name.toLowerCase();
      if (tryTls[name] || tryTls[h.address]) continue;
      const byName = await lookup(access, tagged("try_tls", domainKeys(name)));
      if (byName) tryTls[name] = byName;
      else {
        const byAddress = await lookup(access, tagged("try_tls", ipKeys(h.address)));
        if (byAddress) tryTls[h.address] = byAddress;
      }
    }
    if (Object.keys(tryTls).length > 0) tls.tryTls = tryTls;
  }
  if (origin.mx && deps.dane) {
    const names = [...new Set(route.hosts.map((h) => h.name.toLowerCase()))];
    const found = await Promise.all(
      names.map(async (n): Promise<[string, DaneLookup]> => [
        n,
        origin.secure && origin.secureHosts?.includes(n)
          ? await deps.dane!(n, route.port)
          : { status: "none" },
      ]),
    );
    const dane = Object.fromEntries(found.filter(([, d]) => d.status !== "none"));
    if (Object.keys(dane).length > 0) tls.dane = dane;
  }
  if (origin.mx && deps.mtaSts) {
    try {
      tls.mtaSts = await deps.mtaSts.lookup(tls.domain);
    } catch (err) {
      // The source promises never to reject; if it does, MTA-STS fails open (RFC 8461 section 5).
      log.warn("smar", `MTA-STS lookup for ${tls.domain} failed: ${(err as Error).message}`);
    }
    if (tls.mtaSts?.status === "none") delete tls.mtaSts;
  }
  const worth = tls.tlsSrv || tls.tryTls || tls.dane || tls.mtaSts;
  return worth ? tls : undefined;
}

function lookup(access: AccessMap, keys: string[]): Promise<AccessEntry | undefined> {
  return access.raw(keys);
}
