// Inbound TLS requirements for clients, sendmail 8's `TLS_Clt:` (cf README "Allowing Connections"),
// checked at MAIL: the access map's `tls_clt:` entry for the client's name (its confirmed PTR name, then
// parent domains `.example.com`), else its address (`10.1.2.3`, `10.1.2`, ...), else the bare `tls_clt:`
// (a default). Values as for tls_srv (mail/tls_policy.ts parseTlsSrv): `encrypt` (or `ENCR:bits`) needs a
// session under TLS, `verify` (or `VERIFY[:bits]`) a client certificate that verified, `verify NAME` or
// `+CN:NAME` one whose subject CN is NAME; `none`/`may` require nothing. A client without TLS gets
// `530 5.7.0 Must issue a STARTTLS command first` (RFC 3207); one whose certificate does not do gets
// `403 4.7.0` (sendmail 8's default), or 5xx with `PERM+`. Touches only the access map.

import type { CheckContext, PolicyState, SmtpReply } from "../protocol/messages.ts";
import { parseTlsSrv } from "../mail/tls_policy.ts";
import type { AccessMap } from "./access.ts";
import { domainKeys, ipKeys, tagged } from "./keys.ts";
import { log } from "../util/log.ts";

/** The refusal a `tls_clt:` requirement gives this client, or undefined when it is met (or there is none). */
export async function checkTlsClient(
  access: AccessMap,
  ip: string,
  ctx: CheckContext,
  state: PolicyState,
): Promise<SmtpReply | undefined> {
  const keys = [
    ...(state.clientName ? tagged("tls_clt", domainKeys(state.clientName)) : []),
    ...tagged("tls_clt", ipKeys(ip)),
    "tls_clt:",
  ];
  const hit = await access.raw(keys);
  if (!hit) return undefined;
  const rule = parseTlsSrv(hit.rhs);
  if (!rule) {
    log.warn("smar", `access map: ${hit.key}: ignored unknown value ${hit.rhs}`);
    return undefined;
  }
  const why = `${hit.key} ${hit.rhs.trim()}`;
  if (rule.level === "none" || rule.level === "may") return undefined;
  if (!ctx.tls) {
    log.info("smar", `client [${ip}]: refused MAIL without STARTTLS (${why})`);
    return { code: 530, status: "5.7.0", text: "Must issue a STARTTLS command first" };
  }
  if (rule.level === "encrypt") return undefined;
  // verify (and dane/mta-sts, which mean nothing for a client: read as verify).
  const cert = ctx.cert;
  let problem: string | undefined;
  if (!cert) problem = "no client certificate";
  else if (!cert.verified) problem = "client certificate not verified";
  else if (rule.match.length > 0) {
    const cn = /\/CN=([^/]*)/.exec(cert.subject)?.[1]?.toLowerCase();
    if (!cn || !rule.match.includes(cn)) problem = `client certificate CN ${cn ?? "none"} not allowed`;
  }
  if (!problem) return undefined;
  log.info("smar", `client [${ip}]: refused MAIL: ${problem} (${why})`);
  return rule.permanent
    ? { code: 550, status: "5.7.0", text: `TLS client requirement not met: ${problem}` }
    : { code: 403, status: "4.7.0", text: `TLS client requirement not met: ${problem}` };
}
