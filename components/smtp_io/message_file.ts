// One message's content file while DATA arrives (smtps: in the CDB; the lda: its spool file in a Maildir
// tmp/): created new (never overwriting), written in bounded chunks through a fixed 64 KiB buffer, then
// synced together with its directory (before smtps asks qmgr to commit). While writing it watches the
// limits that make us refuse the message: the size limit and the number of Received: headers in the
// header section (a mail loop), the free space it is told to leave (smtps: disk_space.ts), and, for smtps,
// NUL bytes (RFC 5321 2.3.8 allows none in text; a next hop that strips them would see a different message
// than the one we checked). Once a limit is hit or a write fails, the rest of the content is only counted,
// never written; the caller removes the file. A queue file (mail/cdb.ts) is framed: its head is written at
// create(), its envelope record and completion mark by commit(); neither counts as content.
// Touches: the one file it creates and its directory (opened only to fsync it).

import { dirname } from "node:path";
import { PRIVATE_FILE } from "../util/private_files.ts";
import { syncDir } from "../util/sync_dir.ts";
import type { ContentSink } from "./data_reader.ts";

export const WRITE_BUFFER = 64 * 1024;

export type Refusal = "too_big" | "too_many_hops" | "nul" | "no_space" | "write_error";

export interface MessageFileOptions {
  /** A queue file's frame head (mail/cdb.ts), written first; not content. */
  head?: Uint8Array;
  /** Refuse content holding a NUL byte ("nul"). */
  refuseNul?: boolean;
  /** Asked before each buffer is written whether that many bytes may go to disk; no: "no_space". */
  room?: (bytes: number) => Promise<boolean>;
}

/** Longest Message-ID value kept for the log. */
const MAX_MESSAGE_ID = 250;

/** The header fields whose first value the scanner keeps, by their name with the colon, lower case. */
const KEPT = ["message-id:", "tls-required:"] as const;
type Kept = typeof KEPT[number];
const LONGEST_KEPT = Math.max(...KEPT.map((k) => k.length));

/**
 * Reads the header section of the content, which ends at the first empty line: counts its Received:
 * fields and keeps the value of its first Message-ID: and TLS-Required: (RFC 8689) fields (unfolded, cut
 * at MAX_MESSAGE_ID).
 */
class HeaderScanner {
  count = 0;
  readonly #values = new Map<Kept, string>();
  #inHeader = true;
  #prefix = ""; // the first bytes of the current line, up to the longest kept field name
  #lineLength = 0;
  #field: Kept | undefined; // the field whose value is being read (its line and continuations)
  #value = "";

  feed(run: Uint8Array): void {
    for (let i = 0; i < run.length && this.#inHeader; i++) {
      const b = run[i];
      if (b === 0x0a) {
        // An empty line (only CR before the LF, or nothing) ends the header section.
        if (this.#lineLength === 0 || (this.#lineLength === 1 && this.#prefix === "\r")) {
          this.#inHeader = false;
          this.#endField();
        }
        this.#prefix = "";
        this.#lineLength = 0;
        continue;
      }
      if (this.#lineLength === 0 && this.#field && b !== 0x20 && b !== 0x09) this.#endField();
      this.#lineLength++;
      if (this.#field) {
        if (b !== 0x0d && this.#value.length < MAX_MESSAGE_ID) this.#value += String.fromCharCode(b);
        continue;
      }
      if (this.#prefix.length < LONGEST_KEPT && this.#lineLength === this.#prefix.length + 1) {
        this.#prefix += String.fromCharCode(b).toLowerCase();
        if (this.#prefix === "received:") this.count++;
        const kept = KEPT.find((k) => k === this.#prefix);
        if (kept && !this.#values.has(kept)) {
          this.#field = kept;
          this.#value = "";
        }
      }
    }
  }

  /** The first Message-ID value (one still being read when the content ended counts). */
  get messageId(): string | undefined {
    return this.#valueOf("message-id:");
  }

  /** The first TLS-Required value (RFC 8689 section 5), e.g. "No". */
  get tlsRequired(): string | undefined {
    return this.#valueOf("tls-required:");
  }

  #valueOf(field: Kept): string | undefined {
    if (this.#field === field) return this.#value.replace(/\s+/g, " ").trim() || undefined;
    return this.#values.get(field);
  }

  #endField(): void {
    if (!this.#field) return;
    const value = this.#value.replace(/\s+/g, " ").trim();
    if (value !== "") this.#values.set(this.#field, value);
    this.#field = undefined;
  }
}

export class MessageFile implements ContentSink {
  readonly path: string;
  #file: Deno.FsFile;
  readonly #maxSize: number;
  readonly #maxHops: number;
  readonly #refuseNul: boolean;
  readonly #room: ((bytes: number) => Promise<boolean>) | undefined;
  readonly #buffer = new Uint8Array(WRITE_BUFFER);
  readonly #hops = new HeaderScanner();
  #fill = 0;
  #closed = false;
  /** A queue file's frame head, before the content (empty: none). */
  #head: Uint8Array = new Uint8Array(0);
  /** Bytes of content received from the client (after dot-unstuffing, before our Received: header). */
  contentSize = 0;
  /** Bytes of content written to the file, our Received: header included (not the frame). */
  fileSize = 0;
  refusal: Refusal | undefined;
  writeError: Error | undefined;

  private constructor(
    path: string,
    file: Deno.FsFile,
    maxSize: number,
    maxHops: number,
    o: MessageFileOptions,
  ) {
    this.path = path;
    this.#file = file;
    this.#maxSize = maxSize;
    this.#maxHops = maxHops;
    this.#refuseNul = o.refuseNul === true;
    this.#room = o.room;
  }

  /**
   * Creates the file, opening with `head` (a queue file's frame head; not content); fails when it already
   * exists. `maxSize` 0 means no size limit.
   */
  static async create(
    path: string,
    maxSize: number,
    maxHops: number,
    opts: MessageFileOptions = {},
  ): Promise<MessageFile> {
    const file = await Deno.open(path, { write: true, createNew: true, mode: PRIVATE_FILE });
    const f = new MessageFile(path, file, maxSize, maxHops, opts);
    if (opts.head) {
      f.#head = opts.head;
      await f.#put(opts.head);
      f.fileSize -= opts.head.length;
    }
    return f;
  }

  /** Where the content starts in the file: after a queue file's frame head (mail/cdb.ts), else 0. */
  get contentStart(): number {
    return this.#head.length;
  }

  /** The content's Message-ID (as written, `<...>`), once its header section has been read. */
  get messageId(): string | undefined {
    return this.#hops.messageId;
  }

  /** The content's first TLS-Required: value (RFC 8689 section 5), once its header section has been read. */
  get tlsRequired(): string | undefined {
    return this.#hops.tlsRequired;
  }

  /** Writes bytes we add ourselves (the Received: header); they do not count against the limits. */
  async prepend(bytes: Uint8Array): Promise<void> {
    await this.#put(bytes);
  }

  /** Takes one run of client content. */
  async write(run: Uint8Array): Promise<void> {
    this.contentSize += run.length;
    if (this.refusal) return;
    if (this.#maxSize > 0 && this.contentSize > this.#maxSize) return this.#refuse("too_big");
    this.#hops.feed(run);
    if (this.#hops.count > this.#maxHops) return this.#refuse("too_many_hops");
    if (this.#refuseNul && run.includes(0)) return this.#refuse("nul");
    await this.#put(run);
  }

  /**
   * Lets `edit` replace the content before the commit (mail authentication adds header fields): what is
   * buffered is written out, the file closed, `edit(path, contentStart, head)` rewrites it and gives its
   * new content size, and the new file is opened for the commit to append the rest and sync. A queue
   * file's content starts after its frame head (`contentStart` bytes, `head`): the rewrite keeps that head
   * in front and edits only what follows. Throws when the content is not all written.
   */
  async edit(edit: (path: string, contentStart: number, head: Uint8Array) => Promise<number>): Promise<void> {
    if (this.refusal) {
      throw new Error(`Edit message file ${this.path}: content was refused (${this.refusal})`);
    }
    await this.#flush();
    if (this.refusal) throw this.writeError ?? new Error(`Write message file ${this.path}: failed`);
    this.fileSize = await edit(this.path, this.#head.length, this.#head);
    this.#file.close();
    this.#file = await Deno.open(this.path, { write: true, append: true });
  }

  /** Writes out what is buffered, so the content can be read from the file before the commit. */
  async flush(): Promise<void> {
    if (!this.refusal) await this.#flush();
  }

  /**
   * Replaces the whole content (a filter changed the message) with `parts`, through edit(): the frame
   * head and `parts` are written to a new file beside this one, which then takes its name. `parts` may
   * read the old file (its content starts at contentStart).
   */
  async replace(parts: AsyncIterable<Uint8Array>): Promise<void> {
    const before = this.fileSize;
    await this.edit(async (path, _contentStart, head) => {
      const temp = `${path}.new`;
      const file = await Deno.open(temp, { write: true, createNew: true, mode: PRIVATE_FILE });
      let size = 0;
      try {
        let offset = 0;
        while (offset < head.length) offset += await file.write(head.subarray(offset));
        for await (const part of parts) {
          offset = 0;
          while (offset < part.length) offset += await file.write(part.subarray(offset));
          size += part.length;
        }
        await Deno.rename(temp, path);
        return size;
      } catch (err) {
        await Deno.remove(temp).catch(() => {});
        throw err;
      } finally {
        file.close();
      }
    });
    this.contentSize += this.fileSize - before;
  }

  /**
   * Flushes, writes `tail` (a queue file's envelope record and completion mark: not content), syncs the
   * file and its directory, and closes it. Throws when the content is not on disk.
   */
  async commit(tail?: Uint8Array | ((contentLength: number) => Uint8Array)): Promise<void> {
    if (this.refusal) {
      throw new Error(`Sync message file ${this.path}: content was refused (${this.refusal})`);
    }
    if (tail) {
      const content = this.fileSize + this.#fill;
      const bytes = typeof tail === "function" ? tail(content) : tail;
      await this.#put(bytes);
      await this.#flush();
      this.fileSize -= bytes.length;
    }
    await this.#flush();
    if (this.refusal) throw this.writeError ?? new Error(`Write message file ${this.path}: failed`);
    await this.#file.sync();
    this.#close();
    await syncDir(dirname(this.path));
  }

  /** Closes the file if open and removes it (the message was refused, failed, or the client left). */
  async discard(): Promise<void> {
    this.#close();
    try {
      await Deno.remove(this.path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  #refuse(why: Refusal): void {
    this.refusal = why;
    this.#fill = 0;
  }

  async #put(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length && !this.refusal) {
      const n = Math.min(bytes.length - offset, WRITE_BUFFER - this.#fill);
      this.#buffer.set(bytes.subarray(offset, offset + n), this.#fill);
      this.#fill += n;
      offset += n;
      if (this.#fill === WRITE_BUFFER) await this.#flush();
    }
  }

  async #flush(): Promise<void> {
    let offset = 0;
    try {
      if (this.#fill > 0 && this.#room && !await this.#room(this.#fill)) {
        this.#refuse("no_space"); // stop before the disk is full: nothing more is written
        return;
      }
      while (offset < this.#fill) offset += await this.#file.write(this.#buffer.subarray(offset, this.#fill));
      this.fileSize += this.#fill;
    } catch (err) {
      this.writeError = err as Error;
      this.refusal = "write_error";
    }
    this.#fill = 0;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}
