// The content of a queue file as text (its frame, envelope record and completion mark left out), for
// tests that look at what smtps stored.

import { CdbFrame, readCdbContent } from "../../components/mail/cdb.ts";
import type { Envelope } from "../../components/protocol/messages.ts";

/** The content of the queue file at `path` as text. */
export async function cdbText(path: string): Promise<string> {
  return new TextDecoder().decode(await readCdbContent(path));
}

/**
 * Writes a queue file for `env` as smtps does (frame head, `content`, envelope record, completion mark);
 * `complete` false leaves the mark out, as a session cut before its 250 does. Sets `env.size`.
 */
export async function writeQueueFile(env: Envelope, content: string, complete = true): Promise<void> {
  const frame = new CdbFrame();
  const body = new TextEncoder().encode(content);
  env.size = body.length;
  const parts = [frame.head(), body, ...(complete ? [frame.tail(env, body.length)] : [])];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  await Deno.writeFile(env.cdbPath, out, { createNew: true });
}
