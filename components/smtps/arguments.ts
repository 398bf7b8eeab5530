// Parses the arguments of MAIL FROM and RCPT TO (RFC 5321 4.1.1.2-3, 4.1.2): the path in angle brackets,
// then ESMTP parameters `KEYWORD[=value]`: for MAIL SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531),
// RET and ENVID (RFC 3461), AUTH (RFC 4954), REQUIRETLS (RFC 8689: only inside TLS); for RCPT NOTIFY and
// ORCPT (RFC 3461). Each parameter is
// accepted only when the session offered its extension, at most once, with its value validated (xtext
// decoded, control characters refused). Returns the parsed values or the reply that explains what is
// wrong, and whether the refusal counts as an invalid address. Pure, no I/O.

import { isNonAscii, parsePath, type PathResult, splitPathAndParams } from "../mail/address.ts";
import type { SmtpReply } from "../mail/reply.ts";
import { decodeUtf8AddrEscapes, decodeXtext } from "../mail/xtext.ts";
import type { RecipientSpec } from "../protocol/messages.ts";
import { R } from "./replies.ts";
import type { MailParams } from "./transaction.ts";

/** The extensions the session offered (EHLO), which decide the parameters MAIL accepts. */
export interface Offered {
  esmtp: boolean;
  eightBit: boolean;
  smtputf8: boolean;
  auth: boolean;
  /** The session is under TLS: REQUIRETLS is offered (RFC 8689 section 3). */
  requireTls?: boolean;
}

export type Refusal = { ok: false; reply: SmtpReply; invalidAddress: boolean };
export type MailArgs = { ok: true; mail: MailParams } | Refusal;
export type RcptArgs = { ok: true; recipient: RecipientSpec } | Refusal;

// esmtp-value: printable ASCII but "=", and UTF-8 (RFC 6531 3.3).
const PARAM = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e\u0080-\u{10ffff}]+))?$/u;
const MAX_ENVID = 100; // RFC 3461 4.4
const MAX_ORCPT = 500; // RFC 3461 4.2
const NOTIFY = new Set(["SUCCESS", "FAILURE", "DELAY"]);

const refuse = (reply: SmtpReply, invalidAddress = false): Refusal => ({ ok: false, reply, invalidAddress });

/** Reads `KEYWORD[=value]` items; refuses a malformed or repeated one. */
function readParams(params: string[]): Map<string, { raw: string; value?: string }> | Refusal {
  const out = new Map<string, { raw: string; value?: string }>();
  for (const p of params) {
    const m = PARAM.exec(p);
    if (!m) return refuse(R.badParameter(p));
    const key = m[1].toUpperCase();
    if (out.has(key)) return refuse(R.badParameter(`${key} given twice`));
    out.set(key, { raw: p, value: m[2] });
  }
  return out;
}

/** The refusal for a path parsePath() did not accept. */
function badPath(r: Extract<PathResult, { ok: false }>, role: "sender" | "recipient"): Refusal {
  if (r.problem === "utf8") return refuse(R.needSmtputf8, true);
  if (r.problem === "too_long") return refuse(R.addressNotAllowed(role, r.reason), true);
  return refuse(role === "sender" ? R.badSender(r.reason) : R.badRecipient(r.reason), true);
}

/** Parses what follows `MAIL ` (e.g. `FROM:<a@b> SIZE=123 BODY=8BITMIME RET=HDRS ENVID=QQ314159`). */
export function parseMailArgs(arg: string, offered: Offered): MailArgs {
  const parts = splitPathAndParams(arg, "FROM:");
  if (!parts) return refuse(R.syntax("MAIL FROM:<address>"));
  const params = readParams(parts.params);
  if (!(params instanceof Map)) return params;
  const mail: MailParams = { sender: "" };
  for (const [key, { raw, value }] of params) {
    if (!offered.esmtp) return refuse(R.unsupportedParameter(key));
    const bad = () => refuse(R.badParameter(raw));
    switch (key) {
      case "SIZE":
        if (value === undefined || !/^\d{1,20}$/.test(value)) return bad();
        mail.size = Number(value);
        break;
      case "BODY": {
        const body = value?.toUpperCase();
        if (body !== "7BIT" && !(body === "8BITMIME" && offered.eightBit)) return bad();
        mail.body = body;
        break;
      }
      case "SMTPUTF8":
        if (!offered.smtputf8) return refuse(R.unsupportedParameter(key));
        if (value !== undefined) return bad();
        mail.smtputf8 = true;
        break;
      case "RET": {
        const ret = value?.toUpperCase();
        if (ret !== "FULL" && ret !== "HDRS") return bad();
        mail.ret = ret;
        break;
      }
      case "ENVID": {
        const envid = value === undefined ? undefined : decodeXtext(value);
        if (envid === undefined || envid === "" || envid.length > MAX_ENVID) return bad();
        mail.envid = envid;
        break;
      }
      case "AUTH": {
        if (!offered.auth) return refuse(R.unsupportedParameter(key));
        const auth = value === "<>" ? "" : value === undefined ? undefined : decodeXtext(value);
        if (auth === undefined) return bad();
        mail.auth = auth;
        break;
      }
      case "REQUIRETLS":
        if (!offered.requireTls) return refuse(R.requireTlsWithoutTls);
        if (value !== undefined) return bad();
        mail.requireTls = true;
        break;
      default:
        return refuse(R.unsupportedParameter(key));
    }
  }
  const parsed = parsePath(parts.path, { allowNull: true, utf8: mail.smtputf8 });
  if (!parsed.ok) return badPath(parsed, "sender");
  mail.sender = parsed.mailbox.address;
  return { ok: true, mail };
}

/** Parses what follows `RCPT ` (e.g. `TO:<b@c> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@c`). */
export function parseRcptArgs(arg: string, esmtp: boolean, smtputf8: boolean): RcptArgs {
  const parts = splitPathAndParams(arg, "TO:");
  if (!parts) return refuse(R.syntax("RCPT TO:<address>"));
  const params = readParams(parts.params);
  if (!(params instanceof Map)) return params;
  const parsed = parsePath(parts.path, { allowPostmaster: true, utf8: smtputf8 });
  if (!parsed.ok) return badPath(parsed, "recipient");
  const recipient: RecipientSpec = { address: parsed.mailbox.address };
  for (const [key, { raw, value }] of params) {
    if (!esmtp) return refuse(R.unsupportedParameter(key));
    if (key === "NOTIFY") {
      const notify = value?.toUpperCase().split(",");
      const ok = notify !== undefined &&
        (notify.length === 1 && notify[0] === "NEVER" ||
          notify.every((n, i) => NOTIFY.has(n) && notify.indexOf(n) === i));
      if (!ok) return refuse(R.badParameter(raw));
      recipient.notify = notify;
    } else if (key === "ORCPT") {
      const orcpt = value === undefined ? undefined : parseOrcpt(value, smtputf8);
      if (orcpt === undefined) return refuse(R.badParameter(raw));
      recipient.orcpt = orcpt;
    } else return refuse(R.unsupportedParameter(key));
  }
  return { ok: true, recipient };
}

/**
 * Reads ORCPT's `addr-type;xtext` (RFC 3461 4.2) into `addr-type;decoded`: rfc822 with xtext, or the utf-8
 * type (RFC 6533) whose `\x{HEX}` escapes and (under SMTPUTF8) raw UTF-8 are decoded too.
 */
export function parseOrcpt(value: string, smtputf8: boolean): string | undefined {
  if (value.length > MAX_ORCPT) return undefined;
  const semi = value.indexOf(";");
  if (semi <= 0) return undefined;
  const type = value.slice(0, semi).toLowerCase();
  if (!/^[a-z0-9][a-z0-9-]*$/.test(type)) return undefined;
  const text = value.slice(semi + 1);
  let address: string | undefined;
  if (type === "utf-8") {
    if (isNonAscii(text) && !smtputf8) return undefined;
    // utf-8-addr-xtext is xtext over the escaped form; raw UTF-8 (unitext) passes through as it is.
    const xtextDecoded = isNonAscii(text) ? text : decodeXtext(text);
    address = xtextDecoded === undefined ? undefined : decodeUtf8AddrEscapes(xtextDecoded);
  } else {
    if (isNonAscii(text)) return undefined;
    address = decodeXtext(text);
  }
  if (address === undefined || address === "") return undefined;
  return `${type};${address}`;
}
