// Client stubs for talking to smar: policy verdicts for smtps (each check may carry the session's
// CheckContext: flags, HELO, AUTH user, certificate, and smar's state from the previous stage), routes
// and alias expansions of generated mail for qmgr, and qmgrctl explain's walk through the policy. A request that fails (smar down, timeout) is a 451
// verdict, a temp route or no expansion, never a throw.

import type { Endpoint } from "../protocol/endpoint.ts";
import type {
  CheckContext,
  DnsAnswer,
  DnsQueryType,
  ExplainStep,
  Message,
  QmgrExplain,
  RouteResult,
  Verdict,
} from "../protocol/messages.ts";

function toVerdict(m: Message, what: string): Verdict {
  if (m.type === "smar.verdict") return m.verdict;
  const reason = m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type} to ${what}`;
  return {
    action: "tempfail",
    reply: { code: 451, status: "4.3.0", text: `Temporary lookup failure (${reason})` },
  };
}

/** Connect-stage checks for a client address (access map, client name, DNS blacklists). */
export async function checkConnect(
  ep: Endpoint,
  ip: string,
  timeoutMs?: number,
  context?: CheckContext,
): Promise<Verdict> {
  const body: Message = { type: "smtps.check_connect", ip, ...(context ? { context } : {}) };
  return toVerdict(await ep.request("smar", body, timeoutMs), "check_connect");
}

/** MAIL-stage checks for a sender ("" for <>). */
export async function checkMail(
  ep: Endpoint,
  ip: string,
  sender: string,
  timeoutMs?: number,
  context?: CheckContext,
): Promise<Verdict> {
  const body: Message = { type: "smtps.check_mail", ip, sender, ...(context ? { context } : {}) };
  return toVerdict(await ep.request("smar", body, timeoutMs), "check_mail");
}

/** RCPT-stage checks: relaying, access map, aliases and local users, greylisting. */
export async function checkRcpt(
  ep: Endpoint,
  q: { ip: string; sender: string; recipient: string; authorized: boolean; context?: CheckContext },
  timeoutMs?: number,
): Promise<Verdict> {
  return toVerdict(await ep.request("smar", { type: "smtps.check_rcpt", ...q }, timeoutMs), "check_rcpt");
}

/** The access map's word on a message's authentication results, as tags (`spf:fail`, `dmarc:reject`). */
export async function checkAuth(
  ep: Endpoint,
  q: { ip: string; stage: "mail" | "data"; tags: string[]; context?: CheckContext },
  timeoutMs?: number,
): Promise<Verdict> {
  return toVerdict(await ep.request("smar", { type: "smtps.check_auth", ...q }, timeoutMs), "check_auth");
}

/** Records of `rrtype` for `name` from smar's resolver; `temp` when smar or DNS cannot answer now. */
export async function lookupDns(
  ep: Endpoint,
  name: string,
  rrtype: DnsQueryType,
  timeoutMs?: number,
): Promise<DnsAnswer> {
  const m = await ep.request("smar", { type: "smtps.dns_query", name, rrtype }, timeoutMs);
  if (m.type === "smar.dns_answer") return m.answer;
  const reason = m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type} to dns_query`;
  return { kind: "temp", reason };
}

/** TXT records for qmgr (TLS-RPT's `_smtp._tls` record); `temp` when smar or DNS cannot answer now. */
export async function lookupTxtForQmgr(ep: Endpoint, name: string, timeoutMs?: number): Promise<DnsAnswer> {
  const m = await ep.request("smar", { type: "qmgr.dns_query", name, rrtype: "TXT" }, timeoutMs);
  if (m.type === "smar.dns_answer") return m.answer;
  const reason = m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type} to qmgr.dns_query`;
  return { kind: "temp", reason };
}

/** Asks smar to POST `body` (base64) to `url` (TLS-RPT https: reports). */
export async function httpsPostBySmar(
  ep: Endpoint,
  url: string,
  contentType: string,
  body: string,
  timeoutMs?: number,
): Promise<{ ok: boolean; reason?: string }> {
  const m = await ep.request("smar", { type: "qmgr.https_post", url, contentType, body }, timeoutMs);
  if (m.type === "smar.https_posted") return { ok: m.ok, reason: m.reason };
  return { ok: false, reason: m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type}` };
}

/** Where mail for `domain` goes: mailertable, else MX, else A. */
export async function resolveRoute(ep: Endpoint, domain: string, timeoutMs?: number): Promise<RouteResult> {
  const m = await ep.request("smar", { type: "qmgr.route", domain }, timeoutMs);
  if (m.type === "smar.route") return m.result;
  return {
    status: "temp",
    text: m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type} to qmgr.route`,
  };
}

/**
 * The final addresses of a message qmgr makes itself (a DSN) after aliases, with list owners; undefined
 * when smar cannot answer (the caller keeps the address as it is).
 */
export async function expandAddress(
  ep: Endpoint,
  address: string,
  timeoutMs?: number,
): Promise<{ recipients: string[]; errorsTo?: Record<string, string> } | undefined> {
  const m = await ep.request("smar", { type: "qmgr.expand", address }, timeoutMs);
  if (m.type === "smar.expansion" && m.recipients.length > 0) {
    return { recipients: m.recipients, ...(m.errorsTo ? { errorsTo: m.errorsTo } : {}) };
  }
  return undefined;
}

/**
 * qmgrctl explain: every policy decision smar makes for an envelope, step by step (smar writes nothing).
 * Throws with the reason when smar cannot answer.
 */
export async function explainEnvelope(
  ep: Endpoint,
  q: Omit<QmgrExplain, "type">,
  timeoutMs = 30_000,
): Promise<ExplainStep[]> {
  const m = await ep.request("smar", { type: "qmgr.explain", ...q }, timeoutMs);
  if (m.type === "smar.explanation") return m.steps;
  throw new Error(m.type === "rpc.failure" ? m.reason : `unexpected answer ${m.type} to qmgr.explain`);
}
