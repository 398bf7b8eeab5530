// smar's stub resolver: asks its nameservers in turn (each try bounded by DNS_timeout), caches answers
// by their TTL, and tells "does not exist" (NXDOMAIN, NODATA: permanent) from "cannot tell now"
// (SERVFAIL, REFUSED, timeout, unreachable server: temporary), which Deno.resolveDns cannot.
// Touches the network only through transport.ts.

import { type Nameserver } from "./nameservers.ts";
import { canonicalName, type DecodedResponse, type QueryType, type ResourceRecord } from "./packet.ts";
import { type Exchange, exchange } from "./transport.ts";
import { TtlCache } from "./cache.ts";
import { isQueryableName } from "../domain.ts";

export type DnsResult =
  /**
   * `secure`: the answer carried the AD bit (DNSSEC-validated) and came from a nameserver the
   * configuration trusts to validate (smar's DNSSEC_trusted_nameservers); else it proves nothing.
   */
  | { kind: "answer"; records: ResourceRecord[]; secure?: boolean }
  /** The name exists but has no record of the type asked. */
  | { kind: "nodata" }
  /** The name does not exist (or cannot exist: it is not a valid DNS name). */
  | { kind: "nxdomain" }
  | { kind: "temp"; reason: string };

export interface ResolverOptions {
  nameservers: Nameserver[];
  /** How long one try waits for an answer (ms). */
  timeoutMs: number;
  /** How many times each nameserver is tried before giving up (default 2). */
  rounds?: number;
  /** Most answers kept (default 10,000; the oldest goes first). */
  cacheSize?: number;
  /** Clock for the cache (ms). */
  now?: () => number;
}

/** Negative answers without an SOA to say otherwise are kept this long (s). */
const DEFAULT_NEGATIVE_TTL = 60;
/** No answer is kept longer than a day, whatever its TTL says (s). */
const MAX_TTL = 86_400;

type Cached = Exclude<DnsResult, { kind: "temp" }>;

export class Resolver {
  readonly #servers: Nameserver[];
  readonly #timeoutMs: number;
  readonly #rounds: number;
  readonly #cache: TtlCache<Cached>;
  readonly #inflight = new Map<string, Promise<DnsResult>>();
  readonly #stop = new AbortController();

  constructor(opts: ResolverOptions) {
    if (opts.nameservers.length === 0) throw new RangeError("Create resolver: no nameserver given");
    this.#servers = opts.nameservers;
    this.#timeoutMs = opts.timeoutMs;
    this.#rounds = Math.max(1, opts.rounds ?? 2);
    this.#cache = new TtlCache(opts.cacheSize ?? 10_000, opts.now);
  }

  /** Records of `type` for `name` (CNAMEs followed by the recursive server); never throws. */
  query(name: string, type: QueryType): Promise<DnsResult> {
    if (!isQueryableName(name)) return Promise.resolve({ kind: "nxdomain" });
    const key = `${type} ${canonicalName(name)}`;
    const hit = this.#cache.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.#inflight.get(key);
    if (!p) {
      p = this.#ask(canonicalName(name), type).then((r) => {
        this.#inflight.delete(key);
        if (r.kind !== "temp") this.#cache.set(key, r.result, r.ttl);
        return r.kind === "temp" ? r : r.result;
      });
      this.#inflight.set(key, p);
    }
    return p;
  }

  /** Stops every query in flight (they answer temp) and forgets the cache. */
  close(): void {
    this.#stop.abort();
    this.#cache.clear();
  }

  async #ask(
    name: string,
    type: QueryType,
  ): Promise<{ kind: "final"; result: Cached; ttl: number } | { kind: "temp"; reason: string }> {
    let last = "no nameserver tried";
    for (let round = 0; round < this.#rounds; round++) {
      for (const ns of this.#servers) {
        if (this.#stop.signal.aborted) return { kind: "temp", reason: "resolver stopped" };
        const x: Exchange = await exchange(ns, name, type, this.#timeoutMs, this.#stop.signal);
        const server = ns.family === 6 ? `[${ns.ip}]:${ns.port}` : `${ns.ip}:${ns.port}`;
        if (x.kind === "timeout") {
          last = `no answer from ${server} within ${this.#timeoutMs} ms`;
        } else if (x.kind === "error") {
          last = `${server}: ${x.reason}`;
        } else if (x.response.rcode === "NOERROR" || x.response.rcode === "NXDOMAIN") {
          return { kind: "final", ...interpret(x.response, type, ns.validating === true) };
        } else {
          last = `${server} answered ${x.response.rcode}`;
        }
      }
    }
    return { kind: "temp", reason: `Look up ${type} ${name}: ${last}` };
  }
}

function interpret(r: DecodedResponse, type: QueryType, trusted: boolean): { result: Cached; ttl: number } {
  if (r.rcode === "NOERROR") {
    const records = r.answers.filter((a) => a.type === type);
    if (records.length > 0) {
      const ttl = Math.min(
        ...r.answers.filter((a) => a.type === type || a.type === "CNAME").map((a) => a.ttl),
      );
      const result: Cached = { kind: "answer", records };
      if (trusted && r.authenticated) result.secure = true;
      return { result, ttl: Math.min(ttl, MAX_TTL) };
    }
    return { result: { kind: "nodata" }, ttl: negativeTtl(r) };
  }
  return { result: { kind: "nxdomain" }, ttl: negativeTtl(r) };
}

/** RFC 2308: a negative answer lives as long as the SOA's TTL and minimum field allow. */
function negativeTtl(r: DecodedResponse): number {
  const soa = r.authorities.find((a) => a.type === "SOA");
  if (!soa || soa.type !== "SOA") return DEFAULT_NEGATIVE_TTL;
  return Math.min(soa.ttl, soa.minimum, MAX_TTL);
}
