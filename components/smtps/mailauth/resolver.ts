// The DNS resolver mailauth is handed in smtps: every question goes to smar (smtps has no DNS rights)
// and comes back as node:dns would answer it, which is what mailauth expects: TXT records as arrays of
// strings, MX as {exchange, priority}, A/AAAA/PTR as strings; an error with code ENOTFOUND (no such
// name) or ENODATA (no record of that type) for a permanent "none", any other code (ETIMEOUT here) for
// "DNS cannot tell now", which mailauth reports as temperror. Touches nothing; talks only to smar.

import type { DNSResolver } from "mailauth";
import type { Endpoint } from "../../protocol/endpoint.ts";
import { DNS_QUERY_TYPES, type DnsQueryType } from "../../protocol/messages.ts";
import { lookupDns } from "../../smar/client.ts";

/** What mailauth's resolver option is called with and must give. */
export type MailauthResolver = DNSResolver;

/** How long one question may wait for smar (its own resolver gives up sooner: DNS_timeout per try). */
const DNS_REQUEST_TIMEOUT = 30_000;

function dnsError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A resolver for mailauth that asks smar; `questions` counts what it asked (for the log). */
export function smarResolver(ep: Endpoint, timeoutMs = DNS_REQUEST_TIMEOUT): MailauthResolver {
  // mailauth's type says strings, but its MX lookups take node:dns' {exchange, priority} objects.
  return async (name: string, rrtype: string): Promise<string[] & string[][]> => {
    const type = rrtype.toUpperCase() as DnsQueryType;
    if (!DNS_QUERY_TYPES.includes(type)) throw dnsError("ENODATA", `${rrtype} ${name}: type not looked up`);
    const a = await lookupDns(ep, name.replace(/\.$/, ""), type, timeoutMs);
    switch (a.kind) {
      case "answer":
        if (type === "TXT") return a.records.map((r) => [String(r)]) as never;
        if (type === "MX") {
          return a.records.flatMap((r) =>
            typeof r === "string" ? [] : [{ exchange: r.exchange, priority: r.preference }]
          ) as never;
        }
        return a.records.filter((r) => typeof r === "string") as never;
      case "nodata":
        throw dnsError("ENODATA", `${type} ${name}: no record`);
      case "nxdomain":
        throw dnsError("ENOTFOUND", `${type} ${name}: no such domain`);
      case "temp":
        throw dnsError("ETIMEOUT", a.reason);
    }
  };
}
