// The DATA phase of one transaction (RFC 5321 4.1.1.4): creates the CDB file, answers 354, streams the
// content into it behind our Received: header under one deadline for the whole block, and commits it
// (message_store.ts). A bare CR or LF from a client not trusted with them ends the session with 554 and
// nothing stored. Every outcome but a commit removes the file. Touches: one new file in the CDB directory.

import { log } from "../util/log.ts";
import { readData } from "../smtp_io/data_reader.ts";
import { commitMessage, openMessage } from "./message_store.ts";
import { R } from "./replies.ts";
import { policyCheck } from "./policy/stages.ts";
import { milterData, milterRefused } from "./milter/stages.ts";
import type { Session } from "./session.ts";
import type { ChunkedMessage } from "./transaction.ts";

const COMPONENT = "smtps";

/** Receives, stores and commits the message of the session's transaction, then ends the transaction. */
export async function receiveMessage(s: Session): Promise<void> {
  const t = s.transaction!;
  s.busy = true;
  let m: ChunkedMessage | undefined;
  try {
    if (t.dataReply) return s.refuse("DATA", t.dataReply, `from=<${t.sender}>`);
    const policy = await policyCheck(s, "data");
    if (policy.kind === "refuse") {
      return s.refuse("DATA", policy.reply, `policy service ${policy.service}, from=<${t.sender}>`);
    }
    m = await openMessage(s, t, "DATA");
    if (!m) return;
    if (await milterRefused(s, "DATA", milterData(s, t, m.id), `from=<${t.sender}>`)) return;
    s.reply(R.startData);
    await s.flush();
    const result = await readData(s.input, m.file, s.env.server.io_timeout, s.strictNewlines);
    if (result === "eof") {
      log.info(COMPONENT, `${m.id}: lost connection after DATA from ${s.clientLabel}`);
      return; // the session loop sees the end of input next
    }
    if (result === "bare_newline") {
      return s.end("DATA", R.bareNewline(s.host), `from=<${t.sender}>`);
    }
    if (await commitMessage(s, t, m, "DATA")) m = undefined; // qmgr owns the file now
  } finally {
    if (m) {
      const { id, file } = m;
      await file.discard().catch((err) =>
        log.error(COMPONENT, `${id}: remove ${file.path} failed: ${err.message}`)
      );
    }
    s.dropTransaction();
    s.busy = false;
  }
}
