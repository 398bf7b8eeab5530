// The outbound TLS policy decision (components/mail/tls_policy.ts): tls_srv values in smx's and sendmail
// 8's spelling, the order tls_srv, DANE, MTA-STS, security_level, try_tls, REQUIRETLS and TLS-Required: No,
// as labelled case tables.

import assert from "node:assert/strict";
import {
  decideTls,
  type MessageTlsFlags,
  mtaStsMatches,
  parseTlsSrv,
  type RouteTls,
  type TlsaRecord,
} from "../components/mail/tls_policy.ts";

Deno.test("parseTlsSrv() reads smx's levels and sendmail 8's ENCR/VERIFY with TEMP+/PERM+ and +CN:", () => {
  const cases: [string, ReturnType<typeof parseTlsSrv>][] = [
    ["none", { level: "none", match: [], permanent: false }],
    ["may", { level: "may", match: [], permanent: false }],
    ["encrypt", { level: "encrypt", match: [], permanent: false }],
    ["verify", { level: "verify", match: [], permanent: false }],
    ["verify mx.example.com .example.net", {
      level: "verify",
      match: ["mx.example.com", ".example.net"],
      permanent: false,
    }],
    ["DANE", { level: "dane", match: [], permanent: false }],
    ["mta-sts", { level: "mta-sts", match: [], permanent: false }],
    ["ENCR:112", { level: "encrypt", match: [], permanent: false }],
    ["PERM+VERIFY:112", { level: "verify", match: [], permanent: true }],
    ["TEMP+VERIFY", { level: "verify", match: [], permanent: false }],
    ["ENCR:112+CN:smtp.endmail.org", { level: "encrypt", match: ["smtp.endmail.org"], permanent: false }],
    ["sometimes", undefined],
    ["encrypt mx.example.com", undefined],
    ["VERIFY+OU:x", undefined],
  ];
  for (const [rhs, want] of cases) assert.deepEqual(parseTlsSrv(rhs), want, rhs);
});

Deno.test("mtaStsMatches() lets a wildcard stand for exactly one label", () => {
  const cases: [string, string, boolean][] = [
    ["mx.example.com", "MX.example.com.", true],
    ["*.example.com", "mx.example.com", true],
    ["*.example.com", "a.mx.example.com", false],
    ["*.example.com", "example.com", false],
    ["mx.example.com", "mx2.example.com", false],
  ];
  for (const [p, h, want] of cases) assert.equal(mtaStsMatches(p, h), want, `${p} ${h}`);
});

const TLSA: TlsaRecord = { usage: 3, selector: 1, matchingType: 1, data: "ab".repeat(32) };
const MX = { name: "mx.example.com", address: "192.0.2.1" };

function facts(more: Partial<RouteTls> = {}): RouteTls {
  return { domain: "example.com", ...more };
}

Deno.test("decideTls() applies tls_srv, then DANE, then MTA-STS, then security_level", () => {
  const sts = { status: "policy" as const, policy: { mode: "enforce" as const, mx: ["*.example.com"] } };
  const testing = { status: "policy" as const, policy: { mode: "testing" as const, mx: ["*.example.com"] } };
  const cases: {
    label: string;
    tls?: RouteTls;
    level?: "none" | "may" | "encrypt" | "verify";
    flags?: MessageTlsFlags;
    want: { level: string; source: string; unmet?: RegExp; status?: string; permanent?: boolean };
  }[] = [
    { label: "nothing known: security_level", want: { level: "may", source: "security_level" } },
    {
      label: "tls_srv beats DANE and MTA-STS",
      tls: facts({
        tlsSrv: { key: "tls_srv:example.com", rhs: "encrypt" },
        dane: { "mx.example.com": { status: "secure", records: [TLSA] } },
        mtaSts: sts,
      }),
      want: { level: "encrypt", source: "tls_srv" },
    },
    {
      label: "DANE beats MTA-STS",
      tls: facts({ dane: { "mx.example.com": { status: "secure", records: [TLSA] } }, mtaSts: sts }),
      want: { level: "dane", source: "dane" },
    },
    {
      label: "TLSA not validated: no DANE, MTA-STS applies",
      tls: facts({ dane: { "mx.example.com": { status: "insecure" } }, mtaSts: sts }),
      want: { level: "mta-sts", source: "mta-sts" },
    },
    {
      label: "a failed TLSA lookup: the host cannot be used now",
      tls: facts({ dane: { "mx.example.com": { status: "temp", reason: "SERVFAIL" } } }),
      want: { level: "dane", source: "dane", unmet: /TLSA lookup .* failed: SERVFAIL/, status: "4.7.5" },
    },
    {
      label: "only unusable TLSA records (PKIX-EE): TLS without authentication",
      tls: facts({ dane: { "mx.example.com": { status: "secure", records: [{ ...TLSA, usage: 1 }] } } }),
      want: { level: "encrypt", source: "dane" },
    },
    {
      label: "MTA-STS enforce with an MX host outside the policy",
      tls: facts({ mtaSts: { status: "policy", policy: { mode: "enforce", mx: ["mail.example.net"] } } }),
      want: { level: "mta-sts", source: "mta-sts", unmet: /not in the MTA-STS policy/ },
    },
    {
      label: "MTA-STS testing: opportunistic",
      tls: facts({ mtaSts: testing }),
      level: "none",
      want: { level: "may", source: "mta-sts" },
    },
    {
      label: "tls_srv dane without TLSA records",
      tls: facts({ tlsSrv: { key: "tls_srv:", rhs: "dane" } }),
      want: { level: "dane", source: "tls_srv", unmet: /no DNSSEC-validated TLSA/ },
    },
    {
      label: "tls_srv PERM+VERIFY fails for good",
      tls: facts({ tlsSrv: { key: "tls_srv:.com", rhs: "PERM+VERIFY" } }),
      want: { level: "verify", source: "tls_srv", status: "5.7.5", permanent: true },
    },
    {
      label: "try_tls no turns may into none",
      tls: facts({ tryTls: { "mx.example.com": { key: "try_tls:mx.example.com", rhs: "NO" } } }),
      want: { level: "none", source: "try_tls" },
    },
    {
      label: "try_tls no by address",
      tls: facts({ tryTls: { "192.0.2.1": { key: "try_tls:192.0.2", rhs: "no" } } }),
      want: { level: "none", source: "try_tls" },
    },
    {
      label: "try_tls no where encrypt is required: the host cannot be used",
      tls: facts({
        tlsSrv: { key: "tls_srv:example.com", rhs: "encrypt" },
        tryTls: { "mx.example.com": { key: "try_tls:mx.example.com", rhs: "no" } },
      }),
      want: { level: "encrypt", source: "tls_srv", unmet: /forbids STARTTLS/ },
    },
    {
      label: "REQUIRETLS without DANE or MTA-STS: 5.7.10 for good, whatever tls_srv says",
      tls: facts({ tlsSrv: { key: "tls_srv:example.com", rhs: "verify" } }),
      flags: { requireTls: true },
      want: { level: "mta-sts", source: "mta-sts", unmet: /REQUIRETLS/, status: "5.7.10", permanent: true },
    },
    {
      label: "REQUIRETLS with DANE",
      tls: facts({ dane: { "mx.example.com": { status: "secure", records: [TLSA] } } }),
      flags: { requireTls: true },
      want: { level: "dane", source: "dane", status: "4.7.5" },
    },
    {
      label: "REQUIRETLS with MTA-STS testing counts as enforce",
      tls: facts({ mtaSts: testing }),
      flags: { requireTls: true },
      want: { level: "mta-sts", source: "mta-sts" },
    },
    {
      label: "TLS-Required: No lowers DANE to may",
      tls: facts({ dane: { "mx.example.com": { status: "secure", records: [TLSA] } } }),
      flags: { tlsRequiredNo: true },
      want: { level: "may", source: "tls-required" },
    },
    {
      label: "TLS-Required: No leaves the operator's tls_srv alone",
      tls: facts({ tlsSrv: { key: "tls_srv:example.com", rhs: "verify" } }),
      flags: { tlsRequiredNo: true },
      want: { level: "verify", source: "tls_srv" },
    },
  ];
  for (const c of cases) {
    const r = decideTls(c.tls, MX, c.level ?? "may", c.flags);
    assert.equal(r.level, c.want.level, c.label);
    assert.equal(r.source, c.want.source, c.label);
    if (c.want.unmet) assert.match(r.unmet ?? "", c.want.unmet, c.label);
    else assert.equal(r.unmet, undefined, `${c.label}: ${r.unmet}`);
    if (c.want.status) assert.equal(r.status, c.want.status, c.label);
    assert.equal(r.permanent === true, c.want.permanent === true, c.label);
  }
});
