// The mail authentication checks (SPF at MAIL; DKIM, ARC and DMARC at the end of data): the results
// smtps found, as tags (`spf:fail`, `dmarc:reject`, `dkim:pass` ...), looked up in the access map in the
// order smtps sends them, the first entry found deciding, like a DNS blacklist's answer at connect. Only
// with the `access` flag and unless a `quick:` entry decided the session. A result that says DNS could
// not answer (`*:temperror`) never refuses permanently: a 5xx entry for it answers 451 4.7.5 instead.
// Also answers smtps' DNS questions (smtps.dns_query) from smar's resolver and cache. Touches the access
// map and the resolver.

import type { CheckContext, DnsAnswer, DnsQueryType, SmtpReply, Verdict } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { Resolver } from "./dns/resolver.ts";
import { refusal } from "./outcome.ts";
import type { Policy } from "./policy.ts";

const AUTH_DENIED: SmtpReply = { code: 550, status: "5.7.1", text: "Message failed authentication checks" };
const AUTH_TEMP: SmtpReply = { code: 451, status: "4.7.5", text: "Authentication check failed temporarily" };

export async function checkAuth(
  policy: Policy,
  ip: string,
  tags: string[],
  ctx: CheckContext,
): Promise<Verdict> {
  const accept: Verdict = { action: "accept" };
  const access = policy.d.access;
  if (!access || !(ctx.flags ?? []).includes("access") || ctx.state?.quick) return accept;
  for (const tag of tags) {
    const hit = await access.first([tag.toLowerCase()]);
    if (!hit) continue;
    const { action, reply } = hit.value;
    switch (action) {
      case "cont":
        continue;
      case "ok":
      case "relay":
        return accept;
      case "discard":
        return { action: "accept", discard: true };
      case "reject":
      case "error": {
        const r = reply ?? AUTH_DENIED;
        if (r.code >= 500 && /:temperror$/i.test(tag)) {
          log.warn(
            "smar",
            `check_auth ip=${ip}: access entry ${hit.key} answers 5xx, sent 451 (a DNS failure)`,
          );
          return refusal(AUTH_TEMP);
        }
        return refusal(r);
      }
      default: {
        const never: never = action;
        throw new TypeError(`Apply access entry: unknown action ${never}`);
      }
    }
  }
  return accept;
}

/** One DNS question of smtps, answered from the resolver as the protocol carries it. */
export async function answerDns(
  resolver: Pick<Resolver, "query">,
  name: string,
  rrtype: DnsQueryType,
): Promise<DnsAnswer> {
  const r = await resolver.query(name, rrtype);
  if (r.kind !== "answer") return r;
  const records: (string | { exchange: string; preference: number })[] = [];
  for (const x of r.records) {
    if (x.type === "A" || x.type === "AAAA") records.push(x.address);
    else if (x.type === "TXT") records.push(x.text);
    else if (x.type === "PTR") records.push(x.target);
    else if (x.type === "MX") records.push({ exchange: x.exchange, preference: x.preference });
  }
  return { kind: "answer", records };
}
