// Parsing SMTP/LMTP replies out of bytes received from a server (RFC 5321 section 4.2): `250-...` lines
// continue a reply, `250 ...` (or a bare `250`) ends it. Pure code, no I/O: wire.ts feeds it its buffer.
// A line not ending in CRLF, a reply over 64 KiB, a malformed line or a code that changes inside one reply is
// a protocol error; the caller treats it as a temporary failure, never as a crash.

/** One complete reply: its three-digit code and the text of each line (after `250-` / `250 `). */
export interface Reply {
  code: number;
  lines: string[];
}

/** The longest reply we accept, all lines and line ends counted. */
export const MAX_REPLY_BYTES = 64 * 1024;

/** A reply the server sent that does not follow the protocol. */
export class ReplyError extends Error {
  override name = "ReplyError";
}

const CR = 13;
const LF = 10;
const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Takes one complete reply from `buf[start, end)`. Returns the reply and the offset just after it, or
 * undefined when more bytes are needed. Throws ReplyError on a protocol violation.
 */
export function takeReply(
  buf: Uint8Array,
  start: number,
  end: number,
): { reply: Reply; next: number } | undefined {
  let pos = start;
  let code = 0;
  const lines: string[] = [];
  while (true) {
    const lf = buf.subarray(pos, end).indexOf(LF);
    if (lf < 0) {
      if (end - start > MAX_REPLY_BYTES) throw new ReplyError("read reply: longer than 64 KiB");
      return undefined;
    }
    const lineEnd = pos + lf; // index of LF
    if (lineEnd + 1 - start > MAX_REPLY_BYTES) throw new ReplyError("read reply: longer than 64 KiB");
    if (lineEnd === pos || buf[lineEnd - 1] !== CR) {
      throw new ReplyError("read reply: line not terminated by CRLF");
    }
    const line = buf.subarray(pos, lineEnd - 1);
    const parsed = parseLine(line);
    if (code !== 0 && parsed.code !== code) {
      throw new ReplyError(`read reply: code changed from ${code} to ${parsed.code} inside one reply`);
    }
    code = parsed.code;
    lines.push(parsed.text);
    pos = lineEnd + 1;
    if (!parsed.more) return { reply: { code, lines }, next: pos };
  }
}

function parseLine(line: Uint8Array): { code: number; more: boolean; text: string } {
  const d0 = line[0] - 48, d1 = line[1] - 48, d2 = line[2] - 48;
  const digits = line.length >= 3 && d0 >= 2 && d0 <= 5 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9;
  const sep = line[3];
  if (!digits || (line.length > 3 && sep !== 0x20 && sep !== 0x2d)) {
    throw new ReplyError(
      `read reply: malformed line ${escapeControls(decoder.decode(line.subarray(0, 40)))}`,
    );
  }
  return {
    code: d0 * 100 + d1 * 10 + d2,
    more: sep === 0x2d,
    text: line.length > 4 ? decoder.decode(line.subarray(4)) : "",
  };
}

const encoder = new TextEncoder();

/**
 * Replaces control characters and everything outside ASCII (each UTF-8 byte; an undecodable byte shows as
 * the replacement character's) with `\xNN`, so server text is safe to store, log and quote, and fits the
 * US-ASCII parts of a DSN.
 */
export function escapeControls(text: string): string {
  return text.replace(
    /[^\x20-\x7e]/gu,
    (c) => Array.from(encoder.encode(c), (b) => `\\x${b.toString(16).padStart(2, "0")}`).join(""),
  );
}

/** The longest reply text kept for a recipient's result (a DSN's Diagnostic-Code, the queue, logs). */
export const MAX_REPLY_TEXT = 1000;

/**
 * The reply as one line of text, e.g. `550 5.1.1 No such user here`, control characters escaped, cut
 * to MAX_REPLY_TEXT characters.
 */
export function replyText(reply: Reply): string {
  const text = reply.lines.map((l) => l.trim()).filter((l) => l !== "").join(" ");
  const line = escapeControls(text === "" ? String(reply.code) : `${reply.code} ${text}`);
  return line.length > MAX_REPLY_TEXT ? `${line.slice(0, MAX_REPLY_TEXT - 3)}...` : line;
}

/** The reply class: 2 (success), 3 (intermediate), 4 (temporary) or 5 (permanent). */
export function replyClass(reply: Reply): number {
  return Math.floor(reply.code / 100);
}
