// DANE's TLSA lookup (RFC 7672 2.2): `_PORT._tcp.HOST` TLSA through smar's own resolver. Records count
// only when the answer was DNSSEC-validated by a nameserver the configuration trusts to validate
// (DNSSEC_validating_nameserver: the resolver's `secure`); records without that are "insecure", the same
// as none. A lookup that fails (SERVFAIL, timeout) is "temp": that host must not be used now. Touches
// nothing itself; the resolver does the DNS.

import type { DaneLookup, TlsaRecord } from "../mail/tls_policy.ts";
import type { Resolver } from "./dns/resolver.ts";

/** The TLSA lookup function tls_route.ts takes, over `resolver`. */
export function tlsaLookup(
  resolver: Pick<Resolver, "query">,
): (host: string, port: number) => Promise<DaneLookup> {
  return async (host, port) => {
    const r = await resolver.query(`_${port}._tcp.${host}`, "TLSA");
    switch (r.kind) {
      case "temp":
        return { status: "temp", reason: r.reason };
      case "nodata":
      case "nxdomain":
        return { status: "none" };
      case "answer": {
        if (!r.secure) return { status: "insecure" };
        const records: TlsaRecord[] = [];
        for (const rec of r.records) {
          if (rec.type !== "TLSA") continue;
          records.push({
            usage: rec.usage,
            selector: rec.selector,
            matchingType: rec.matchingType,
            data: rec.data,
          });
        }
        return records.length > 0 ? { status: "secure", records } : { status: "none" };
      }
      default: {
        const never: never = r;
        throw new TypeError(`TLSA ${host}: unexpected DNS result ${JSON.stringify(never)}`);
      }
    }
  };
}
