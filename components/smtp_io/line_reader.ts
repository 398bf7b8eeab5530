// Reads one SMTP command line from a SocketInput: bytes up to LF, the CRLF stripped. A line longer than
// the limit (512 octets with its CRLF, RFC 5321 4.5.3.1.4) is discarded up to its LF and reported as too
// long, so a client can never make us buffer more than the limit. In strict mode a line ended by a bare
// LF, or holding a bare CR, is reported as such (the session refuses it: RFC 5321 2.3.8, the SMTP
// smuggling defence); otherwise a bare LF ends a line too. Text must be valid UTF-8. Bytes after the line
// stay in the input for the next read (pipelining, RFC 2920).

import type { SocketInput } from "./input.ts";

export const MAX_COMMAND_LINE = 512;

export type LineResult =
  | { kind: "line"; text: string }
  | { kind: "too_long" }
  | { kind: "bare_newline" }
  | { kind: "bad_utf8" }
  | { kind: "eof" };

const decoder = new TextDecoder("utf-8", { fatal: true });
const LF = 0x0a;
const CR = 0x0d;

/**
 * Reads the next command line; the whole line must arrive before `deadline` (ms since the epoch).
 * Rejects with InputTimeout / InputInterrupted from the input.
 */
export async function readLine(
  input: SocketInput,
  deadline: number,
  strict = true,
  limit = MAX_COMMAND_LINE,
): Promise<LineResult> {
  const line = new Uint8Array(limit);
  let length = 0;
  let tooLong = false;
  for (;;) {
    const chunk = await input.take(deadline);
    if (chunk === null) return { kind: "eof" };
    const lf = chunk.indexOf(LF);
    const part = lf < 0 ? chunk : chunk.subarray(0, lf + 1);
    if (!tooLong) {
      if (length + part.length > limit) tooLong = true;
      else {
        line.set(part, length);
        length += part.length;
      }
    }
    if (lf < 0) continue;
    input.unshift(chunk.subarray(lf + 1));
    if (tooLong) return { kind: "too_long" };
    let end = length - 1; // drop the LF
    if (end > 0 && line[end - 1] === CR) end--;
    else if (strict) return { kind: "bare_newline" };
    const text = line.subarray(0, end);
    if (strict && text.indexOf(CR) >= 0) return { kind: "bare_newline" };
    try {
      return { kind: "line", text: decoder.decode(text) };
    } catch {
      return { kind: "bad_utf8" };
    }
  }
}
