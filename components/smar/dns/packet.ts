// Typed access to the DNS wire format (npm:dns-packet, which ships no types): building queries and
// reading answers into plain records. Used by the stub resolver (transport.ts, resolver.ts) and by the
// test DNS server. Touches nothing.

import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";

/** Record types the resolver asks for. */
export type QueryType = "A" | "AAAA" | "MX" | "TXT" | "PTR" | "TLSA";

/** One resource record of an answer, its data already typed. */
export type ResourceRecord =
  | { type: "A" | "AAAA"; name: string; ttl: number; address: string }
  | { type: "MX"; name: string; ttl: number; preference: number; exchange: string }
  | { type: "TXT"; name: string; ttl: number; text: string }
  | { type: "PTR" | "CNAME"; name: string; ttl: number; target: string }
  | { type: "SOA"; name: string; ttl: number; minimum: number }
  /** RFC 6698: usage, selector, matching type and the association data in lower-case hex. */
  | {
    type: "TLSA";
    name: string;
    ttl: number;
    usage: number;
    selector: number;
    matchingType: number;
    data: string;
  };

/** What the resolver needs from a decoded response. */
export interface DecodedResponse {
  id: number;
  isResponse: boolean;
  truncated: boolean;
  /** The AD bit (RFC 4035 3.2.3): the answering resolver validated the answer with DNSSEC. */
  authenticated: boolean;
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED ... as dns-packet names them. */
  rcode: string;
  question?: { name: string; type: string };
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
}

interface RawRecord {
  name: string;
  type: string;
  ttl?: number;
  data?: unknown;
}

interface RawPacket {
  id?: number;
  type?: string;
  flag_tc?: boolean;
  flag_ad?: boolean;
  rcode?: string;
  questions?: { name: string; type: string }[];
  answers?: RawRecord[];
  authorities?: RawRecord[];
}

/**
 * A query packet for `name`/`type` with recursion desired; `ad`: with the AD bit, asking a validating
 * resolver to say whether it validated the answer (RFC 6840 5.7).
 */
export function encodeQuery(id: number, name: string, type: QueryType, ad = false): Uint8Array {
  return dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED | (ad ? dnsPacket.AUTHENTIC_DATA : 0),
    questions: [{ type, name }],
  });
}

/** Decodes a response; throws on a malformed packet. */
export function decodeResponse(bytes: Uint8Array): DecodedResponse {
  // dns-packet reads with Buffer methods: a plain Uint8Array (a TCP read) must be wrapped.
  const p = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as RawPacket;
  const q = p.questions?.[0];
  return {
    id: p.id ?? -1,
    isResponse: p.type === "response",
    truncated: p.flag_tc === true,
    authenticated: p.flag_ad === true,
    rcode: p.rcode ?? "NOERROR",
    question: q ? { name: q.name, type: q.type } : undefined,
    answers: (p.answers ?? []).map(toRecord).filter((r): r is ResourceRecord => r !== undefined),
    authorities: (p.authorities ?? []).map(toRecord).filter((r): r is ResourceRecord => r !== undefined),
  };
}

/** Normalizes a DNS name for comparison: lower case, no trailing dot ("" is the root). */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

function toRecord(r: RawRecord): ResourceRecord | undefined {
  const name = canonicalName(r.name ?? "");
  const ttl = typeof r.ttl === "number" && r.ttl >= 0 ? r.ttl : 0;
  const d = r.data;
  switch (r.type) {
    case "A":
    case "AAAA":
      return typeof d === "string" ? { type: r.type, name, ttl, address: d } : undefined;
    case "MX": {
      const mx = d as { preference?: unknown; exchange?: unknown } | undefined;
      if (typeof mx?.preference !== "number" || typeof mx.exchange !== "string") return undefined;
      return { type: "MX", name, ttl, preference: mx.preference, exchange: canonicalName(mx.exchange) };
    }
    case "TXT": {
      const parts = Array.isArray(d) ? d : [d];
      const text = parts.map((x) => typeof x === "string" ? x : new TextDecoder().decode(x as Uint8Array));
      return { type: "TXT", name, ttl, text: text.join("") };
    }
    case "PTR":
    case "CNAME":
      return typeof d === "string" ? { type: r.type, name, ttl, target: canonicalName(d) } : undefined;
    case "TLSA": {
      const t = d as { usage?: unknown; selector?: unknown; matchingType?: unknown; certificate?: unknown };
      if (
        typeof t?.usage !== "number" || typeof t.selector !== "number" || typeof t.matchingType !== "number"
      ) {
        return undefined;
      }
      if (!(t.certificate instanceof Uint8Array)) return undefined;
      const data = Buffer.from(t.certificate).toString("hex");
      return {
        type: "TLSA",
        name,
        ttl,
        usage: t.usage,
        selector: t.selector,
        matchingType: t.matchingType,
        data,
      };
    }
    case "SOA": {
      const soa = d as { minimum?: unknown } | undefined;
      return typeof soa?.minimum === "number" ? { type: "SOA", name, ttl, minimum: soa.minimum } : undefined;
    }
    default:
      return undefined;
  }
}
