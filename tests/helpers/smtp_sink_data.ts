// The content reader of the test SMTP/LMTP sink (smtp_sink.ts), written apart from the MTA's own DATA
// decoder (components/smtp_io/data_reader.ts) on purpose: the sink is the independent judge of what
// smtpc sends. Pure; touches nothing.

const CR = 13;
const LF = 10;
const DOT = 46;

// DataReader states: at the start of a line, inside one, after a CR, after a leading dot, after ".\r".
const START = 0, MID = 1, AFTER_CR = 2, DOT_ = 3, DOT_CR = 4;

/**
 * The content between 354 and the dot: only CRLF "." CRLF ends it (a bare LF never ends a line here), and a
 * leading dot is removed from every other line. Keeps copies of the bytes only when `keep` is set.
 */
export class DataReader {
  #state = START;
  /** The CR of ".\r" arrived at the end of the last chunk and is not kept yet. */
  #heldCR = false;
  #pieces: Uint8Array[] = [];
  #size = 0;

  constructor(readonly keep: boolean) {}

  /** Consumes `chunk` up to the end of data; `consumed` counts the bytes that belonged to the content. */
  feed(chunk: Uint8Array): { consumed: number; done: boolean } {
    let i = 0;
    if (this.#heldCR) {
      this.#heldCR = false;
      if (chunk[0] === LF) return { consumed: 1, done: true };
      this.#add(Uint8Array.of(CR));
      this.#state = AFTER_CR;
    }
    let runStart = 0;
    const end = chunk.length;
    while (i < end) {
      const b = chunk[i];
      switch (this.#state) {
        case START:
          if (b === DOT) {
            this.#add(chunk.subarray(runStart, i));
            runStart = i + 1;
            this.#state = DOT_;
          } else this.#state = b === CR ? AFTER_CR : MID;
          break;
        case MID: {
          const cr = chunk.indexOf(CR, i);
          if (cr < 0) {
            i = end;
            continue;
          }
          i = cr;
          this.#state = AFTER_CR;
          break;
        }
        case AFTER_CR:
          this.#state = b === LF ? START : b === CR ? AFTER_CR : MID;
          break;
        case DOT_:
          this.#state = b === CR ? DOT_CR : MID;
          break;
        case DOT_CR:
          if (b === LF) {
            this.#add(chunk.subarray(runStart, i - 1));
            this.#state = START;
            return { consumed: i + 1, done: true };
          }
          this.#state = b === CR ? AFTER_CR : MID;
          break;
      }
      i++;
    }
    if (this.#state === DOT_CR) {
      this.#add(chunk.subarray(runStart, end - 1));
      this.#heldCR = true;
    } else this.#add(chunk.subarray(runStart, end));
    return { consumed: end, done: false };
  }

  /** The content received, joined into one array. */
  content(): Uint8Array {
    const out = new Uint8Array(this.#size);
    let off = 0;
    for (const p of this.#pieces) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  #add(bytes: Uint8Array): void {
    if (!this.keep || bytes.length === 0) return;
    this.#pieces.push(bytes.slice());
    this.#size += bytes.length;
  }
}
