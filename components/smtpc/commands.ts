// The client's command lines: reading the extensions an EHLO/LHLO reply offers, and building MAIL FROM and
// RCPT TO with the parameters those extensions allow (SIZE, BODY, SMTPUTF8, DSN's RET/ENVID/NOTIFY/ORCPT).
// Addresses come from the queue; one holding a control character or an angle bracket would let a
// command be smuggled into the session, so it is refused here instead of being sent.

import type { DeliveryTransaction, RecipientSpec } from "../protocol/messages.ts";
import type { Reply } from "./reply_reader.ts";

/** Extensions by upper-case keyword, each with its parameter text ("" when none). */
export type Extensions = Map<string, string>;

/** The extensions an EHLO/LHLO reply offers (every line after the first). */
export function parseExtensions(reply: Reply): Extensions {
  const exts: Extensions = new Map();
  for (const line of reply.lines.slice(1)) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line);
    if (m) exts.set(m[1].toUpperCase(), (m[2] ?? "").trim());
  }
  return exts;
}

/** The SIZE limit the server announced, or 0 for none (absent, no number, or 0 = no fixed limit). */
export function sizeLimit(exts: Extensions): number {
  const param = exts.get("SIZE");
  if (param === undefined || !/^\d+$/.test(param)) return 0;
  return Number(param);
}

/** Why `address` cannot be sent in a command, or undefined when it can. */
export function addressProblem(address: string): string | undefined {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f<>]/.test(address)) return "contains a control character or an angle bracket";
  if (address.length > 1000) return "longer than 1000 characters";
  return undefined;
}

/** Whether the envelope needs SMTPUTF8 (a non-ASCII address). */
export function needsUtf8(ta: DeliveryTransaction): boolean {
  // deno-lint-ignore no-control-regex
  const nonAscii = /[^\x00-\x7f]/;
  return nonAscii.test(ta.sender) || ta.recipients.some((r) => nonAscii.test(r.address));
}

/** `MAIL FROM:<sender>` with the parameters the server offers, CRLF included. */
export function mailCommand(ta: DeliveryTransaction, exts: Extensions): string {
  let cmd = `MAIL FROM:<${ta.sender}>`;
  if (exts.has("SIZE")) cmd += ` SIZE=${ta.size}`;
  if (ta.bodyType === "8BITMIME" && exts.has("8BITMIME")) cmd += " BODY=8BITMIME";
  if (ta.smtputf8 && exts.has("SMTPUTF8")) cmd += " SMTPUTF8";
  // RFC 8689 4.2.1: passed on (hello.ts made sure the server offers it).
  if (ta.requireTls && exts.has("REQUIRETLS")) cmd += " REQUIRETLS";
  if (exts.has("DSN")) {
    if (ta.ret) cmd += ` RET=${ta.ret}`;
    if (ta.envid !== undefined && ta.envid !== "") cmd += ` ENVID=${xtext(ta.envid)}`;
  }
  return cmd + "\r\n";
}

/** `RCPT TO:<address>` with DSN parameters when the server offers DSN, CRLF included. */
export function rcptCommand(rcpt: RecipientSpec, exts: Extensions): string {
  let cmd = `RCPT TO:<${rcpt.address}>`;
  if (exts.has("DSN")) {
    const notify = (rcpt.notify ?? []).filter((n) => /^(NEVER|SUCCESS|FAILURE|DELAY)$/i.test(n));
    if (notify.length > 0) cmd += ` NOTIFY=${notify.map((n) => n.toUpperCase()).join(",")}`;
    const orcpt = rcpt.orcpt && /^([A-Za-z0-9-]+);(.+)$/.exec(rcpt.orcpt);
    if (orcpt) cmd += ` ORCPT=${orcpt[1]};${xtext(orcpt[2])}`;
  }
  return cmd + "\r\n";
}

/** xtext (RFC 3461 section 4): printable ASCII except "+" and "=" as is, every other byte as +XX. */
export function xtext(text: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(text)) {
    out += b >= 33 && b <= 126 && b !== 43 && b !== 61
      ? String.fromCharCode(b)
      : `+${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
