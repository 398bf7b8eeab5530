// Policy answers for smtps from the access map (sendmail X tags `cltaddr:` and `to:`) and the mailertable:
// connect-stage client checks and the relaying decision for each recipient. Receives check_connect /
// check_mail / check_rcpt questions, gives Verdicts. Touches nothing itself (the maps are loaded).

import ipaddr from "ipaddr.js";
import type { SmtpReply, Verdict } from "../protocol/messages.ts";
import type { MapLookup } from "./maps.ts";
import { domainLookupKeys, type Mailertable } from "./mailertable.ts";
import { parseDomain } from "./domain.ts";
import { log } from "../util/log.ts";

export type AccessValue =
  | { kind: "relay" }
  | { kind: "ok" }
  | { kind: "reject" }
  | { kind: "error"; reply: SmtpReply };

const ACCEPT: Verdict = { action: "accept" };
const ACCESS_DENIED: SmtpReply = { code: 554, status: "5.7.1", text: "Access denied" };
const RELAYING_DENIED: SmtpReply = { code: 550, status: "5.7.1", text: "Relaying denied" };
const BAD_RECIPIENT: SmtpReply = { code: 501, status: "5.1.3", text: "Bad recipient address syntax" };

/** Parses an access map value; undefined for one this version does not know. */
export function parseAccessValue(rhs: string): AccessValue | undefined {
  const v = rhs.trim();
  const word = v.toLowerCase();
  if (word === "relay" || word === "ok" || word === "reject") return { kind: word };
  const m = /^error:\s*([45]\d\d)(?:\s+([45]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?$/i.exec(v);
  if (!m || (m[2] !== undefined && m[2][0] !== m[1][0])) return undefined;
  const code = Number(m[1]);
  const text = m[3]?.trim() || (code >= 500 ? "Access denied" : "Try again later");
  return { kind: "error", reply: { code, status: m[2] ?? `${m[1][0]}.0.0`, text } };
}

/** The `cltaddr:` keys tried for a client address, most specific first. */
export function clientKeys(ip: string): string[] {
  let addr = ip.trim().toLowerCase();
  if (ipaddr.IPv6.isValid(addr)) {
    const v6 = ipaddr.IPv6.parse(addr);
    if (!v6.isIPv4MappedAddress()) {
      return [...new Set([addr, v6.toString()])].map((a) => `cltaddr:${a}`);
    }
    addr = v6.toIPv4Address().toString();
  }
  if (!ipaddr.IPv4.isValidFourPartDecimal(addr)) return [`cltaddr:${addr}`];
  const octets = addr.split(".");
  return [4, 3, 2, 1].map((n) => `cltaddr:${octets.slice(0, n).join(".")}`);
}

function verdictOf(reply: SmtpReply): Verdict {
  return { action: reply.code >= 500 ? "reject" : "tempfail", reply };
}

export class Policy {
  constructor(
    readonly access: MapLookup | undefined,
    readonly mailertable: Mailertable | undefined,
  ) {}

  /** The first entry found among `keys`, parsed; unknown values are logged and count as none. */
  #first(keys: string[]): AccessValue | undefined {
    if (!this.access) return undefined;
    for (const key of keys) {
      const rhs = this.access.lookup(key);
      if (rhs === undefined) continue;
      const value = parseAccessValue(rhs);
      if (!value) log.warn("smar", `access map ${this.access.file}: ${key}: ignored unknown value ${rhs}`);
      return value;
    }
    return undefined;
  }

  checkConnect(ip: string): Verdict {
    const v = this.#first(clientKeys(ip));
    if (v?.kind === "reject") return verdictOf(ACCESS_DENIED);
    if (v?.kind === "error") return verdictOf(v.reply);
    return ACCEPT;
  }

  checkMail(_ip: string, _sender: string): Verdict {
    return ACCEPT;
  }

  /** Whether this recipient may be accepted from this client (relaying rules). */
  checkRcpt(q: { ip: string; recipient: string; authorized: boolean }): Verdict {
    const rcpt = splitRecipient(q.recipient);
    if (!rcpt) return verdictOf(BAD_RECIPIENT);
    if (q.authorized || this.#first(clientKeys(q.ip))?.kind === "relay") return ACCEPT;
    if (rcpt === "postmaster") return ACCEPT;
    // u%ext@us, ext!u@us, "u@ext"@us: source routes that would make us relay for someone else.
    if (/[%!@]/.test(rcpt.local)) return verdictOf(RELAYING_DENIED);
    if (this.#first(domainLookupKeys(rcpt.domain).map((k) => `to:${k}`))?.kind === "relay") return ACCEPT;
    // The catch-all is left out: it would make every domain local.
    if (this.mailertable?.find(rcpt.domain, { catchAll: false })?.route.protocol === "lmtp") return ACCEPT;
    return verdictOf(RELAYING_DENIED);
  }
}

/**
 * Splits a bare recipient `local@domain` at its last `@`; "postmaster" for a bare postmaster (RFC 5321
 * 4.5.1 requires accepting it); undefined when there is no domain or it cannot be parsed.
 */
export function splitRecipient(
  recipient: string,
): { local: string; domain: string } | "postmaster" | undefined {
  let r = recipient.trim();
  if (r.startsWith("<") && r.endsWith(">")) r = r.slice(1, -1);
  const at = r.lastIndexOf("@");
  if (at < 0) return r.toLowerCase() === "postmaster" ? "postmaster" : undefined;
  const local = r.slice(0, at);
  const domain = parseDomain(r.slice(at + 1));
  if (local === "" || !domain) return undefined;
  return { local, domain: domain.name };
}
