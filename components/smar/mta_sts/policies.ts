// MTA-STS policy discovery for a recipient domain (RFC 8461 sections 3 and 5): the `_mta-sts.DOMAIN` TXT
// record through smar's resolver (`v=STSv1; id=...`), the cached policy when its id is the record's and
// it has not expired, else a fetch (fetch.ts) whose policy, when it parses (npm:mailauth's parsePolicy),
// replaces the cached one. What the RFC says for bad input, each with one log line naming the rule:
// - no usable TXT record (or DNS cannot tell): a cached, unexpired policy still applies (3.1), else none;
// - the policy host cannot be reached or answers wrongly: the cached policy applies, else none, and mail
//   goes as without MTA-STS (5.1); such a failure is not retried for a while (failureBackoffMs);
// - a policy that does not parse is "no new policy": the cached one applies, else none (3.2, 5.1).
// A cached policy past half its max_age is fetched again in the background while it is used, and
// refreshDue() (run by a timer) refreshes those close to expiry, so a policy in use never lapses.
// What each lookup found (a fetch failure too) is kept for TLS-RPT. Touches the cache file; connects to
// policy hosts through fetch.ts and to the nameservers through the resolver.

import { parsePolicy, resolvePolicy } from "mailauth/lib/mta-sts.js";
import { log } from "../../util/log.ts";
import type { DnsResult } from "../dns/resolver.ts";
import { type CachedPolicy, expiresAt, PolicyCache } from "./cache.ts";
import { fetchPolicyText, type FetchResult } from "./fetch.ts";

/** What made a policy unusable, in RFC 8460 result types (TLS-RPT). */
export type FetchFailureType = "sts-policy-fetch-error" | "sts-policy-invalid" | "sts-webpki-invalid";

export interface PolicyAnswer {
  /** The policy that applies (mode none included); none: deliver as without MTA-STS. */
  policy?: CachedPolicy;
  /** Why no new policy could be had this time (the cached one, if any, applies). */
  failure?: { type: FetchFailureType; reason: string };
}

export interface PoliciesOptions {
  resolver: { query(name: string, type: "A" | "TXT"): Promise<DnsResult> };
  cache: PolicyCache;
  port: number;
  timeoutMs: number;
  caCerts: string[];
  /** How long a failed fetch for a domain without a usable cached policy is not tried again. */
  failureBackoffMs: number;
  now?: () => number;
  /** Fetches a policy text (tests may replace it); default fetch.ts over the policy host's addresses. */
  fetch?: (domain: string) => Promise<FetchResult>;
}

export class MtaStsPolicies {
  readonly #o: PoliciesOptions;
  readonly #now: () => number;
  /** Domains whose fetch failed recently: the failure, until when it stands. */
  readonly #failed = new Map<string, { until: number; id: string; failure: PolicyAnswer["failure"] }>();
  /** Fetches under way, one per domain. */
  readonly #fetching = new Map<string, Promise<PolicyAnswer>>();

  constructor(opts: PoliciesOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** The policy that applies to mail for `domain` (lower-case A-label); never throws. */
  async lookup(domain: string): Promise<PolicyAnswer> {
    const now = this.#now();
    let cached = this.#o.cache.get(domain);
    if (cached && expiresAt(cached) <= now) cached = undefined;
    const txt = await this.#txtId(domain);
    if (txt.id === undefined) {
      if (cached) {
        log.info(
          "smar",
          `MTA-STS ${domain}: ${txt.why}; the cached policy id ${cached.id} still applies (RFC 8461 3.1)`,
        );
      }
      return { policy: cached };
    }
    if (cached && cached.id === txt.id) {
      if (now - cached.fetchedAt > (cached.maxAge * 1000) / 2) this.#refreshInBackground(domain, txt.id);
      return { policy: cached };
    }
    const recent = this.#failed.get(domain);
    if (recent && recent.id === txt.id && recent.until > now) {
      return { policy: cached, failure: recent.failure };
    }
    return await this.#fetchOnce(domain, txt.id, cached);
  }

  /** Fetches again the cached policies whose max_age ends within `withinMs` (and drops expired ones). */
  async refreshDue(withinMs: number): Promise<void> {
    const now = this.#now();
    this.#o.cache.dropExpired(now);
    for (const p of this.#o.cache.all()) {
      if (expiresAt(p) - now > withinMs) break;
      const txt = await this.#txtId(p.domain);
      await this.#fetchOnce(p.domain, txt.id ?? p.id, p);
    }
  }

  #refreshInBackground(domain: string, id: string): void {
    if (this.#fetching.has(domain)) return;
    this.#fetchOnce(domain, id, this.#o.cache.get(domain)).catch(() => {});
  }

  #fetchOnce(domain: string, id: string, cached: CachedPolicy | undefined): Promise<PolicyAnswer> {
    const pending = this.#fetching.get(domain);
    if (pending) return pending;
    const p = this.#fetch(domain, id, cached).finally(() => this.#fetching.delete(domain));
    this.#fetching.set(domain, p);
    return p;
  }

  async #fetch(domain: string, id: string, cached: CachedPolicy | undefined): Promise<PolicyAnswer> {
    const got = await (this.#o.fetch ?? ((d) => this.#fetchFromHost(d)))(domain);
    const fallback = cached
      ? `the cached policy id ${cached.id} applies (RFC 8461 5.1)`
      : "no cached policy: delivering as without MTA-STS (RFC 8461 5.1)";
    if (!got.ok) {
      const type: FetchFailureType = /certificate|peer|UnknownIssuer|NotValidForName/i.test(got.reason)
        ? "sts-webpki-invalid"
        : "sts-policy-fetch-error";
      log.warn("smar", `MTA-STS ${domain}: policy fetch failed: ${got.reason}; ${fallback}`);
      return this.#failedWith(domain, id, cached, { type, reason: got.reason });
    }
    let parsed: { mode: CachedPolicy["mode"]; maxAge: number; mx?: string[] };
    try {
      parsed = parsePolicy(got.text) as typeof parsed;
    } catch (err) {
      const reason = `policy does not parse: ${(err as Error).message}`;
      log.warn("smar", `MTA-STS ${domain}: ${reason}; treated as no new policy (RFC 8461 3.2), ${fallback}`);
      return this.#failedWith(domain, id, cached, { type: "sts-policy-invalid", reason });
    }
    const policy: CachedPolicy = {
      domain,
      id,
      mode: parsed.mode,
      maxAge: parsed.maxAge,
      mx: parsed.mx ?? [],
      text: got.text,
      fetchedAt: this.#now(),
    };
    try {
      this.#o.cache.put(policy);
    } catch (err) {
      log.error(
        "smar",
        `MTA-STS ${domain}: store the policy in ${this.#o.cache.path}: ${(err as Error).message}`,
      );
    }
    this.#failed.delete(domain);
    log.info(
      "smar",
      `MTA-STS ${domain}: fetched policy id ${id}: mode ${policy.mode}, max_age ${policy.maxAge}, ` +
        `mx ${policy.mx.join(" ") || "(none)"}`,
    );
    return { policy };
  }

  #failedWith(
    domain: string,
    id: string,
    cached: CachedPolicy | undefined,
    failure: NonNullable<PolicyAnswer["failure"]>,
  ): PolicyAnswer {
    this.#failed.set(domain, { until: this.#now() + this.#o.failureBackoffMs, id, failure });
    return { policy: cached, failure };
  }

  async #fetchFromHost(domain: string): Promise<FetchResult> {
    const host = `mta-sts.${domain}`;
    const a = await this.#o.resolver.query(host, "A");
    if (a.kind !== "answer") {
      const why = a.kind === "temp" ? a.reason : a.kind === "nxdomain" ? "no such host" : "no A record";
      return { ok: false, reason: `look up ${host}: ${why}` };
    }
    const addresses = a.records.flatMap((r) => r.type === "A" ? [r.address] : []);
    let last: FetchResult = { ok: false, reason: `look up ${host}: no A record` };
    for (const address of addresses) {
      last = await fetchPolicyText(domain, address, {
        port: this.#o.port,
        timeoutMs: this.#o.timeoutMs,
        caCerts: this.#o.caCerts,
      });
      // Only a host that cannot be reached sends us to the next address; an answer is the answer.
      if (last.ok || !/connect|refused|unreachable|not permitted/i.test(last.reason)) break;
    }
    return last;
  }

  /** The policy id of the domain's `_mta-sts` TXT record, or why there is none usable. */
  async #txtId(domain: string): Promise<{ id?: string; why: string }> {
    const name = `_mta-sts.${domain}`;
    try {
      const id = await resolvePolicy(domain, {
        resolver: async (n: string) => {
          const r = await this.#o.resolver.query(n, "TXT");
          if (r.kind === "answer") return r.records.flatMap((x) => x.type === "TXT" ? [[x.text]] : []);
          if (r.kind === "temp") throw new Error(r.reason);
          throw Object.assign(new Error(`${n}: no TXT record`), { code: "ENOTFOUND" });
        },
      } as never);
      return id ? { id, why: "" } : { why: `no usable ${name} TXT record` };
    } catch (err) {
      return { why: `${name} TXT: ${(err as Error).message}` };
    }
  }
}
