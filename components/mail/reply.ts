// SMTP replies (RFC 5321 4.2, enhanced status codes RFC 3463): building them, writing them on the wire
// (multi-line with `code-` continuation lines) and reading them back. Pure functions, no I/O; the
// SmtpReply shape itself is the protocol's (components/protocol/messages.ts), so verdicts from smar
// travel as-is into smtps replies.

import type { SmtpReply } from "../protocol/messages.ts";

export type { SmtpReply };

/** Makes a reply; `text` may hold several lines separated by "\n" (each gets the code and status). */
export function reply(code: number, status: string, text: string): SmtpReply {
  if (!Number.isInteger(code) || code < 200 || code > 599) {
    throw new RangeError(`Invalid reply code: ${code}`);
  }
  return { code, status, text };
}

/** True when `status` is an RFC 3463 enhanced status code whose class matches `code`. */
export function isEnhancedStatus(status: string, code?: number): boolean {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})$/.exec(status);
  return m !== null && (code === undefined || String(code)[0] === m[1]);
}

/**
 * The reply as wire text: every line `code[-| ]status text` and CRLF-terminated; control bytes removed.
 * Trailing blanks are dropped, except after a 334 (an AUTH challenge is `334 SP [base64]`, RFC 4954 4).
 */
export function formatReply(r: SmtpReply): string {
  // deno-lint-ignore no-control-regex
  const lines = r.text.split("\n").map((l) => l.replace(/[\x00-\x1f\x7f]/g, ""));
  const status = r.status ? `${r.status} ` : "";
  if (r.code === 334) return `334 ${lines.join("")}\r\n`;
  return lines.map((l, i) => `${r.code}${i < lines.length - 1 ? "-" : " "}${status}${l}`.trimEnd() + "\r\n")
    .join("");
}

/** The reply on one line for logs and results, e.g. `550 5.7.1 Relay access denied`. */
export function replyText(r: SmtpReply): string {
  return `${r.code}${r.status ? ` ${r.status}` : ""} ${r.text.replace(/\n/g, " / ")}`;
}

/** Reads a complete (possibly multi-line) reply from wire lines without CRLF; undefined when malformed. */
export function parseReply(lines: string[]): SmtpReply | undefined {
  if (lines.length === 0) return undefined;
  let code = 0;
  let status = "";
  const texts: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^([2-5]\d\d)([ -])(.*)$/.exec(lines[i]) ?? /^([2-5]\d\d)()$/.exec(lines[i]);
    if (!m) return undefined;
    const last = i === lines.length - 1;
    if ((m[2] === " " || m[2] === "") !== last) return undefined;
    if (i === 0) code = Number(m[1]);
    else if (Number(m[1]) !== code) return undefined;
    let text = m[3] ?? "";
    const s = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)(.*)$/.exec(text);
    if (s && isEnhancedStatus(s[1], code)) {
      if (i === 0) status = s[1];
      text = s[2];
    }
    texts.push(text);
  }
  return { code, status, text: texts.join("\n") };
}

/** The class of a reply: 2 positive, 3 intermediate, 4 transient failure, 5 permanent failure. */
export function replyClass(r: SmtpReply): 2 | 3 | 4 | 5 {
  return Math.floor(r.code / 100) as 2 | 3 | 4 | 5;
}
