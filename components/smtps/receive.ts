// The DATA phase of one transaction: creates the CDB file, answers 354, streams the content into it behind
// our Received: header, syncs it, and asks qmgr to commit the envelope. 250 goes out only once qmgr says
// the envelope is committed; every other outcome removes the file (nothing half-written stays in the
// CDB) and answers 4xx/5xx. Touches: one new file in the CDB directory.

import { cdbPath } from "../mail/cdb.ts";
import { newQueueId } from "../mail/queue_id.ts";
import { receivedHeader } from "../mail/received.ts";
import type { Envelope } from "../protocol/messages.ts";
import { commitEnvelope } from "../qmgr/client.ts";
import { log } from "../util/log.ts";
import { readData } from "./data_reader.ts";
import { MessageFile } from "./message_file.ts";
import { R } from "./replies.ts";
import type { Session } from "./session.ts";

const COMPONENT = "smtps";
const encoder = new TextEncoder();

/** Receives, stores and commits the message of the session's transaction, then ends the transaction. */
export async function receiveMessage(s: Session): Promise<void> {
  const t = s.transaction!;
  const cfg = s.env.server;
  const id = newQueueId();
  const path = cdbPath(s.env.cdbBase, id);
  const arrival = s.env.now();
  s.busy = true;
  let file: MessageFile | undefined;
  try {
    try {
      file = await MessageFile.create(path, cfg.max_message_size, cfg.max_hops);
      await file.prepend(encoder.encode(receivedHeader({
        helo: s.helo,
        ip: s.ip,
        hostname: s.host,
        protocol: s.esmtp ? "ESMTP" : "SMTP",
        id,
        recipient: t.recipients.length === 1 ? t.recipients[0].address : undefined,
        date: arrival,
      })));
    } catch (err) {
      log.error(COMPONENT, `${id}: create message file ${path} failed: ${(err as Error).message}`);
      await file?.discard().catch(() => {});
      file = undefined;
      return s.refuse("DATA", R.writeError);
    }
    s.reply(R.startData);
    await s.flush();
    const result = await readData(s.input, file, cfg.io_timeout);
    if (result === "eof") {
      log.info(COMPONENT, `${id}: lost connection from [${s.ip}] during DATA`);
      return; // the session loop sees the end of input next
    }
    const detail = `from=<${t.sender}> size=${file.contentSize}`;
    switch (file.refusal) {
      case "too_big":
        return s.refuse("DATA", R.tooBig, detail);
      case "too_many_hops":
        return s.refuse("DATA", R.tooManyHops, detail);
      case "write_error":
        log.error(COMPONENT, `${id}: write ${path} failed: ${file.writeError?.message}`);
        return s.refuse("DATA", R.writeError, detail);
    }
    try {
      await file.commit();
    } catch (err) {
      log.error(COMPONENT, `${id}: sync ${path} failed: ${(err as Error).message}`);
      return s.refuse("DATA", R.writeError, detail);
    }
    const envelope: Envelope = {
      id,
      cdbPath: path,
      size: file.fileSize,
      arrival: arrival.getTime(),
      sender: t.sender,
      recipients: t.recipients.map((r) => ({ ...r })),
      client: { ip: s.ip, helo: s.helo },
      ...(t.bodyType ? { bodyType: t.bodyType } : {}),
    };
    const answer = await commitEnvelope(s.env.endpoint, envelope);
    if (answer.type === "qmgr.committed" && answer.id === id) {
      file = undefined; // qmgr owns it now
      log.info(
        COMPONENT,
        `${id}: client=[${s.ip}], from=<${t.sender}>, size=${envelope.size}, nrcpt=${envelope.recipients.length}`,
      );
      return s.reply(R.queued(id));
    }
    const why = answer.type === "qmgr.committed" ? `qmgr committed another id ${answer.id}` : answer.reason;
    log.error(COMPONENT, `${id}: commit failed: ${why}`);
    s.refuse("DATA", R.writeError, detail);
  } finally {
    if (file) {
      await file.discard().catch((err) =>
        log.error(COMPONENT, `${id}: remove ${path} failed: ${err.message}`)
      );
    }
    s.dropTransaction();
    s.busy = false;
  }
}
