// The byte-level DATA reader (RFC 5321 4.1.1.4, 4.5.2): removes dot-stuffing and finds the end of the
// content, which is CRLF "." CRLF and nothing else. In strict mode (the default) a bare LF or a bare CR
// anywhere in the content stops the reader at once (RFC 5321 2.3.8; the session refuses the message and
// closes), so no "SMTP smuggling" variant such as LF.LF, CR.CR or CRLF.CR can ever end one message and
// start another. For clients trusted to send bare line ends, they stay part of the content and never end
// a line. Line endings are kept as received. The decoder is a pure state machine over chunks; readData()
// drives it over a SocketInput under one deadline for the whole block, and readChunk() reads a BDAT chunk
// (RFC 3030) of a known size; both hand content runs to a sink without copying.

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
  /** Strict mode saw a bare CR or LF: decoding stopped there (`runs` hold the content before it). */
  bareNewline?: boolean;
}

/** Undoes dot-stuffing chunk by chunk and detects CRLF.CRLF, whatever the chunk boundaries. */
export class DotDecoder {
  #state = S.LineStart;
  readonly #strict: boolean;

  /** `strict`: a bare CR or LF is an error; otherwise it is content. */
  constructor(strict = true) {
    this.#strict = strict;
  }

  /** Decodes one chunk. After a result with `end >= 0` the decoder must not be fed again. */
  feed(chunk: Uint8Array): DecodeResult {
    const runs: Uint8Array[] = [];
    let start = 0; // start of the current run of content bytes to pass through
    let i = 0;
    const emit = (to: number) => {
      if (to > start) runs.push(chunk.subarray(start, to));
    };
    const strict = this.#strict;
    const bare = (at: number): DecodeResult => {
      emit(at);
      return { runs, end: -1, bareNewline: true };
    };
    while (i < chunk.length) {
      const b = chunk[i];
      switch (this.#state) {
        case S.LineStart:
          if (b === DOT) {
            emit(i);
            start = i + 1; // the dot is never content: stuffing, or part of the end marker
            this.#state = S.Dot;
          } else if (strict && b === LF) return bare(i);
          else this.#state = b === CR ? S.Cr : S.Mid;
          i++;
          break;
        case S.Dot:
          if (b === CR) {
            start = i + 1;
            this.#state = S.DotCr;
          } else if (strict && b === LF) return bare(i);
          else this.#state = S.Mid; // "." + other: the dot was stuffing, the byte is content
          i++;
          break;
        case S.DotCr:
          if (b === LF) return { runs, end: i + 1 };
          if (strict) return bare(i);
          // "." CR other: the dot was stuffing; the CR is content, then look at this byte again.
          runs.push(CR_BYTES);
          start = i;
          this.#state = S.Cr;
          break;
        case S.Mid: {
          const cr = chunk.indexOf(CR, i);
          if (strict) {
            const lf = chunk.indexOf(LF, i);
            if (lf >= 0 && (cr < 0 || lf < cr)) return bare(lf);
          }
          if (cr < 0) i = chunk.length;
          else {
            i = cr + 1;
            this.#state = S.Cr;
          }
          break;
        }
        case S.Cr:
          if (b === LF) this.#state = S.LineStart;
          else if (strict) return bare(i);
          else this.#state = b === CR ? S.Cr : S.Mid;
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

export type DataResult = "end" | "eof" | "bare_newline";

/** Content a slow but honest client sends earns it this many bytes per second beyond `io_timeout`. */
export const MIN_DATA_RATE = 32 * 1024;

/**
 * The deadline of a data block that began at `start`: `timeoutMs` for the whole block, extended by the
 * time `received` bytes take at MIN_DATA_RATE. A client trickling a byte at a time is cut off at about
 * `timeoutMs`; a large message on a slow link still gets through.
 */
export function dataDeadline(start: number, timeoutMs: number, received: number): number {
  return start + timeoutMs + Math.floor((received * 1000) / MIN_DATA_RATE);
}

/**
 * Reads content until CRLF.CRLF, passing it to `sink`, under dataDeadline(). Bytes after the end marker
 * stay in the input (the next pipelined command). Resolves "eof" when the client went away first and
 * "bare_newline" when strict decoding met a bare CR or LF (the rest is left unread); rejects with
 * InputTimeout / InputInterrupted.
 */
export async function readData(
  input: SocketInput,
  sink: ContentSink,
  timeoutMs: number,
  strict = true,
): Promise<DataResult> {
  const decoder = new DotDecoder(strict);
  const start = Date.now();
  let received = 0;
  for (;;) {
    const chunk = await input.take(dataDeadline(start, timeoutMs, received));
    if (chunk === null) return "eof";
    received += chunk.length;
    const { runs, end, bareNewline } = decoder.feed(chunk);
    for (const run of runs) await sink.write(run);
    if (bareNewline) return "bare_newline";
    if (end >= 0) {
      input.unshift(chunk.subarray(end));
      return "end";
    }
  }
}

/**
 * Reads exactly `size` bytes of a BDAT chunk into `sink` (or discards them when `sink` is undefined)
 * under dataDeadline(). Resolves false when the client went away first.
 */
export async function readChunk(
  input: SocketInput,
  size: number,
  sink: ContentSink | undefined,
  timeoutMs: number,
): Promise<boolean> {
  const start = Date.now();
  let received = 0;
  while (received < size) {
    const chunk = await input.take(dataDeadline(start, timeoutMs, received));
    if (chunk === null) return false;
    const want = size - received;
    const part = chunk.length > want ? chunk.subarray(0, want) : chunk;
    if (chunk.length > want) input.unshift(chunk.subarray(want));
    received += part.length;
    if (sink) await sink.write(part);
  }
  return true;
}
