// Mail authentication of what arrives, with mailauth: SPF of the MAIL FROM and HELO identities when
// MAIL is given (RFC 7208), and at the end of data DKIM (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489,
// the organizational domain from mailauth's public suffix list, tldts). The results become the value of
// our Authentication-Results: header (RFC 8601), the tags the access map is asked about (`spf:fail`,
// `dkim:pass`, `dmarc:reject` ...) and a log summary. DNS goes through the resolver given (smar's); a
// DNS failure is a temperror; a failure inside mailauth is a temperror too, never a throw.
// Touches nothing; reads the content stream it is given.

import type { Readable } from "node:stream";
import { arc, createSeal, dkimVerify, spf } from "mailauth";
import { evaluateDmarc } from "mailauth/lib/dmarc/index.js";
import { log } from "../../util/log.ts";
import type { SigningKey } from "./keys.ts";
import type { MailauthResolver } from "./resolver.ts";

const COMPONENT = "smtps";

/** Which checks run (the section's `authentication { flags }`). */
export interface AuthChecks {
  spf: boolean;
  dkim: boolean;
  dmarc: boolean;
  arc: boolean;
}

/** SPF as found at MAIL: the MAIL FROM identity and, for a sender with a domain, the HELO identity. */
export interface SpfOutcome {
  result: string;
  /** The sender domain the result is for (DMARC aligns it with From:). */
  domain: string;
  /** The A-R method fragment (`spf=pass smtp.mailfrom=...`). */
  info: string;
  helo?: { result: string; info: string };
}

/** The outcome of the end-of-data checks. */
export interface AuthOutcome {
  /** The Authentication-Results: value (`authserv-id; dkim=... ; dmarc=...`), folded. */
  value: string;
  /** What the access map is asked about, in order (DMARC first). */
  tags: string[];
  /** `dkim=pass dmarc=pass ...` for the log. */
  summary: string;
  /** The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) when sealing. */
  arcHeaders?: string;
}

/** mailauth's minimum key size for verifying (smaller keys fail verification). */
const MIN_VERIFY_BITS = 1024;

/** SPF at MAIL for `sender` ("" for <>) from `ip` that said `helo`. */
export async function checkSpf(
  resolver: MailauthResolver,
  q: { ip: string; helo: string; sender: string; mta: string },
): Promise<SpfOutcome> {
  const helo = /^\d+\.\d+\.\d+\.\d+$|:/.test(q.helo) ? `[${q.helo}]` : q.helo;
  const run = async (sender: string) => {
    try {
      const r = await spf({ sender, ip: q.ip, helo, mta: q.mta, resolver, maxElapsedTime: 20_000 });
      return { result: r.status.result, domain: r.domain, info: oneLine(r.info) };
    } catch (err) {
      log.warn(COMPONENT, `SPF check of <${sender}> from [${q.ip}] failed: ${(err as Error).message}`);
      return { result: "temperror", domain: "", info: `spf=temperror smtp.mailfrom=${sender}` };
    }
  };
  const mailFrom = await run(q.sender);
  const out: SpfOutcome = { ...mailFrom };
  if (q.sender !== "" && /^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(q.helo)) {
    const h = await run(`postmaster@${q.helo}`);
    out.helo = { result: h.result, info: `spf=${h.result} smtp.helo=${q.helo}` };
  }
  return out;
}

/** The tags of an SPF outcome, for the MAIL stage. */
export function spfTags(o: SpfOutcome): string[] {
  return [`spf:${o.result}`, ...(o.helo ? [`spf_helo:${o.helo.result}`] : [])];
}

/** The end-of-data checks over the content (as it will be stored, less our own header fields). */
export async function verifyContent(
  input: Readable,
  o: {
    resolver: MailauthResolver;
    checks: AuthChecks;
    authservId: string;
    ip: string;
    sender: string;
    spf?: SpfOutcome;
    seal?: SigningKey;
  },
): Promise<AuthOutcome> {
  const parts: string[] = [];
  const tags: string[] = [];
  const summary: string[] = [];
  if (o.spf) {
    parts.push(o.spf.info, ...(o.spf.helo ? [o.spf.helo.info] : []));
    summary.push(`spf=${o.spf.result}`);
  }
  let arcHeaders: string | undefined;
  try {
    const seal = o.seal && o.checks.arc
      ? { signingDomain: o.seal.domain, selector: o.seal.selector, privateKey: o.seal.pem }
      : undefined;
    const dkim = await dkimVerify(input, {
      resolver: o.resolver,
      sender: o.sender,
      minBitLength: MIN_VERIFY_BITS,
      // RFC 6376 exactly: a body hash that does not verify is `fail` (the lenient mode says neutral).
      strict: true,
      ...(seal ? { seal } : {}),
    });
    const results = dkim.results ?? [];
    for (const r of results) {
      // RFC 6376 6.1.2: a key that is missing or unusable is a PERMFAIL (permerror in RFC 8601), which
      // mailauth reports as neutral.
      if (r.status.result === "neutral" && /key/i.test(r.status.comment ?? "")) {
        r.status.result = "permerror";
        r.info = r.info.replace(/^dkim=neutral/, "dkim=permerror");
      }
    }
    if (o.checks.dkim) {
      if (results.length === 0) parts.push("dkim=none");
      for (const r of results) parts.push(oneLine(r.info));
      const best = bestDkim(results.map((r) => r.status.result));
      tags.push(`dkim:${best}`);
      summary.push(
        `dkim=${
          results.map((r) => r.status.result + (r.signingDomain ? `(${r.signingDomain})` : "")).join(",") ||
          "none"
        }`,
      );
    }
    let arcResult: Awaited<ReturnType<typeof arc>> | undefined;
    if (o.checks.arc && dkim.arc) {
      arcResult = await arc(dkim.arc as Parameters<typeof arc>[0], {
        resolver: o.resolver,
        minBitLength: MIN_VERIFY_BITS,
      });
      if (arcResult.info) parts.push(oneLine(arcResult.info));
      else parts.push(`arc=${arcResult.status.result}`);
      tags.push(`arc:${arcResult.status.result}`);
      summary.push(`arc=${arcResult.status.result}`);
    }
    if (o.checks.dmarc) {
      const d = dkim.headerFrom?.length
        ? await evaluateDmarc(
          {
            headerFrom: dkim.headerFrom,
            fromFields: dkim.fromFields,
            spfDomains: o.spf?.result === "pass" && o.spf.domain ? [o.spf.domain] : [],
            dkimDomains: results.filter((r) => r.status.result === "pass").map((r) => ({
              id: r.id,
              domain: r.signingDomain,
              aligned: r.status.aligned,
              underSized: r.status.underSized,
            })),
            ...(arcResult ? { arcResult } : {}),
            resolver: o.resolver,
          } as Parameters<typeof evaluateDmarc>[0],
        )
        : { response: false as const };
      const r = d.response;
      if (r) {
        parts.push(oneLine(r.info));
        const result = r.status.result;
        if (result === "fail" && !r.testMode && (r.policy === "reject" || r.policy === "quarantine")) {
          tags.unshift(`dmarc:${r.policy}`, "dmarc:fail");
        } else {
          tags.unshift(`dmarc:${result}`);
        }
        summary.push(`dmarc=${result}${result === "fail" ? `(p=${r.policy})` : ""}`);
      } else {
        parts.push("dmarc=none");
        tags.unshift("dmarc:none");
        summary.push("dmarc=none");
      }
    }
    if (seal && dkim.seal && arcResult && (["none", "pass"].includes(arcResult.status.result))) {
      const value = authResultsValue(o.authservId, parts);
      const sealed = await createSeal(
        false,
        {
          headers: dkim.headers,
          arc: dkim.arc,
          seal: { ...dkim.seal, cv: arcResult.status.result, authResults: value.replace(/^[^;]*;\s*/, "") },
        } as Parameters<typeof createSeal>[1],
      );
      if (sealed.errors?.length) {
        log.warn(COMPONENT, `ARC seal failed: ${sealed.errors.map((e) => String(e.error ?? e)).join("; ")}`);
      } else if (sealed.headers.length > 0) {
        arcHeaders = sealed.headers.join("\r\n") + "\r\n";
      }
    }
  } catch (err) {
    log.warn(COMPONENT, `DKIM/ARC/DMARC checks failed: ${(err as Error).message}`);
    const failed = (["dkim", "arc", "dmarc"] as const).filter((c) => o.checks[c]);
    parts.length = o.spf ? (o.spf.helo ? 2 : 1) : 0;
    tags.length = 0;
    for (const c of failed) {
      parts.push(`${c}=temperror`);
      tags.push(`${c}:temperror`);
      summary.push(`${c}=temperror`);
    }
  }
  return {
    value: authResultsValue(o.authservId, parts),
    tags,
    summary: summary.join(" "),
    ...(arcHeaders ? { arcHeaders } : {}),
  };
}

/** The best of several DKIM results: one pass is enough; a temporary failure outranks a failure. */
function bestDkim(results: string[]): string {
  if (results.length === 0) return "none";
  const order = ["pass", "temperror", "fail", "policy", "neutral", "permerror", "none"];
  return [...results].sort((a, b) => rank(order, a) - rank(order, b))[0];
}

function rank(order: string[], r: string): number {
  const i = order.indexOf(r);
  return i < 0 ? order.length : i;
}

/** `authserv-id; a; b` folded one method a line; `authserv-id; none` when nothing was checked. */
export function authResultsValue(authservId: string, parts: string[]): string {
  return parts.length === 0 ? `${authservId}; none` : `${authservId};\r\n\t${parts.join(";\r\n\t")}`;
}

function oneLine(s: string): string {
  return s.replace(/\r?\n[ \t]*/g, " ").trim();
}

/** The authserv-id an Authentication-Results: value names (comments and a version number left out). */
export function authservIdOf(value: string): string {
  const noComments = value.replace(/\((?:[^()\\]|\\.)*\)/g, " ");
  const first = noComments.split(";")[0].trim().split(/\s+/)[0] ?? "";
  return first.replace(/^"(.*)"$/, "$1").toLowerCase();
}
