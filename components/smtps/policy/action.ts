// A Postfix policy service's `action=` answer (SMTPD_POLICY_README), read like an access map right-hand
// side (Postfix access(5)): OK, DUNNO, REJECT, DEFER, DEFER_IF_PERMIT, DEFER_IF_REJECT, 4xx/5xx text,
// PREPEND header, HOLD, DISCARD, REDIRECT address, and the logging-only WARN and INFO. Pure.

import { isEnhancedStatus, reply, type SmtpReply } from "../../mail/reply.ts";

export type PolicyAction =
  /** OK: accepted; no later policy service is asked at this stage. */
  | { kind: "ok" }
  /** DUNNO (and DEFER_IF_REJECT: nothing after us rejects): ask the next one. */
  | { kind: "dunno" }
  | { kind: "refuse"; reply: SmtpReply }
  | { kind: "prepend"; header: string }
  | { kind: "hold"; reason: string }
  | { kind: "discard"; reason: string }
  | { kind: "redirect"; address: string }
  /** WARN, INFO: logged, then like DUNNO. FILTER too (smx has no content filter transports). */
  | { kind: "log"; text: string }
  | { kind: "unknown"; text: string };

/** Parses the value of `action=`; `stage` words the default reply texts. */
export function parsePolicyAction(value: string): PolicyAction {
  const text = value.trim();
  const space = text.search(/\s/);
  const word = (space < 0 ? text : text.slice(0, space)).toUpperCase();
  const rest = space < 0 ? "" : text.slice(space + 1).trim();
  switch (word) {
    case "OK":
      return { kind: "ok" };
    case "DUNNO":
    case "DEFER_IF_REJECT": // only a later rejection would turn it into a deferral; none comes after us
      return { kind: "dunno" };
    case "REJECT":
      return { kind: "refuse", reply: withStatus(554, rest, "Access denied") };
    case "DEFER":
    case "DEFER_IF_PERMIT": // everything before us permitted: it defers
      return { kind: "refuse", reply: withStatus(450, rest, "Try again later") };
    case "PREPEND":
      return rest ? { kind: "prepend", header: rest } : { kind: "unknown", text };
    case "HOLD":
      return { kind: "hold", reason: rest || "held by a policy service" };
    case "DISCARD":
      return { kind: "discard", reason: rest || "discarded by a policy service" };
    case "REDIRECT":
      return rest ? { kind: "redirect", address: rest } : { kind: "unknown", text };
    case "WARN":
    case "INFO":
    case "FILTER":
      return { kind: "log", text };
  }
  const r = parseReplyText(text);
  return r ? { kind: "refuse", reply: r } : { kind: "unknown", text };
}

/** A reply with `code` whose text may begin with an enhanced status code of the same class (as Postfix reads it). */
function withStatus(code: number, text: string, otherwise: string): SmtpReply {
  const s = /^([45]\.\d{1,3}\.\d{1,3})(?:\s+(.*))?$/s.exec(text);
  if (s && isEnhancedStatus(s[1], code)) return reply(code, s[1], s[2]?.trim() || otherwise);
  return reply(code, `${String(code)[0]}.7.1`, text || otherwise);
}

/** `4NN text` or `5NN x.y.z text`: the reply, with 4.7.1 / 5.7.1 when no status is given. */
export function parseReplyText(text: string): SmtpReply | undefined {
  const m = /^([45]\d\d)(?:\s+(.*))?$/s.exec(text);
  if (!m) return undefined;
  const code = Number(m[1]);
  let rest = (m[2] ?? "").trim();
  let status = `${m[1][0]}.7.1`;
  const s = /^([45]\.\d{1,3}\.\d{1,3})(?:\s+(.*))?$/.exec(rest);
  if (s && isEnhancedStatus(s[1], code)) {
    status = s[1];
    rest = (s[2] ?? "").trim();
  }
  return reply(code, status, rest || (code >= 500 ? "Access denied" : "Try again later"));
}
