// The content of one LMTP transaction on its way to disk: a file in the first recipient's Maildir tmp/,
// opened before 354 and synced after the final dot, from which every recipient's copy is then linked
// (maildir.ts). The content is stored the way Maildir readers expect it: lines end in LF (CRLF from the
// wire becomes LF), with a Return-Path: header holding the envelope sender first. The file writer, with
// its size limit and bounded buffer, is the one smtps uses for the CDB. Touches only its own file.

import { join } from "node:path";
import type { ContentSink } from "../smtp_io/data_reader.ts";
import { MessageFile } from "../smtp_io/message_file.ts";
import type { UniqueNames } from "./maildir.ts";

const CR = 0x0d;
const LF = 0x0a;
const CR_BYTES = new Uint8Array([CR]);

/** Turns CRLF into LF across chunk boundaries; a CR not followed by LF is kept. Pure, no I/O. */
export class CrlfToLf {
  #heldCr = false;

  /** The runs to write for `chunk` (subarrays of it, or a shared CR). */
  feed(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let start = 0;
    if (this.#heldCr) {
      this.#heldCr = false;
      if (chunk.length === 0) {
        this.#heldCr = true;
        return out;
      }
      if (chunk[0] !== LF) out.push(CR_BYTES);
    }
    for (let i = chunk.indexOf(CR); i >= 0; i = chunk.indexOf(CR, i + 1)) {
      if (i === chunk.length - 1) {
        if (i > start) out.push(chunk.subarray(start, i));
        this.#heldCr = true;
        return out;
      }
      if (chunk[i + 1] === LF) {
        if (i > start) out.push(chunk.subarray(start, i));
        start = i + 1;
      }
    }
    if (chunk.length > start) out.push(chunk.subarray(start));
    return out;
  }

  /** What is still held at the end of the content (a final lone CR). */
  end(): Uint8Array[] {
    const out = this.#heldCr ? [CR_BYTES] : [];
    this.#heldCr = false;
    return out;
  }
}

export class Spool implements ContentSink {
  readonly #file: MessageFile;
  readonly #lf = new CrlfToLf();

  private constructor(file: MessageFile) {
    this.#file = file;
  }

  /** Creates the spool file in `dir/tmp` and writes the Return-Path: header; `maxSize` 0 is no limit. */
  static async create(dir: string, names: UniqueNames, sender: string, maxSize: number): Promise<Spool> {
    const file = await MessageFile.create(join(dir, "tmp", names.next()), maxSize, Number.MAX_SAFE_INTEGER);
    const spool = new Spool(file);
    try {
      await file.prepend(new TextEncoder().encode(`Return-Path: <${sender}>\n`));
    } catch (err) {
      await file.discard();
      throw err;
    }
    return spool;
  }

  get path(): string {
    return this.#file.path;
  }

  /** Why the content cannot be delivered (too big, a write error), or undefined. */
  get refusal(): "too_big" | "write_error" | undefined {
    const r = this.#file.refusal;
    return r === "too_many_hops" || r === "nul" || r === "no_space" ? undefined : r; // never checked here
  }

  /** Bytes in the file (the size recorded in Maildir names). */
  get size(): number {
    return this.#file.fileSize;
  }

  async write(run: Uint8Array): Promise<void> {
    for (const part of this.#lf.feed(run)) await this.#file.write(part);
  }

  /** Flushes and syncs the file and tmp/; throws when the content is not on disk. */
  async commit(): Promise<void> {
    for (const part of this.#lf.end()) await this.#file.write(part);
    await this.#file.commit();
  }

  /** Removes the spool file (every recipient has its own link by now, or the content is refused). */
  discard(): Promise<void> {
    return this.#file.discard();
  }
}
