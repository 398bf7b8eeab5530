// The TLS-RPT pieces (RFC 8460) as functions: the `_smtp._tls` record, result types of certificate
// failures, the JSON report's shape (section 4.4), and what one delivery under an MTA-STS policy counts as.

import assert from "node:assert/strict";
import {
  buildReport,
  certificateResult,
  parseTlsRptRecord,
  type TlsRptRow,
} from "../components/mail/tlsrpt.ts";
import { stsOutcome, stsSessions } from "../components/qmgr/tlsrpt.ts";
import type { RouteTls } from "../components/mail/tls_policy.ts";
import type { SmtpcResult } from "../components/protocol/messages.ts";

Deno.test("parseTlsRptRecord() reads the rua URIs of a v=TLSRPTv1 record, and nothing else", () => {
  const cases: [string, string[] | undefined][] = [
    ["v=TLSRPTv1; rua=mailto:a@example.com", ["mailto:a@example.com"]],
    ["v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/x", [
      "mailto:a@example.com",
      "https://r.example.com/x",
    ]],
    ["v=TLSRPTv1; rua=http://insecure.example.com/", undefined],
    ["v=TLSRPTv2; rua=mailto:a@example.com", undefined],
    ["v=spf1 -all", undefined],
    ["v=TLSRPTv1;", undefined],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseTlsRptRecord(text), want, text);
});

Deno.test("certificateResult() names the RFC 8460 result type of a certificate failure", () => {
  const cases: [string, string][] = [
    ["ERR_TLS_CERT_ALTNAME_INVALID", "certificate-host-mismatch"],
    ["CERT_HAS_EXPIRED", "certificate-expired"],
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "certificate-not-trusted"],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", "certificate-not-trusted"],
    ["something else", "validation-failure"],
  ];
  for (const [code, want] of cases) assert.equal(certificateResult(code), want, code);
});

Deno.test("buildReport() gives the RFC 8460 4.4 fields: summary counts and failure details per policy", () => {
  const text = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400";
  const row = (result: TlsRptRow["result"], count: number): TlsRptRow => ({
    domain: "example.com",
    policyType: "sts",
    policyText: text,
    result,
    mx: "mx.example.com",
    ip: "192.0.2.1",
    reason: result === "success" ? "" : "no STARTTLS",
    count,
  });
  const meta = {
    organization: "Org",
    contact: "c@x",
    submitter: "mta.x",
    start: 0,
    end: 86_400_000,
    reportId: "r1",
  };
  // deno-lint-ignore no-explicit-any
  const r = buildReport("example.com", [row("success", 5), row("starttls-not-supported", 2)], meta) as any;
  assert.deepEqual(r["date-range"], {
    "start-datetime": "1970-01-01T00:00:00Z",
    "end-datetime": "1970-01-02T00:00:00Z",
  });
  assert.equal(r["report-id"], "r1");
  assert.deepEqual(r.policies[0].policy, {
    "policy-type": "sts",
    "policy-domain": "example.com",
    "policy-string": text.split("\n"),
    "mx-host": ["mx.example.com"],
  });
  assert.deepEqual(r.policies[0].summary, {
    "total-successful-session-count": 5,
    "total-failure-session-count": 2,
  });
  assert.deepEqual(r.policies[0]["failure-details"], [{
    "result-type": "starttls-not-supported",
    "failed-session-count": 2,
    "receiving-ip": "192.0.2.1",
    "receiving-mx-hostname": "mx.example.com",
    "failure-reason-code": "no STARTTLS",
  }]);
});

Deno.test("stsOutcome() counts a delivery under an MTA-STS policy as success or its failure type", () => {
  const tls = (mode: "enforce" | "testing"): RouteTls => ({
    domain: "example.com",
    mtaSts: { status: "policy", policy: { mode, mx: ["mx.example.com"], id: "1", maxAge: 60 } },
  });
  const relay = (name: string) => ({ name, address: "192.0.2.1", port: 25 });
  const res = (more: Partial<SmtpcResult>): SmtpcResult => ({
    type: "smtpc.result",
    taId: "t",
    results: [],
    ...more,
  });
  const tlsOk = { version: "TLSv1.3", cipher: "X", verified: true };
  const cases: [string, RouteTls | undefined, SmtpcResult, string | undefined][] = [
    ["verified TLS", tls("enforce"), res({ relay: relay("mx.example.com"), tls: tlsOk }), "success"],
    [
      "enforce refused: no STARTTLS",
      tls("enforce"),
      res({
        tlsPolicy: {
          level: "mta-sts",
          source: "mta-sts",
          rule: "r",
          met: false,
          failure: "the server does not offer STARTTLS",
        },
        failedHosts: [{ address: "192.0.2.1", port: 25, reason: "x" }],
      }),
      "starttls-not-supported",
    ],
    [
      "testing, plain text",
      tls("testing"),
      res({ relay: relay("mx.example.com") }),
      "starttls-not-supported",
    ],
    [
      "testing, MX not named",
      tls("testing"),
      res({ relay: relay("other.example"), tls: tlsOk }),
      "validation-failure",
    ],
    [
      "testing, wrong name",
      tls("testing"),
      res({
        relay: relay("mx.example.com"),
        tls: { ...tlsOk, verified: false, verifyError: "ERR_TLS_CERT_ALTNAME_INVALID" },
      }),
      "certificate-host-mismatch",
    ],
    ["no policy", undefined, res({ relay: relay("mx.example.com") }), undefined],
    ["no session at all", tls("enforce"), res({}), undefined],
  ];
  for (const [what, route, r, want] of cases) assert.equal(stsOutcome(route, r)?.session.result, want, what);
});

Deno.test("stsSessions() counts each host a policy refused on the way, and the delivery's own end once", () => {
  const tls: RouteTls = {
    domain: "example.com",
    mtaSts: { status: "policy", policy: { mode: "enforce", mx: ["mx1.example.com", "mx2.example.com"] } },
  };
  const refused = {
    name: "mx1.example.com",
    address: "192.0.2.1",
    source: "mta-sts" as const,
    reason: "TLS policy ... not met with mx1: server certificate not verified: ERR_TLS_CERT_ALTNAME_INVALID",
  };
  const sent: SmtpcResult = {
    type: "smtpc.result",
    taId: "t",
    results: [],
    relay: { name: "mx2.example.com", address: "192.0.2.2", port: 25 },
    tls: { version: "TLSv1.3", cipher: "X", verified: true },
    tlsFailures: [refused],
  };
  assert.deepEqual(stsSessions(tls, sent).map((s) => [s.session.result, s.session.mx]), [
    ["certificate-host-mismatch", "mx1.example.com"],
    ["success", "mx2.example.com"],
  ]);
  const deferred: SmtpcResult = {
    type: "smtpc.result",
    taId: "t",
    results: [],
    tlsPolicy: { level: "mta-sts", source: "mta-sts", rule: "r", met: false, failure: refused.reason },
    tlsFailures: [refused],
  };
  assert.deepEqual(stsSessions(tls, deferred).map((s) => s.session.result), ["certificate-host-mismatch"]);
});
