// The stored content as mail authentication sees and edits it, before the commit: the header fields of
// its header section (bounded: a header section larger than MAX_HEADER_SCAN is read only that far), a
// readable stream of the content as it will be stored (new header fields in front, some fields left
// out), and the rewrite that makes the file that content. A queue file's content starts after its frame
// head (`start` bytes, mail/cdb.ts): offsets here count from the start of the content, and the rewrite
// keeps the head in front. Touches the one message file.

import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import { PRIVATE_FILE } from "../../util/private_files.ts";
import { fileChunks } from "../../util/file_chunks.ts";

/** The most bytes of a header section looked at for fields to remove. */
export const MAX_HEADER_SCAN = 1024 * 1024;

/** A header field of the stored content: its name (lower case), its bytes [start, end) in the file. */
export interface HeaderField {
  name: string;
  start: number;
  end: number;
  /** The field's value, unfolded (CRLF + WSP become WSP), without the name and colon. */
  value: string;
}

/** The header fields of the file's header section (up to the empty line or MAX_HEADER_SCAN bytes). */
export async function readHeaderFields(path: string, start = 0): Promise<HeaderField[]> {
  const head = await readHead(path, start);
  const fields: HeaderField[] = [];
  let pos = 0;
  let current: { start: number; colon: number } | undefined;
  const close = (end: number) => {
    if (!current) return;
    const raw = new TextDecoder().decode(head.subarray(current.start, end));
    const colon = raw.indexOf(":");
    fields.push({
      name: raw.slice(0, colon).trim().toLowerCase(),
      start: current.start,
      end,
      value: raw.slice(colon + 1).replace(/\r?\n([ \t])/g, "$1").replace(/\r?\n$/, ""),
    });
    current = undefined;
  };
  while (pos < head.length) {
    let eol = head.indexOf(0x0a, pos);
    if (eol < 0) break; // a line cut by the scan limit
    eol++;
    const first = head[pos];
    const empty = eol - pos === 1 || (eol - pos === 2 && first === 0x0d);
    if (empty) break;
    if (first === 0x20 || first === 0x09) {
      pos = eol; // a continuation line of the current field
      continue;
    }
    close(pos);
    const line = head.subarray(pos, eol);
    const colon = line.indexOf(0x3a);
    current = colon > 0 ? { start: pos, colon } : undefined; // a line without a colon is no field
    pos = eol;
  }
  close(pos);
  return fields;
}

async function readHead(path: string, start: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of fileChunks(path, start)) {
    parts.push(chunk);
    size += chunk.length;
    const all = concat(parts);
    if (endOfHeader(all) >= 0) return all.subarray(0, endOfHeader(all));
    if (size >= MAX_HEADER_SCAN) break;
  }
  return concat(parts).subarray(0, MAX_HEADER_SCAN);
}

/** The offset just past the empty line that ends the header section, or -1. */
function endOfHeader(b: Uint8Array): number {
  if (b[0] === 0x0a) return 1;
  if (b[0] === 0x0d && b[1] === 0x0a) return 2;
  for (let i = b.indexOf(0x0a); i >= 0 && i < b.length - 1; i = b.indexOf(0x0a, i + 1)) {
    if (b[i + 1] === 0x0a) return i + 2;
    if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A change to the stored content: fields to put in front, byte ranges of the file to leave out. */
export interface ContentEdit {
  head: Uint8Array;
  drop: { start: number; end: number }[];
}

/** The bytes of the file with `edit` applied, in chunks. */
async function* editedBytes(path: string, edit: ContentEdit, start: number): AsyncGenerator<Uint8Array> {
  if (edit.head.length > 0) yield edit.head;
  const drop = [...edit.drop].sort((a, b) => a.start - b.start);
  let offset = 0;
  for await (const chunk of fileChunks(path, start)) {
    const n = chunk.length;
    let from = 0;
    for (const d of drop) {
      const s = Math.max(d.start - offset, from);
      const e = Math.min(d.end - offset, n);
      if (e <= from || s >= n) continue;
      if (s > from) yield chunk.subarray(from, s);
      from = e;
    }
    if (from < n) yield chunk.subarray(from, n);
    offset += n;
  }
}

/** A node stream of the content as it will be stored (what mailauth reads). */
export function editedStream(path: string, edit: ContentEdit, start = 0): Readable {
  return Readable.from((async function* () {
    for await (const b of editedBytes(path, edit, start)) {
      yield Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    }
  })());
}

/**
 * Makes the file at `path` the edited content: written to `<path>.edit` and renamed over it. The caller
 * syncs the file and its directory afterwards (the commit); returns the new size of the content. A queue
 * file's frame head (`frameHead`, the first `start` bytes) stays in front.
 */
export async function rewriteContent(
  path: string,
  edit: ContentEdit,
  start = 0,
  frameHead: Uint8Array = new Uint8Array(0),
): Promise<number> {
  const tmp = `${path}.edit`;
  const out = await Deno.open(tmp, { write: true, createNew: true, mode: PRIVATE_FILE });
  let size = 0;
  try {
    for (let o = 0; o < frameHead.length;) o += await out.write(frameHead.subarray(o));
    for await (const b of editedBytes(path, edit, start)) {
      let o = 0;
      while (o < b.length) o += await out.write(b.subarray(o));
      size += b.length;
    }
    await out.sync();
  } catch (err) {
    out.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  out.close();
  await Deno.rename(tmp, path);
  return size;
}
