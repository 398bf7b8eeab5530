// SMTP TLS Reporting (RFC 8460) pieces: the result types of section 4.3, the `_smtp._tls` TXT record
// (`v=TLSRPTv1; rua=mailto:...,https://...`, section 3), the aggregate report in the JSON form of
// section 4.4, and the report message of section 5.3 (multipart/report; report-type="tlsrpt", the
// TLS-Report-Domain and TLS-Report-Submitter headers, the gzipped JSON attached). Pure; touches nothing.

/** RFC 8460 4.3 result types (negotiation and policy failures), and "success". */
export type TlsRptResult =
  | "success"
  | "starttls-not-supported"
  | "certificate-host-mismatch"
  | "certificate-expired"
  | "certificate-not-trusted"
  | "validation-failure"
  | "tlsa-invalid"
  | "dnssec-invalid"
  | "dane-required"
  | "sts-policy-fetch-error"
  | "sts-policy-invalid"
  | "sts-webpki-invalid";

export const TLSRPT_RESULTS: readonly TlsRptResult[] = [
  "success",
  "starttls-not-supported",
  "certificate-host-mismatch",
  "certificate-expired",
  "certificate-not-trusted",
  "validation-failure",
  "tlsa-invalid",
  "dnssec-invalid",
  "dane-required",
  "sts-policy-fetch-error",
  "sts-policy-invalid",
  "sts-webpki-invalid",
];

/** RFC 8460 4.4 policy types. */
export type TlsRptPolicyType = "sts" | "tlsa" | "no-policy-found";

/** One session (or one policy lookup failure) as smtpc and smar report it. */
export interface TlsRptSession {
  result: TlsRptResult;
  /** The MX host name, when a host was involved. */
  mx?: string;
  /** The address connected to. */
  ip?: string;
  /** What went wrong, for additional-information. */
  reason?: string;
}

/** The result type of a certificate node:tls did not verify (its error code), RFC 8460 4.3.1. */
export function certificateResult(verifyError: string | undefined): TlsRptResult {
  const e = verifyError ?? "";
  if (/ALTNAME|NotValidForName|host ?name/i.test(e)) return "certificate-host-mismatch";
  if (/EXPIRED|NOT_YET_VALID/i.test(e)) return "certificate-expired";
  if (/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY|UNTRUSTED|UnknownIssuer|CHAIN/i.test(e)) {
    return "certificate-not-trusted";
  }
  return "validation-failure";
}

/** The report URIs of a `_smtp._tls` TXT record (RFC 8460 3), or undefined when it is not one. */
export function parseTlsRptRecord(text: string): string[] | undefined {
  const fields = text.split(";").map((f) => f.trim()).filter((f) => f !== "");
  if (fields[0] !== "v=TLSRPTv1") return undefined;
  const rua = fields.slice(1).find((f) => /^rua\s*=/i.test(f));
  if (!rua) return undefined;
  const uris = rua.slice(rua.indexOf("=") + 1).split(",").map((u) => u.trim()).filter((u) => u !== "");
  const ok = uris.filter((u) => /^mailto:[^@\s]+@[^@\s]+$/i.test(u) || /^https:\/\/[^\s]+$/i.test(u));
  return ok.length > 0 ? ok : undefined;
}

/** What is aggregated per policy domain, policy, result and host: the rows of qmgr's TLS-RPT store. */
export interface TlsRptRow {
  domain: string;
  policyType: TlsRptPolicyType;
  /** The policy as fetched (MTA-STS), "" when none. */
  policyText: string;
  result: TlsRptResult;
  mx: string;
  ip: string;
  reason: string;
  count: number;
}

export interface ReportMeta {
  organization: string;
  contact: string;
  /** Our host name (the submitter). */
  submitter: string;
  start: number;
  end: number;
  reportId: string;
}

/** The aggregate report of one policy domain in the RFC 8460 4.4 JSON form. */
export function buildReport(domain: string, rows: TlsRptRow[], meta: ReportMeta): unknown {
  const byPolicy = new Map<string, TlsRptRow[]>();
  for (const r of rows) {
    const key = `${r.policyType}\n${r.policyText}`;
    byPolicy.set(key, [...byPolicy.get(key) ?? [], r]);
  }
  const policies = [...byPolicy.values()].map((list) => {
    const { policyType, policyText } = list[0];
    const lines = policyText.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
    const policy: Record<string, unknown> = { "policy-type": policyType, "policy-domain": domain };
    if (policyType !== "no-policy-found") policy["policy-string"] = lines;
    const mx = lines.filter((l) => /^mx\s*:/i.test(l)).map((l) => l.slice(l.indexOf(":") + 1).trim());
    if (mx.length > 0) policy["mx-host"] = mx;
    const success = list.filter((r) => r.result === "success").reduce((n, r) => n + r.count, 0);
    const failures = list.filter((r) => r.result !== "success");
    const out: Record<string, unknown> = {
      policy,
      summary: {
        "total-successful-session-count": success,
        "total-failure-session-count": failures.reduce((n, r) => n + r.count, 0),
      },
    };
    if (failures.length > 0) {
      out["failure-details"] = failures.map((r) => {
        const d: Record<string, unknown> = { "result-type": r.result, "failed-session-count": r.count };
        if (r.ip) d["receiving-ip"] = r.ip;
        if (r.mx) d["receiving-mx-hostname"] = r.mx;
        if (r.reason) d["failure-reason-code"] = r.reason.slice(0, 200);
        return d;
      });
    }
    return out;
  });
  return {
    "organization-name": meta.organization,
    "date-range": {
      "start-datetime": new Date(meta.start).toISOString().replace(/\.\d{3}Z$/, "Z"),
      "end-datetime": new Date(meta.end).toISOString().replace(/\.\d{3}Z$/, "Z"),
    },
    "contact-info": meta.contact,
    "report-id": meta.reportId,
    policies,
  };
}

/** The attachment's file name (RFC 8460 5.3): `submitter!domain!start!end!id.json.gz`. */
export function reportFileName(domain: string, meta: ReportMeta): string {
  const s = (t: number) => Math.floor(t / 1000);
  return `${meta.submitter}!${domain}!${s(meta.start)}!${s(meta.end)}!${
    meta.reportId.replace(/[^\w.-]/g, "")
  }.json.gz`;
}

/** The report message (RFC 8460 5.3) for `to`, the gzipped JSON `gz` attached in base64. */
export function reportMessage(
  domain: string,
  meta: ReportMeta,
  from: string,
  to: string,
  gz: Uint8Array,
  date: Date,
): string {
  const boundary = `tlsrpt-${meta.reportId.replace(/[^\w.-]/g, "")}`;
  const b64 = base64(gz).replace(/.{1,76}/g, (l) => l + "\r\n");
  const name = reportFileName(domain, meta);
  return [
    `From: <${from}>`,
    `To: <${to}>`,
    `Date: ${date.toUTCString().replace("GMT", "+0000")}`,
    `Subject: Report Domain: ${domain} Submitter: ${meta.submitter} Report-ID: <${meta.reportId}>`,
    `Message-ID: <${meta.reportId}>`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${meta.submitter}`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    "",
    "This is an aggregate TLS report (RFC 8460).",
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=us-ascii",
    "",
    `This is an aggregate TLS report from ${meta.submitter} for ${domain}.`,
    "",
    `--${boundary}`,
    `Content-Type: application/tlsrpt+gzip; name="${name}"`,
    "Content-Transfer-Encoding: base64",
    `Content-Disposition: attachment; filename="${name}"`,
    "",
    b64.replace(/\r\n$/, ""),
    `--${boundary}--`,
    "",
  ].join("\r\n");
}

export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** gzip of `text` (CompressionStream, built into Deno). */
export async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
