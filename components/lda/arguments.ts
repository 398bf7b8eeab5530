// The arguments of LMTP's MAIL FROM and RCPT TO: the path in angle brackets (parsed by the shared address
// parser), then the ESMTP parameters this server offers in its LHLO reply: SIZE (RFC 1870) and BODY
// (RFC 6152) for MAIL, none for RCPT. Anything else is refused with 555. Pure, no I/O.

import { parsePath, splitPathAndParams } from "../mail/address.ts";
import { reply, type SmtpReply } from "../mail/reply.ts";

export type MailArgs = { ok: true; sender: string; size?: number } | { ok: false; reply: SmtpReply };
export type RcptArgs = { ok: true; recipient: string } | { ok: false; reply: SmtpReply };

const PARAM = /^([A-Za-z0-9][A-Za-z0-9-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?$/;

const syntax = (usage: string) => reply(501, "5.5.4", `Syntax: ${usage}`);
const badParameter = (p: string) => reply(501, "5.5.4", `Bad parameter: ${p}`);
const unsupported = (key: string) => reply(555, "5.5.4", `Unsupported parameter: ${key}`);

/** Parses what follows `MAIL ` (e.g. `FROM:<a@b> SIZE=123 BODY=8BITMIME`). */
export function parseMailArgs(arg: string): MailArgs {
  const parts = splitPathAndParams(arg, "FROM:");
  if (!parts) return { ok: false, reply: syntax("MAIL FROM:<address>") };
  const parsed = parsePath(parts.path, { allowNull: true });
  if (!parsed.ok) {
    return { ok: false, reply: reply(501, "5.1.7", `Bad sender address syntax: ${parsed.reason}`) };
  }
  let size: number | undefined;
  const seen = new Set<string>();
  for (const p of parts.params) {
    const m = PARAM.exec(p);
    if (!m) return { ok: false, reply: badParameter(p) };
    const key = m[1].toUpperCase();
    const value = m[2]?.toUpperCase();
    if (seen.has(key)) return { ok: false, reply: badParameter(`${key} given twice`) };
    seen.add(key);
    if (key === "SIZE") {
      if (value === undefined || !/^\d{1,20}$/.test(value)) return { ok: false, reply: badParameter(p) };
      size = Number(value);
    } else if (key === "BODY") {
      if (value !== "7BIT" && value !== "8BITMIME") return { ok: false, reply: badParameter(p) };
    } else return { ok: false, reply: unsupported(key) };
  }
  return { ok: true, sender: parsed.mailbox.address, size };
}

/** Parses what follows `RCPT ` (e.g. `TO:<b@c>`); a bare `<postmaster>` is accepted. */
export function parseRcptArgs(arg: string): RcptArgs {
  const parts = splitPathAndParams(arg, "TO:");
  if (!parts) return { ok: false, reply: syntax("RCPT TO:<address>") };
  const parsed = parsePath(parts.path, { allowPostmaster: true });
  if (!parsed.ok) {
    return { ok: false, reply: reply(501, "5.1.3", `Bad recipient address syntax: ${parsed.reason}`) };
  }
  for (const p of parts.params) {
    const m = PARAM.exec(p);
    return { ok: false, reply: m ? unsupported(m[1].toUpperCase()) : badParameter(p) };
  }
  return { ok: true, recipient: parsed.mailbox.address };
}
