// Sending message content after DATA's 354: the content is read in chunks of at most 64 KiB (memory stays
// bounded whatever the message size) and transformed on the way out, line by line with indexOf(): every
// bare CR or bare LF becomes CRLF (so no SMTP smuggling sequence such as <LF>.<LF> ever leaves us), a NUL
// byte is removed first (RFC 5321 allows none; smtps refuses content holding one, so only a file queued by
// an older version can), a line starting with "." gets another "." (RFC 5321 section 4.5.2), the content
// is made to end with CRLF, and ".\r\n" ends it.
// Reads only the CDB file it is given.

const CR = 13;
const LF = 10;
const DOT = 46;

export const CHUNK_SIZE = 64 * 1024;

/** The CRLF-normalising, dot-stuffing transform; state carries across chunks. */
export class DotStuffer {
  #atLineStart = true;
  #pendingCR = false;
  /** NUL bytes removed so far. */
  nuls = 0;

  /** The output space `transform` of `n` input bytes followed by `finish` may need. */
  static outputSize(n: number): number {
    // Each byte yields at most 2 (a bare LF, a leading dot), a CR held over from the last chunk 2 more,
    // and finish() at most 5.
    return 2 * n + 8;
  }

  /**
   * Transforms `input` into `out` (at least outputSize(input.length) long); returns the bytes written.
   * Whole lines are copied with indexOf() and set(), not byte by byte: the per-byte work is native.
   */
  transform(input: Uint8Array, out: Uint8Array): number {
    if (input.includes(0)) { // rare: removed before anything else, as if they had never been there
      const kept = input.filter((b) => b !== 0);
      this.nuls += input.length - kept.length;
      input = kept;
    }
    let o = 0;
    let i = 0;
    const n = input.length;
    let atLineStart = this.#atLineStart;
    if (this.#pendingCR && n > 0) {
      // A CR ended the last chunk: it ends a line whether or not an LF follows.
      this.#pendingCR = false;
      out[o++] = CR;
      out[o++] = LF;
      atLineStart = true;
      if (input[0] === LF) i = 1;
    }
    // The next CR and LF at or after i (-1: none left); each is searched again only once passed.
    let cr = -2;
    let lf = -2;
    while (i < n) {
      if (atLineStart && input[i] === DOT) out[o++] = DOT;
      if (cr !== -1 && cr < i) cr = input.indexOf(CR, i);
      if (lf !== -1 && lf < i) lf = input.indexOf(LF, i);
      const stop = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (stop < 0) {
        out.set(input.subarray(i), o);
        o += n - i;
        atLineStart = false;
        break;
      }
      if (stop > i) {
        out.set(input.subarray(i, stop), o);
        o += stop - i;
      }
      if (stop === cr && stop + 1 >= n) {
        this.#pendingCR = true; // CR at the end of the chunk: CRLF or bare CR, the next chunk tells
        atLineStart = false;
        i = n;
        break;
      }
      // CRLF, a bare LF or a bare CR: each ends the line with CRLF.
      out[o++] = CR;
      out[o++] = LF;
      atLineStart = true;
      i = stop === cr && input[stop + 1] === LF ? stop + 2 : stop + 1;
    }
    this.#atLineStart = atLineStart;
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
 * ".\r\n" included, and resolves to the number of NUL bytes removed; `size` (the expected content size) only
 * sizes the buffers. Errors of `file.read` or `write` propagate; the caller then drops the connection so the
 * server never sees an end of data.
 */
export async function sendContent(
  file: { read(p: Uint8Array): Promise<number | null> },
  write: (bytes: Uint8Array) => Promise<void>,
  size = CHUNK_SIZE,
): Promise<number> {
  // Buffers sized for the message (a 5 KB message needs no 192 KB of buffers: less garbage to collect).
  const input = new Uint8Array(Math.max(1024, Math.min(CHUNK_SIZE, size + 1)));
  const out = new Uint8Array(DotStuffer.outputSize(input.length));
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
  return stuffer.nuls;
}
