// Sending message content after DATA's 354: the CDB file is read in 64 KiB chunks (memory stays bounded
// whatever the message size) and transformed on the way out: every bare CR or bare LF becomes CRLF (so no
// SMTP smuggling sequence such as <LF>.<LF> ever leaves us), a line starting with "." gets another "."
// (RFC 5321 section 4.5.2), the content is made to end with CRLF, and ".\r\n" ends it.
// Reads only the CDB file it is given.

const CR = 13;
const LF = 10;
const DOT = 46;

export const CHUNK_SIZE = 64 * 1024;

/** The CRLF-normalising, dot-stuffing transform; state carries across chunks. */
export class DotStuffer {
  #atLineStart = true;
  #pendingCR = false;

  /** The output space `transform` of `n` input bytes followed by `finish` may need. */
  static outputSize(n: number): number {
    // Each byte yields at most 2 (a bare LF, a leading dot), a CR held over from the last chunk 2 more,
    // and finish() at most 5.
    return 2 * n + 8;
  }

  /** Transforms `input` into `out` (at least outputSize(input.length) long); returns the bytes written. */
  transform(input: Uint8Array, out: Uint8Array): number {
    let o = 0;
    let atLineStart = this.#atLineStart;
    let pendingCR = this.#pendingCR;
    for (let i = 0; i < input.length; i++) {
      const b = input[i];
      if (pendingCR) {
        pendingCR = false;
        out[o++] = CR;
        out[o++] = LF;
        atLineStart = true;
        if (b === LF) continue;
      }
      if (b === CR) {
        pendingCR = true;
      } else if (b === LF) {
        out[o++] = CR;
        out[o++] = LF;
        atLineStart = true;
      } else {
        if (atLineStart && b === DOT) out[o++] = DOT;
        out[o++] = b;
        atLineStart = false;
      }
    }
    this.#atLineStart = atLineStart;
    this.#pendingCR = pendingCR;
    return o;
  }

  /** Writes the end of the content into `out` (at least 5 bytes): a missing CRLF, then ".\r\n". */
  finish(out: Uint8Array): number {
    let o = 0;
    if (this.#pendingCR || !this.#atLineStart) {
      out[o++] = CR;
      out[o++] = LF;
    }
    this.#pendingCR = false;
    this.#atLineStart = true;
    out[o++] = DOT;
    out[o++] = CR;
    out[o++] = LF;
    return o;
  }
}

/**
 * Streams the content of `file` (from its current position) through the transform to `write`, final
 * ".\r\n" included. Errors of `file.read` or `write` propagate; the caller then drops the connection so the
 * server never sees an end of data.
 */
export async function sendContent(
  file: { read(p: Uint8Array): Promise<number | null> },
  write: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const input = new Uint8Array(CHUNK_SIZE);
  const out = new Uint8Array(DotStuffer.outputSize(CHUNK_SIZE));
  const stuffer = new DotStuffer();
  // The last chunk waits for the end of the file so it leaves together with ".\r\n" in one write.
  let pending = 0;
  while (true) {
    const n = await file.read(input);
    if (n === null) break;
    if (pending > 0) await write(out.subarray(0, pending));
    pending = stuffer.transform(input.subarray(0, n), out);
  }
  pending += stuffer.finish(out.subarray(pending));
  await write(out.subarray(0, pending));
}
