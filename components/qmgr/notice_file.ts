// Writes one DSN as a new CDB file: the text from components/mail/dsn.ts with the original message (or its
// header) streamed in between from the original's CDB file through a fixed buffer, framed with its own
// envelope like any queue file (mail/cdb.ts), then synced with its directory, as smtps does for received
// mail, before the DSN's envelope is committed. On any failure the half-written file is removed and the
// error thrown.
// May touch: create one file in the CDB directory; read the original's CDB file.

import { dirname } from "node:path";
import { CdbContent, CdbFrame } from "../mail/cdb.ts";
import { dsnHead, type DsnReport, dsnTail } from "../mail/dsn.ts";
import { PRIVATE_FILE } from "../util/private_files.ts";
import type { Envelope } from "../protocol/messages.ts";
import { syncDir } from "../util/sync_dir.ts";

const CHUNK = 64 * 1024;
/** A header section longer than this is cut when only the header is returned. */
export const MAX_RETURNED_HEADER = 256 * 1024;

const encoder = new TextEncoder();

/** Index just past the empty line ending the header section (CRLF CRLF or LF LF), or -1. */
function headerEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(1, from); i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    if (bytes[i - 1] === 0x0a) return i + 1;
    if (bytes[i - 1] === 0x0d && i >= 3 && bytes[i - 2] === 0x0a && bytes[i - 3] === 0x0d) return i + 1;
  }
  return -1;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

/** Copies the original (all of it, or its header section) into `out`; returns the bytes written. */
async function copyOriginal(out: Deno.FsFile, path: string, returns: DsnReport["returns"]): Promise<number> {
  let src: CdbContent;
  try {
    src = await CdbContent.open(path);
  } catch {
    const note = encoder.encode("(the original message is no longer available)\r\n");
    await writeAll(out, note);
    return note.length;
  }
  try {
    const buf = new Uint8Array(CHUNK);
    let written = 0;
    let last = 0x0a;
    // For a header, keep the tail of the previous chunk so an empty line split across reads is found.
    let carry = new Uint8Array(0);
    while (true) {
      const n = await src.read(buf);
      if (n === null) break;
      let chunk = buf.subarray(0, n);
      if (returns === "headers") {
        const joined = new Uint8Array(carry.length + n);
        joined.set(carry);
        joined.set(chunk, carry.length);
        const end = headerEnd(joined, carry.length);
        chunk = joined.subarray(carry.length, end < 0 ? joined.length : end);
        if (written + chunk.length > MAX_RETURNED_HEADER) {
          chunk = chunk.subarray(0, Math.max(0, MAX_RETURNED_HEADER - written));
        }
        await writeAll(out, chunk);
        written += chunk.length;
        if (chunk.length > 0) last = chunk[chunk.length - 1];
        if (end >= 0 || written >= MAX_RETURNED_HEADER) break;
        carry = joined.slice(Math.max(0, joined.length - 3));
        continue;
      }
      await writeAll(out, chunk);
      written += n;
      last = chunk[n - 1];
    }
    if (last !== 0x0a) {
      await writeAll(out, encoder.encode("\r\n"));
      written += 2;
    }
    return written;
  } finally {
    src.close();
  }
}

/**
 * Creates `env.cdbPath` (never overwriting) holding the DSN `report` around `originalPath` and the
 * envelope `env`; sets and returns `env.size`.
 */
export async function writeNoticeFile(
  env: Envelope,
  report: DsnReport,
  originalPath: string,
): Promise<number> {
  const path = env.cdbPath;
  const file = await Deno.open(path, { write: true, createNew: true, mode: PRIVATE_FILE });
  const frame = new CdbFrame();
  let size = 0;
  try {
    try {
      await writeAll(file, frame.head());
      const head = encoder.encode(dsnHead(report));
      await writeAll(file, head);
      size += head.length;
      size += await copyOriginal(file, originalPath, report.returns);
      const tail = encoder.encode(dsnTail(report));
      await writeAll(file, tail);
      size += tail.length;
      env.size = size;
      await writeAll(file, frame.tail(env, size));
      await file.sync();
    } finally {
      file.close();
    }
    await syncDir(dirname(path));
    return size;
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw err;
  }
}
