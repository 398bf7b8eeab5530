// The byte-level DATA reader (RFC 5321 4.1.1.4, 4.5.2): removes dot-stuffing and finds the end of the
// content, which is CRLF "." CRLF and nothing else (a bare LF or CR never ends a line here, so the
// "SMTP smuggling" variants such as LF.LF or CR.CR stay part of the content). Line endings are kept as
// received. The decoder is a pure state machine over chunks; readData() drives it over a SocketInput
// and hands each run of content bytes to a sink, without copying.

import type { SocketInput } from "./input.ts";

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

const enum S {
  /** After CRLF (or at the start): a dot here is stuffing or the end marker. */
  LineStart,
  /** After CRLF ".": waiting to see whether CRLF follows. */
  Dot,
  /** After CRLF "." CR. */
  DotCr,
  /** Inside a line. */
  Mid,
  /** Inside a line, just after CR. */
  Cr,
}

const CR_BYTES = new Uint8Array([CR]);

export interface DecodeResult {
  /** Content runs in order; subarrays of the input chunk (or a shared constant), valid until the next call. */
  runs: Uint8Array[];
  /** Index just past the end marker in the chunk, or -1 when the end has not been seen yet. */
  end: number;
}

/** Undoes dot-stuffing chunk by chunk and detects CRLF.CRLF, whatever the chunk boundaries. */
export class DotDecoder {
  #state = S.LineStart;

  /** Decodes one chunk. After a result with `end >= 0` the decoder must not be fed again. */
  feed(chunk: Uint8Array): DecodeResult {
    const runs: Uint8Array[] = [];
    let start = 0; // start of the current run of content bytes to pass through
    let i = 0;
    const emit = (to: number) => {
      if (to > start) runs.push(chunk.subarray(start, to));
    };
    while (i < chunk.length) {
      const b = chunk[i];
      switch (this.#state) {
        case S.LineStart:
          if (b === DOT) {
            emit(i);
            start = i + 1; // the dot is never content: stuffing, or part of the end marker
            this.#state = S.Dot;
          } else this.#state = b === CR ? S.Cr : S.Mid;
          i++;
          break;
        case S.Dot:
          if (b === CR) {
            start = i + 1;
            this.#state = S.DotCr;
          } else this.#state = S.Mid; // "." + other: the dot was stuffing, the byte is content
          i++;
          break;
        case S.DotCr:
          if (b === LF) return { runs, end: i + 1 };
          // "." CR other: the dot was stuffing; the CR is content, then look at this byte again.
          runs.push(CR_BYTES);
          start = i;
          this.#state = S.Cr;
          break;
        case S.Mid: {
          const cr = chunk.indexOf(CR, i);
          if (cr < 0) i = chunk.length;
          else {
            i = cr + 1;
            this.#state = S.Cr;
          }
          break;
        }
        case S.Cr:
          this.#state = b === LF ? S.LineStart : b === CR ? S.Cr : S.Mid;
          i++;
          break;
      }
    }
    if (this.#state !== S.Dot && this.#state !== S.DotCr) emit(i);
    return { runs, end: -1 };
  }
}

/** Where decoded content goes; write() may wait (the file is written in bounded chunks). */
export interface ContentSink {
  write(run: Uint8Array): void | Promise<void>;
}

export type DataResult = "end" | "eof";

/**
 * Reads content until CRLF.CRLF, passing it to `sink`; each chunk must arrive within `timeoutMs` of the
 * previous one. Bytes after the end marker stay in the input (the next pipelined command). Resolves
 * "eof" when the client went away first; rejects with InputTimeout / InputInterrupted.
 */
export async function readData(
  input: SocketInput,
  sink: ContentSink,
  timeoutMs: number,
): Promise<DataResult> {
  const decoder = new DotDecoder();
  for (;;) {
    const chunk = await input.take(Date.now() + timeoutMs);
    if (chunk === null) return "eof";
    const { runs, end } = decoder.feed(chunk);
    for (const run of runs) await sink.write(run);
    if (end >= 0) {
      input.unshift(chunk.subarray(end));
      return "end";
    }
  }
}
