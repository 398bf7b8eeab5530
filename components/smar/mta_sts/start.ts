// smar's MTA-STS at start: reads MTA_STS.CAcert_file, opens the policy cache and starts the timer that
// refreshes policies close to expiry (every refresh_interval, those expiring within two intervals). A
// file that cannot be read or opened fails smar's start (the configuration is broken). Touches the CA
// file and the cache file.

import type { MtaStsConfig } from "../../../config/types.ts";
import { log } from "../../util/log.ts";
import type { DnsResult } from "../dns/resolver.ts";
import { PolicyCache } from "./cache.ts";
import { MtaStsPolicies } from "./policies.ts";
import type { MtaStsLookup, MtaStsSource } from "../../mail/tls_policy.ts";
import type { TlsRptSession } from "../../mail/tlsrpt.ts";

export interface MtaSts {
  policies: MtaStsPolicies;
  /** The MtaStsSource of the TLS policy decision (mail/tls_policy.ts, consulted in smar/tls_route.ts). */
  source: MtaStsSource & { takeFailure(domain: string): TlsRptSession | undefined };
  stop(): void;
}

/** How a fetch failure of the last lookup is kept until the route's answer takes it (TLS-RPT). */
const KEEP_FAILURES = 1000;

/**
 * The MtaStsSource over `policies`: a policy of any mode (none included: tls_policy.ts ignores it), or
 * none; the fetch failure of each lookup is kept for TLS-RPT until takeFailure() takes it.
 */
export function mtaStsSource(policies: MtaStsPolicies): MtaSts["source"] {
  const failures = new Map<string, TlsRptSession>();
  return {
    async lookup(domain: string): Promise<MtaStsLookup> {
      const a = await policies.lookup(domain);
      if (a.failure) {
        if (failures.size >= KEEP_FAILURES) failures.delete(failures.keys().next().value!);
        failures.set(domain, { result: a.failure.type, reason: a.failure.reason });
      }
      if (!a.policy) return { status: "none" };
      const { mode, mx, id, maxAge } = a.policy;
      return { status: "policy", policy: { mode, mx, id, maxAge } };
    },
    takeFailure(domain: string): TlsRptSession | undefined {
      const f = failures.get(domain);
      failures.delete(domain);
      return f;
    },
  };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
/** A failed fetch is not tried again for this long (at most; refresh_interval when shorter). */
const FAILURE_BACKOFF_MS = 5 * 60_000;

export async function startMtaSts(
  cfg: MtaStsConfig,
  resolver: { query(name: string, type: "A" | "TXT"): Promise<DnsResult> },
): Promise<MtaSts> {
  let caCerts: string[] = [];
  if (cfg.CAcert_file) {
    try {
      caCerts = (await Deno.readTextFile(cfg.CAcert_file)).match(PEM_CERT) ?? [];
    } catch (err) {
      throw new Error(`Read MTA_STS CAcert_file ${cfg.CAcert_file}: ${(err as Error).message}`);
    }
  }
  const cache = new PolicyCache(cfg.cache_file);
  const policies = new MtaStsPolicies({
    resolver,
    cache,
    port: cfg.HTTPS_port,
    timeoutMs: cfg.timeout,
    caCerts,
    failureBackoffMs: Math.min(FAILURE_BACKOFF_MS, cfg.refresh_interval),
  });
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    policies.refreshDue(2 * cfg.refresh_interval)
      .catch((err) => log.error("smar", `MTA-STS refresh: ${(err as Error).message}`))
      .finally(() => running = false);
  }, Math.max(1000, cfg.refresh_interval));
  log.info("smar", `MTA-STS on: policy cache ${cfg.cache_file}`);
  return {
    policies,
    source: mtaStsSource(policies),
    stop() {
      clearInterval(timer);
      cache.close();
    },
  };
}
