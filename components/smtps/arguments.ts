// Parses the arguments of MAIL FROM and RCPT TO (RFC 5321 4.1.1.2-3, 4.1.2): the path in angle brackets,
// then ESMTP parameters `KEYWORD[=value]` (SIZE and BODY for MAIL per RFC 1870 / RFC 6152; none yet for
// RCPT). Returns the canonical address or the reply that explains what is wrong. Pure, no I/O.

import { parsePath, pathEnd } from "../mail/address.ts";
import type { SmtpReply } from "../mail/reply.ts";
import { R } from "./replies.ts";
import type { BodyType } from "./transaction.ts";

export type MailArgs = { ok: true; sender: string; size?: number; body?: BodyType } | {
  ok: false;
  reply: SmtpReply;
};
export type RcptArgs = { ok: true; recipient: string } | { ok: false; reply: SmtpReply };

const PARAM = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?$/;

/** Splits `FROM:<path> params` after the keyword; undefined when the keyword is missing. */
function splitPathAndParams(arg: string, keyword: string): { path: string; params: string[] } | undefined {
  if (arg.slice(0, keyword.length).toUpperCase() !== keyword) return undefined;
  const rest = arg.slice(keyword.length).trimStart(); // tolerate "MAIL FROM: <a@b>"
  if (rest === "") return undefined;
  const end = pathEnd(rest);
  const path = end < 0 ? rest.split(" ")[0] : rest.slice(0, end);
  const tail = rest.slice(path.length);
  if (tail !== "" && !tail.startsWith(" ")) return { path: rest, params: [] }; // "<a@b>junk": a bad path
  return { path, params: tail.split(" ").filter((p) => p !== "") };
}

/** Parses what follows `MAIL ` (e.g. `FROM:<a@b> SIZE=123 BODY=8BITMIME`). */
export function parseMailArgs(arg: string, esmtp: boolean, eightBit: boolean): MailArgs {
  const parts = splitPathAndParams(arg, "FROM:");
  if (!parts) return { ok: false, reply: R.syntax("MAIL FROM:<address>") };
  const parsed = parsePath(parts.path, { allowNull: true });
  if (!parsed.ok) return { ok: false, reply: R.badSender(parsed.reason) };
  const out: { ok: true; sender: string; size?: number; body?: BodyType } = {
    ok: true,
    sender: parsed.mailbox.address,
  };
  for (const p of parts.params) {
    const m = PARAM.exec(p);
    if (!m) return { ok: false, reply: R.badParameter(p) };
    const key = m[1].toUpperCase();
    const value = m[2];
    if (!esmtp) return { ok: false, reply: R.unsupportedParameter(key) };
    if (key === "SIZE") {
      if (out.size !== undefined || value === undefined || !/^\d{1,20}$/.test(value)) {
        return { ok: false, reply: R.badParameter(p) };
      }
      out.size = Number(value);
    } else if (key === "BODY") {
      const body = value?.toUpperCase();
      if (out.body !== undefined || (body !== "7BIT" && !(body === "8BITMIME" && eightBit))) {
        return { ok: false, reply: R.badParameter(p) };
      }
      out.body = body;
    } else return { ok: false, reply: R.unsupportedParameter(key) };
  }
  return out;
}

/** Parses what follows `RCPT ` (e.g. `TO:<b@c>`). */
export function parseRcptArgs(arg: string): RcptArgs {
  const parts = splitPathAndParams(arg, "TO:");
  if (!parts) return { ok: false, reply: R.syntax("RCPT TO:<address>") };
  const parsed = parsePath(parts.path, { allowPostmaster: true });
  if (!parsed.ok) return { ok: false, reply: R.badRecipient(parsed.reason) };
  for (const p of parts.params) {
    const m = PARAM.exec(p);
    if (!m) return { ok: false, reply: R.badParameter(p) };
    return { ok: false, reply: R.unsupportedParameter(m[1].toUpperCase()) };
  }
  return { ok: true, recipient: parsed.mailbox.address };
}
