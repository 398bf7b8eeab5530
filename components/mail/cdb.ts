// The content database (CDB): one file per message under CDB_base_directory, in 16 subdirectories 0-F
// chosen by the last digit of the queue id. smtps (and qmgr for a DSN) writes and syncs a file before its
// envelope is committed; smtpc reads it; qmgr deletes it when every recipient is done.
//
// A queue file describes itself, so the queue can be rebuilt from the files alone (the database is an
// index, never the only copy):
//
//   head     "SMX-QUEUE-FILE 1 " <nonce: 32 hex> "\n"                                   (50 bytes)
//   content  the message as it leaves, our Received: header included                     (C bytes)
//   envelope one line of JSON: EnvelopeRecord                                             (E bytes)
//   trailer  "\nSMX-QUEUE-END " <nonce> " " <C: 12 hex> " " <E: 8 hex> "\n"               (70 bytes)
//
// The trailer is the completion mark: written last, just before the file is synced and the envelope is
// committed, so a file without it is a session cut before its 250. The nonce is random per file and
// never leaves the MTA, so a client cannot forge a trailer inside its content and have a cut session
// pass for complete (which would queue an envelope of its choosing). The envelope follows the content
// because filters may change it until the end of the message. Readers find everything from the two
// fixed-size ends: no scanning. A file without the head is from an older smx (content only, its
// envelope only in the database).
// Touches: the files it is given (create/read).

import { join } from "node:path";
import { ensurePrivateDir } from "../util/private_files.ts";
import type { Envelope } from "../protocol/messages.ts";

export const CDB_SUBDIRS = "0123456789ABCDEF".split("");

const MAGIC = "SMX-QUEUE-FILE 1 ";
const END = "\nSMX-QUEUE-END ";
export const HEAD_LENGTH = MAGIC.length + 32 + 1;
export const TRAILER_LENGTH = END.length + 32 + 1 + 12 + 1 + 8 + 1;
/** Longest envelope record a reader accepts (100,000 recipients of 2 KB fit well below it). */
export const MAX_ENVELOPE_RECORD = 0xffffffff;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The path of the CDB file for queue id `id`. */
export function cdbPath(base: string, id: string): string {
  return join(base, id.slice(-1), id);
}

/** Creates the base directory and its 16 subdirectories when missing, all mode 0700 (existing ones too). */
export async function ensureCdbDirs(base: string): Promise<void> {
  await ensurePrivateDir(base);
  for (const d of CDB_SUBDIRS) await ensurePrivateDir(join(base, d));
}

/** What a queue file keeps of its envelope: all of it but what the file itself says (path, size). */
export type EnvelopeRecord = Omit<Envelope, "cdbPath" | "size"> & { v: 1 };

/** The framing of one queue file being written: its head now, its envelope and trailer at the end. */
export class CdbFrame {
  readonly nonce: string;

  constructor() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    this.nonce = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  /** The bytes that open the file, before any content. */
  head(): Uint8Array {
    return encoder.encode(MAGIC + this.nonce + "\n");
  }

  /** The bytes that close the file after `contentLength` bytes of content: envelope record and trailer. */
  tail(env: Envelope, contentLength: number): Uint8Array {
    const { cdbPath: _p, size: _s, ...rest } = env;
    const record = encoder.encode(JSON.stringify({ v: 1, ...rest }));
    const trailer = encoder.encode(
      END + this.nonce + " " + hex(contentLength, 12) + " " + hex(record.length, 8) + "\n",
    );
    const out = new Uint8Array(record.length + trailer.length);
    out.set(record);
    out.set(trailer, record.length);
    return out;
  }
}

function hex(n: number, width: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 16 ** width) throw new RangeError(`Frame a queue file: ${n}`);
  return n.toString(16).padStart(width, "0");
}

/** What a look at a queue file found. */
export type CdbFile =
  /** Written to the end: deliverable; `envelope` is undefined when only its record is unreadable. */
  | { state: "complete"; contentStart: number; contentLength: number; envelope?: Envelope; problem?: string }
  /** Begun but never finished (a session cut before its 250, or a write that failed). */
  | { state: "incomplete"; size: number }
  /** Written by an older smx: all content, no envelope. */
  | { state: "legacy"; contentStart: 0; contentLength: number };

async function readAt(file: Deno.FsFile, at: number, length: number): Promise<Uint8Array> {
  await file.seek(at, Deno.SeekMode.Start);
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * The layout of a queue file of `size` bytes from its two ends: `readHead()` gives its first bytes (up to
 * HEAD_LENGTH), `readTrailer()` its last TRAILER_LENGTH; `recordLength` receives the envelope record's.
 */
async function frameOf(
  size: number,
  readHead: () => Promise<Uint8Array> | Uint8Array,
  readTrailer: () => Promise<Uint8Array> | Uint8Array,
  recordLength?: (n: number) => void,
): Promise<CdbFile> {
  const head = decoder.decode(await readHead());
  if (!head.startsWith(MAGIC.slice(0, Math.min(head.length, MAGIC.length)))) {
    return { state: "legacy", contentStart: 0, contentLength: size };
  }
  if (head.length < HEAD_LENGTH || size < HEAD_LENGTH + TRAILER_LENGTH) return { state: "incomplete", size };
  const nonce = head.slice(MAGIC.length, MAGIC.length + 32);
  const trailer = decoder.decode(await readTrailer());
  const m = /^\nSMX-QUEUE-END ([0-9a-f]{32}) ([0-9a-f]{12}) ([0-9a-f]{8})\n$/.exec(trailer);
  if (!m || m[1] !== nonce) return { state: "incomplete", size };
  const contentLength = parseInt(m[2], 16);
  const record = parseInt(m[3], 16);
  if (HEAD_LENGTH + contentLength + record + TRAILER_LENGTH !== size) return { state: "incomplete", size };
  recordLength?.(record);
  return { state: "complete", contentStart: HEAD_LENGTH, contentLength };
}

/**
 * The content of a whole queue file already read into memory (`bytes`), without frame and envelope; a
 * legacy file is all content. Throws when the file is incomplete (an empty one is an empty message).
 */
export async function contentOf(bytes: Uint8Array, path: string): Promise<Uint8Array> {
  const size = bytes.length;
  const l = await frameOf(
    size,
    () => bytes.subarray(0, Math.min(size, HEAD_LENGTH)),
    () => bytes.subarray(size - TRAILER_LENGTH),
  );
  if (l.state === "incomplete") {
    if (size === 0) return bytes;
    throw new Error(`queue file ${path} is incomplete`);
  }
  return bytes.subarray(l.contentStart, l.contentStart + l.contentLength);
}

/** Reads the layout of the open queue file `file` at `path`; with `envelope`, its envelope record too. */
async function layoutOf(file: Deno.FsFile, path: string, envelope: boolean): Promise<CdbFile> {
  const size = (await file.stat()).size;
  let recordLength = 0;
  const found = await frameOf(
    size,
    () => readAt(file, 0, Math.min(size, HEAD_LENGTH)),
    () => readAt(file, size - TRAILER_LENGTH, TRAILER_LENGTH),
    (n) => recordLength = n,
  );
  if (found.state !== "complete" || !envelope) return found;
  const { contentLength } = found;
  try {
    const bytes = await readAt(file, HEAD_LENGTH + contentLength, recordLength);
    const { v, ...rest } = JSON.parse(decoder.decode(bytes)) as EnvelopeRecord;
    if (v !== 1) throw new Error(`unknown envelope record version ${v}`);
    found.envelope = { ...rest, cdbPath: path, size: contentLength } as Envelope;
  } catch (err) {
    found.problem = `envelope record: ${(err as Error).message}`;
  }
  return found;
}

/** Looks at the queue file at `path` (see CdbFile); throws what opening it throws (NotFound ...). */
export async function readCdbFile(path: string, opts: { envelope?: boolean } = {}): Promise<CdbFile> {
  const file = await Deno.open(path, { read: true });
  try {
    return await layoutOf(file, path, opts.envelope ?? true);
  } finally {
    file.close();
  }
}

/**
 * The content of a queue file, read from its start to its end and no further (never the envelope
 * record or the trailer); a legacy file is all content. Readers of message content use this, never the
 * raw file: smtpc, the DSN's copy of the original, qmgrctl show.
 */
export class CdbContent {
  readonly path: string;
  /** Bytes of content. */
  readonly length: number;
  readonly #file: Deno.FsFile;
  readonly #start: number;
  #left: number;

  private constructor(path: string, file: Deno.FsFile, start: number, length: number) {
    this.path = path;
    this.#file = file;
    this.#start = start;
    this.length = length;
    this.#left = length;
  }

  /** Opens the content of a complete (or legacy) file; throws when it is incomplete or cannot be read. */
  static async open(path: string): Promise<CdbContent> {
    const file = await Deno.open(path, { read: true });
    try {
      const l = await layoutOf(file, path, false);
      // Only a committed message's file is opened for its content, and a queue file is committed only
      // once complete: an empty one is an empty message of an older smx (or a test's).
      if (l.state === "incomplete" && l.size === 0) return new CdbContent(path, file, 0, 0);
      if (l.state === "incomplete") throw new Error(`queue file ${path} is incomplete`);
      await file.seek(l.contentStart, Deno.SeekMode.Start);
      return new CdbContent(path, file, l.contentStart, l.contentLength);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Reads up to `p.length` bytes of content; null at its end. */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.#left <= 0) return null;
    const n = await this.#file.read(p.length > this.#left ? p.subarray(0, this.#left) : p);
    if (n === null) throw new Error(`read ${this.path}: the file ends before its content does`);
    this.#left -= n;
    return n;
  }

  /** Goes back to the start of the content (another delivery attempt). */
  async rewind(): Promise<void> {
    await this.#file.seek(this.#start, Deno.SeekMode.Start);
    this.#left = this.length;
  }

  close(): void {
    this.#file.close();
  }
}

/** The whole content of a queue file (tests, small tools); see CdbContent. */
export async function readCdbContent(path: string): Promise<Uint8Array> {
  const c = await CdbContent.open(path);
  try {
    const out = new Uint8Array(c.length);
    let got = 0;
    while (got < out.length) {
      const n = await c.read(out.subarray(got));
      if (n === null) break;
      got += n;
    }
    return out.subarray(0, got);
  } finally {
    c.close();
  }
}
