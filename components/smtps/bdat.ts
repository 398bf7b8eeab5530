// CHUNKING (RFC 3030): `BDAT <size> [LAST]` followed by exactly <size> octets of content, no dot-stuffing
// and no end marker. The first chunk of a transaction creates the CDB file (message_store.ts); each chunk
// is answered 250 once read, and the LAST one once the message is committed. A chunk is always read to
// its end, even when refused (out of sequence, over the size limit), so the next command is found where
// the client put it. A refused chunk ends the transaction: its later chunks get 503. A connection lost in
// the middle of a chunk leaves nothing behind (the session drops the transaction and its file).
// Touches: the transaction's file in the CDB directory.

import { log } from "../util/log.ts";
import { readChunk } from "../smtp_io/data_reader.ts";
import { commitMessage, openMessage } from "./message_store.ts";
import { R } from "./replies.ts";
import type { Session } from "./session.ts";

const COMPONENT = "smtps";
const BDAT_ARGUMENT = /^(\d{1,15})(?: +(LAST))?$/i;

/** The size and LAST flag of a BDAT argument, or undefined when malformed. */
export function parseBdat(arg: string): { size: number; last: boolean } | undefined {
  const m = BDAT_ARGUMENT.exec(arg);
  return m ? { size: Number(m[1]), last: m[2] !== undefined } : undefined;
}

/** Reads one chunk into the transaction's message, or drops it with the reply that refuses it. */
export async function receiveChunk(s: Session, size: number, last: boolean): Promise<void> {
  const io = s.env.server.io_timeout;
  const t = s.transaction;
  if (!t || s.state !== "rcpt") {
    if (!await readChunk(s.input, size, undefined, io)) return;
    const r = s.state === "init" ? R.needHelo : !t ? R.needMail : R.noValidRecipients;
    return s.badCommand("BDAT", r);
  }
  if (t.dataReply) { // what DATA would have got instead of 354
    if (!await readChunk(s.input, size, undefined, io)) return;
    s.refuse("BDAT", t.dataReply, `from=<${t.sender}>`);
    return s.dropTransaction();
  }
  s.busy = true;
  try {
    t.chunks ??= await openMessage(s, t, "BDAT");
    const m = t.chunks;
    if (!m) {
      await readChunk(s.input, size, undefined, io);
      return s.dropTransaction();
    }
    const max = s.env.server.max_message_size;
    const tooBig = max > 0 && m.file.contentSize + size > max;
    const complete = await readChunk(s.input, size, tooBig ? undefined : m.file, io);
    if (!complete) {
      log.info(COMPONENT, `${m.id}: lost connection after BDAT from ${s.clientLabel}`);
      return; // the session sees the end of input and drops the transaction with its file
    }
    if (tooBig || m.file.refusal) {
      if (tooBig) s.refuse("BDAT", R.tooBig, `from=<${t.sender}> size>${m.file.contentSize + size}`);
      else await commitMessage(s, t, m, "BDAT"); // answers the refusal the file recorded
      return s.dropTransaction();
    }
    if (!last) return s.reply(R.chunkOk(String(size)));
    if (await commitMessage(s, t, m, "BDAT")) t.chunks = undefined; // qmgr owns the file now
    s.dropTransaction();
  } finally {
    s.busy = false;
  }
}
