// TLS reporting (RFC 8460), opt-in (`qmgr { TLS_RPT { } }`): the TLS result of every session smtpc
// opened under an MTA-STS policy (smtpc.result's tlsReport) and every policy fetch that failed (a route's
// tlsRptFailure) is counted per policy domain, policy, result type, MX host and address in a small
// SQLite file beside the queue (tlsrpt.sqlite in the IBDB directory, so counts survive a restart). Every
// report_interval the counts since the last report become one aggregate report per domain (the JSON of
// RFC 8460 4.4, gzipped), sent to the URIs of the domain's `_smtp._tls` TXT record (asked of smar):
// `mailto:` as a message (RFC 8460 5.3) submitted through our own queue, `https:` as a POST that smar
// makes (qmgr has no network). A domain without a usable record gets no report; its counts are dropped
// with the period. May touch: the TLS-RPT file; new files in the CDB directory (mailed reports).

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import type { Config } from "../../config/types.ts";
import {
  base64,
  buildReport,
  gzip,
  parseTlsRptRecord,
  reportMessage,
  type ReportMeta,
  type TlsRptPolicyType,
  type TlsRptRow,
  type TlsRptSession,
} from "../mail/tlsrpt.ts";
import type { DnsAnswer, RouteResult, SmtpcResult } from "../protocol/messages.ts";
import { mtaStsMatches, type MtaStsPolicy, type RouteTls } from "../mail/tls_policy.ts";
import { certificateResult } from "../mail/tlsrpt.ts";
import { log } from "../util/log.ts";
import { prepareDatabaseFileSync } from "../util/private_files.ts";

/** The MTA-STS policy (enforce or testing) of a route's TLS facts. */
export function stsPolicyOf(tls: RouteTls | undefined): MtaStsPolicy | undefined {
  const p = tls?.mtaSts?.status === "policy" ? tls.mtaSts.policy : undefined;
  return p && p.mode !== "none" ? p : undefined;
}

/** The policy in its RFC 8461 3.2 form, for the report's policy-string (smar keeps the fields, not the text). */
export function policyText(p: MtaStsPolicy): string {
  return ["version: STSv1", `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge ?? 0}`]
    .join("\n");
}

/**
 * What one delivery under a route's MTA-STS policy came to, in RFC 8460 terms: success (TLS verified for an
 * MX host the policy names), or the failure's result type. Undefined when no MTA-STS policy applied (none,
 * or tls_srv or DANE decided) or no session was opened at all.
 */
export function stsOutcome(
  tls: RouteTls | undefined,
  res: SmtpcResult,
): { domain: string; mode: string; policyText: string; session: TlsRptSession } | undefined {
  const sts = stsPolicyOf(tls);
  const report = res.tlsPolicy;
  if (!tls || !sts || (report && report.source !== "mta-sts")) return undefined;
  const mx = res.relay?.name;
  const ip = res.relay?.address ?? res.failedHosts?.at(-1)?.address;
  const base = { domain: tls.domain, mode: sts.mode, policyText: policyText(sts) };
  const session = (result: TlsRptSession["result"], reason?: string) => ({
    ...base,
    session: { result, ...(mx ? { mx } : {}), ...(ip ? { ip } : {}), ...(reason ? { reason } : {}) },
  });
  if (report && !report.met) {
    const why = report.failure ?? "";
    return session(resultOf(why), why);
  }
  if (!mx) return undefined;
  if (!sts.mx.some((p) => mtaStsMatches(p, mx))) {
    return session("validation-failure", "MX host not in the policy");
  }
  if (!res.tls) return session("starttls-not-supported", `${mx} did not offer STARTTLS`);
  if (!res.tls.verified) return session(certificateResult(res.tls.verifyError), res.tls.verifyError);
  return session("success");
}

/**
 * Every session of a delivery under an MTA-STS policy: each host its policy refused after connecting
 * (smtpc's tlsFailures), then the outcome of the delivery itself (stsOutcome) unless that is the last of
 * those refusals again.
 */
export function stsSessions(
  tls: RouteTls | undefined,
  res: SmtpcResult,
): NonNullable<ReturnType<typeof stsOutcome>>[] {
  const sts = stsPolicyOf(tls);
  if (!tls || !sts) return [];
  const out: NonNullable<ReturnType<typeof stsOutcome>>[] = [];
  const refused = (res.tlsFailures ?? []).filter((f) => f.source === "mta-sts");
  for (const f of refused) {
    const session: TlsRptSession = {
      result: resultOf(f.reason),
      mx: f.name,
      ip: f.address,
      reason: f.reason,
    };
    out.push({ domain: tls.domain, mode: sts.mode, policyText: policyText(sts), session });
  }
  const last = stsOutcome(tls, res);
  // A delivery that failed on its last host's policy refusal is that refusal, counted above already.
  if (last && !(res.tlsPolicy?.met === false && refused.length > 0)) out.push(last);
  return out;
}

/** The RFC 8460 result type of a TLS policy refusal smtpc describes. */
function resultOf(why: string): TlsRptSession["result"] {
  if (/STARTTLS|TLS cannot be used/i.test(why)) return "starttls-not-supported";
  const cert = /certificate not verified: (.*)$/.exec(why);
  if (cert) return certificateResult(cert[1]);
  return "validation-failure";
}

/** Logs, for a testing policy, what enforce would have refused (RFC 8461 5: delivered anyway). */
export function logTesting(id: string, tls: RouteTls | undefined, res: SmtpcResult): void {
  const o = stsOutcome(tls, res);
  if (!o || o.mode !== "testing" || o.session.result === "success") return;
  log.warn(
    "qmgr",
    `${id}: MTA-STS policy of ${o.domain} (testing): ${o.session.result} with ${o.session.mx ?? "?"}` +
      `${o.session.reason ? ` (${o.session.reason})` : ""}; enforce would have deferred (RFC 8461 5)`,
  );
}

export interface TlsRptDeps {
  config: Config;
  now: () => number;
  /** smar's answer for a TXT name. */
  txt: (name: string) => Promise<DnsAnswer>;
  /** smar's POST; resolves with whether it got a 2xx, and why not. */
  post: (url: string, contentType: string, body: string) => Promise<{ ok: boolean; reason?: string }>;
  /** Queues a message of ours (sender, recipient, content); resolves with its queue id. */
  submit: (sender: string, recipient: string, content: string) => Promise<string>;
}

export class TlsReporting {
  readonly #db: DatabaseSync;
  readonly #add: StatementSync;
  readonly #rows: StatementSync;
  readonly #clear: StatementSync;
  readonly #getStart: StatementSync;
  readonly #setStart: StatementSync;
  readonly #d: TlsRptDeps;
  #timer: ReturnType<typeof setInterval> | undefined;
  #sending: Promise<void> | undefined;

  constructor(deps: TlsRptDeps) {
    this.#d = deps;
    const path = join(deps.config.qmgr.IBDB.base_directory, "tlsrpt.sqlite");
    try {
      prepareDatabaseFileSync(path);
      this.#db = new DatabaseSync(path);
      this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000;");
      this.#db.exec(`CREATE TABLE IF NOT EXISTS tlsrpt (
        domain TEXT NOT NULL, policy_type TEXT NOT NULL, policy_text TEXT NOT NULL, result TEXT NOT NULL,
        mx TEXT NOT NULL, ip TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (domain, policy_type, policy_text, result, mx, ip)) WITHOUT ROWID`);
      this.#db.exec(
        "CREATE TABLE IF NOT EXISTS tlsrpt_period (k INTEGER PRIMARY KEY, start INTEGER NOT NULL)",
      );
      this.#add = this.#db.prepare(
        `INSERT INTO tlsrpt VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET
         count = count + 1, reason = excluded.reason`,
      );
      this.#rows = this.#db.prepare("SELECT * FROM tlsrpt ORDER BY domain");
      this.#clear = this.#db.prepare("DELETE FROM tlsrpt");
      this.#getStart = this.#db.prepare("SELECT start FROM tlsrpt_period WHERE k = 0");
      this.#setStart = this.#db.prepare("INSERT OR REPLACE INTO tlsrpt_period VALUES (0, ?)");
      if (this.#getStart.get() === undefined) this.#setStart.run(deps.now());
    } catch (err) {
      throw new Error(`Open the TLS-RPT file ${path}: ${(err as Error).message}`);
    }
  }

  /** Sends reports every report_interval. */
  start(): void {
    const every = Math.max(100, this.#d.config.qmgr.TLS_RPT?.report_interval ?? 86_400_000);
    this.#timer = setInterval(() => void this.sendReports(), every);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sending;
    this.#db.close();
  }

  /** Counts the sessions of a delivery result under an MTA-STS policy (stsSessions). */
  recordResult(route: { tls?: RouteTls }, res: SmtpcResult): void {
    for (const o of stsSessions(route.tls, res)) this.#record(o.domain, "sts", o.policyText, o.session);
  }

  /** Counts a failed policy fetch a route reports. */
  recordRoute(domain: string, route: RouteResult): void {
    if (route.status !== "ok" || !route.tlsRptFailure) return;
    const sts = stsPolicyOf(route.tls);
    this.#record(domain, sts ? "sts" : "no-policy-found", sts ? policyText(sts) : "", route.tlsRptFailure);
  }

  #record(domain: string, type: TlsRptPolicyType, text: string, s: TlsRptSession): void {
    try {
      this.#add.run(domain, type, text, s.result, s.mx ?? "", s.ip ?? "", s.reason ?? "");
    } catch (err) {
      log.error("qmgr", `TLS-RPT: record a result for ${domain}: ${(err as Error).message}`);
    }
  }

  /** Sends the reports of the period that ends now, and starts the next period. */
  sendReports(): Promise<void> {
    this.#sending ??= this.#send().finally(() => this.#sending = undefined);
    return this.#sending;
  }

  async #send(): Promise<void> {
    const end = this.#d.now();
    const start = Number((this.#getStart.get() as { start: number }).start);
    const rows = (this.#rows.all() as unknown as Record<string, string | number>[]).map((r): TlsRptRow => ({
      domain: String(r.domain),
      policyType: r.policy_type as TlsRptPolicyType,
      policyText: String(r.policy_text),
      result: r.result as TlsRptRow["result"],
      mx: String(r.mx),
      ip: String(r.ip),
      reason: String(r.reason),
      count: Number(r.count),
    }));
    this.#clear.run();
    this.#setStart.run(end);
    const byDomain = new Map<string, TlsRptRow[]>();
    for (const r of rows) byDomain.set(r.domain, [...byDomain.get(r.domain) ?? [], r]);
    for (const [domain, list] of byDomain) {
      try {
        await this.#report(domain, list, start, end);
      } catch (err) {
        log.error("qmgr", `TLS-RPT ${domain}: report failed: ${(err as Error).message}`);
      }
    }
  }

  async #report(domain: string, rows: TlsRptRow[], start: number, end: number): Promise<void> {
    const name = `_smtp._tls.${domain}`;
    const answer = await this.#d.txt(name);
    const uris = answer.kind === "answer"
      ? answer.records.flatMap((t) => typeof t === "string" ? parseTlsRptRecord(t) ?? [] : [])
      : [];
    if (uris.length === 0) {
      log.info("qmgr", `TLS-RPT ${domain}: no usable ${name} TXT record (${answer.kind}): no report`);
      return;
    }
    const cfg = this.#d.config;
    const host = cfg.hostname;
    const rpt = cfg.qmgr.TLS_RPT;
    const meta: ReportMeta = {
      organization: rpt?.organization_name ?? host,
      contact: rpt?.contact_info ?? `postmaster@${host}`,
      submitter: host,
      start,
      end,
      reportId: `${new Date(end).toISOString().replace(/[-:.]/g, "")}.${domain}@${host}`,
    };
    const json = JSON.stringify(buildReport(domain, rows, meta));
    const gz = await gzip(json);
    const sessions = rows.reduce((n, r) => n + r.count, 0);
    for (const uri of uris) {
      if (uri.toLowerCase().startsWith("mailto:")) {
        const to = decodeURIComponent(uri.slice(7).split("?")[0]);
        const from = rpt?.report_sender ?? `postmaster@${host}`;
        const id = await this.#d.submit(from, to, reportMessage(domain, meta, from, to, gz, new Date(end)));
        log.info(
          "qmgr",
          `TLS-RPT ${domain}: report ${meta.reportId} (${sessions} sessions) mailed to <${to}> as ${id}`,
        );
      } else {
        const r = await this.#d.post(uri, "application/tlsrpt+gzip", base64(gz));
        if (r.ok) {
          log.info(
            "qmgr",
            `TLS-RPT ${domain}: report ${meta.reportId} (${sessions} sessions) posted to ${uri}`,
          );
        } else log.warn("qmgr", `TLS-RPT ${domain}: POST to ${uri} failed: ${r.reason}`);
      }
    }
  }
}
