// The two ends of storing one message, shared by DATA (receive.ts) and BDAT (bdat.ts): openMessage()
// creates the CDB file (its frame head, mail/cdb.ts) and writes our Received: header into it;
// commitMessage() checks what the content limits said, writes the envelope into the file after the content
// (with the completion mark), syncs the file and asks qmgr to commit the envelope, and answers 250 only
// once qmgr says it is committed. Every other outcome leaves the file to the caller to remove and answers
// 4xx/5xx. Whatever changes the content (a filter) does so before commitMessage(); whatever changes the
// envelope, before its envelope is built there: the file then carries both as they will be delivered.
// Touches: one new file in the CDB directory.

import { CdbFrame, cdbPath } from "../mail/cdb.ts";
import { newQueueId } from "../mail/queue_id.ts";
import { receivedHeader, receivedProtocol } from "../mail/received.ts";
import type { Envelope } from "../protocol/messages.ts";
import { commitEnvelope } from "../qmgr/client.ts";
import { log } from "../util/log.ts";
import { printable } from "./auth.ts";
import { MessageFile } from "../smtp_io/message_file.ts";
import { R } from "./replies.ts";
import { authenticateContent, hasAuthStep } from "./mailauth/step.ts";
import { type MessageVerdict, milterMessage } from "./milter/stages.ts";
import { policyCheck } from "./policy/stages.ts";
import type { Session } from "./session.ts";
import type { ChunkedMessage, Transaction } from "./transaction.ts";
import { fileChunks } from "../util/file_chunks.ts";

const COMPONENT = "smtps";
const encoder = new TextEncoder();

/** The Received: header for the message of `t` in session `s`. */
function received(s: Session, t: Transaction, id: string, date: Date): string {
  return receivedHeader({
    helo: s.helo,
    ip: s.ip,
    hostname: s.host,
    protocol: receivedProtocol({
      esmtp: s.esmtp,
      tls: s.tls !== undefined,
      auth: s.auth !== undefined,
      utf8: t.mail.smtputf8 === true,
    }),
    id,
    recipient: t.recipients.length === 1 ? t.recipients[0].address : undefined,
    date,
    tls: s.tls && { version: s.tls.version, cipher: s.tls.cipher },
    authUser: s.auth && s.env.server.auth?.flags.includes("received_user") ? s.auth.user : undefined,
  });
}

/**
 * The policy services' DATA (for BDAT, which has no DATA command) and END-OF-MESSAGE questions: false when
 * they refused (the reply is given) or said DISCARD (250 given, nothing kept). A PREPEND here is written
 * at the top of the stored content.
 */
async function policyAtEnd(
  s: Session,
  t: Transaction,
  m: ChunkedMessage,
  stage: string,
  detail: string,
): Promise<boolean> {
  if (s.env.policyServices.length === 0) return true;
  const before = t.prepend.length;
  for (
    const when of stage === "DATA" ? ["end_of_data" as const] : ["data" as const, "end_of_data" as const]
  ) {
    const v = await policyCheck(s, when, undefined, { id: m.id, size: m.file.fileSize });
    if (v.kind === "refuse") {
      s.refuse(stage, v.reply, `${m.id}: policy service ${v.service}, ${detail}`);
      return false;
    }
  }
  if (t.discard) {
    log.info(COMPONENT, `${m.id}: discarded as a policy service says: client=[${s.ip}], ${detail}`);
    s.reply(R.queued(m.id));
    return false;
  }
  const added = t.prepend.slice(before);
  if (added.length > 0) {
    await m.file.replace(prepended(encoder.encode(added.join("")), m.file.path, m.file.contentStart));
  }
  return true;
}

async function* prepended(header: Uint8Array, path: string, start: number): AsyncGenerator<Uint8Array> {
  yield header;
  yield* fileChunks(path, start);
}

/**
 * The milters' end of the message: resolves what they let through (maybe quarantined), or undefined when
 * they refused or discarded it (the reply is given then). A file error here answers 451.
 */
async function filterMessage(
  s: Session,
  t: Transaction,
  m: ChunkedMessage,
  stage: string,
  detail: string,
): Promise<{ quarantine?: string } | undefined> {
  if (!s.milters) return {};
  let v: MessageVerdict;
  try {
    v = await milterMessage(s, t, m);
  } catch (err) {
    log.error(COMPONENT, `${m.id}: filtering ${m.file.path} failed: ${(err as Error).message}`);
    s.refuse(stage, R.writeError, detail);
    return undefined;
  } finally {
    t.filtered = true;
  }
  switch (v.kind) {
    case "accept":
      return v.quarantine !== undefined ? { quarantine: v.quarantine } : {};
    case "discard":
      log.info(COMPONENT, `${m.id}: discarded: ${v.why}: client=[${s.ip}], ${detail}`);
      s.reply(R.queued(m.id));
      return undefined;
    case "refuse": {
      const why = `${m.id}: milter ${v.outcome.milter}, ${detail}`;
      if (v.outcome.end) s.end(stage, v.outcome.reply, why);
      else s.refuse(stage, v.outcome.reply, why);
      return undefined;
    }
  }
}

/** Creates the message's file with our Received: header; on failure answers 451 and resolves undefined. */
export async function openMessage(
  s: Session,
  t: Transaction,
  stage: string,
): Promise<ChunkedMessage | undefined> {
  const cfg = s.env.server;
  const id = newQueueId();
  const path = cdbPath(s.env.cdbBase, id);
  const arrival = s.env.now();
  const frame = new CdbFrame();
  let file: MessageFile | undefined;
  try {
    file = await MessageFile.create(path, cfg.max_message_size, cfg.max_hops, {
      head: frame.head(),
      refuseNul: true,
      room: (bytes) => s.env.queue.space.room(bytes),
    });
    // What a policy service said to PREPEND goes above our Received: (as Postfix writes it).
    await file.prepend(encoder.encode(t.prepend.join("") + received(s, t, id, arrival)));
    return { id, file, frame, arrival };
  } catch (err) {
    log.error(COMPONENT, `${id}: create message file ${path} failed: ${(err as Error).message}`);
    await file?.discard().catch(() => {});
    s.refuse(stage, R.writeError);
    return undefined;
  }
}

/**
 * Answers for a message whose content has fully arrived: the refusal its limits call for, or, once the
 * file is synced and qmgr has committed the envelope, 250; a message smar said to discard gets 250 and
 * is dropped. Resolves true when qmgr owns the file now (else the caller removes it).
 */
export async function commitMessage(
  s: Session,
  t: Transaction,
  m: ChunkedMessage,
  stage: string,
): Promise<boolean> {
  const { id, file } = m;
  const detail = `from=<${t.sender}> size=${file.contentSize}`;
  switch (file.refusal) {
    case "too_big":
      s.refuse(stage, R.tooBig, detail);
      return false;
    case "too_many_hops":
      s.refuse(stage, R.tooManyHops, detail);
      return false;
    case "nul":
      s.refuse(stage, R.nulInContent, detail);
      return false;
    case "no_space":
      log.warn(COMPONENT, `${id}: stopped writing ${file.path}: the disk is nearly full`);
      s.refuse(stage, R.diskFull, detail);
      return false;
    case "write_error":
      log.error(COMPONENT, `${id}: write ${file.path} failed: ${file.writeError?.message}`);
      s.refuse(stage, R.writeError, detail);
      return false;
  }
  if (s.discardAll || t.discard || t.recipients.length === 0) {
    log.info(
      COMPONENT,
      `${id}: discard: END-OF-MESSAGE from ${s.clientLabel}: the access map says so; ${detail}`,
    );
    s.reply(R.queued(id));
    return false;
  }
  if (!await policyAtEnd(s, t, m, stage, detail)) return false;
  const filtered = await filterMessage(s, t, m, stage, detail);
  if (!filtered) return false;
  if (t.redirect !== undefined) t.redirectTo(t.redirect);
  if (hasAuthStep(s)) {
    let step;
    try {
      step = await authenticateContent(s, t, id, file);
    } catch (err) {
      log.error(COMPONENT, `${id}: authentication step failed: ${(err as Error).message}`);
      s.refuse(stage, R.writeError, detail);
      return false;
    }
    if (step.action === "refuse") {
      s.refuse(stage, step.reply, detail);
      return false;
    }
    if (step.action === "discard") {
      log.info(
        COMPONENT,
        `${id}: discarded as the access map says (authentication): client=[${s.ip}], ${detail}`,
      );
      s.reply(R.queued(id));
      return false;
    }
  }
  const envelope: Envelope = {
    id,
    cdbPath: file.path,
    size: 0,
    arrival: m.arrival.getTime(),
    client: { ip: s.ip, helo: s.helo },
    ...t.envelopeFields(),
    // RFC 8689 section 5: TLS-Required: No asks that the recipient's TLS policies be ignored; REQUIRETLS wins.
    ...(file.tlsRequired?.toLowerCase() === "no" && !t.mail.requireTls ? { tlsRequiredNo: true } : {}),
    ...((filtered.quarantine ?? t.quarantine) !== undefined
      ? { quarantine: filtered.quarantine ?? t.quarantine }
      : {}),
  };
  try {
    await file.commit((length) => m.frame.tail(envelope, length));
    envelope.size = file.fileSize;
  } catch (err) {
    log.error(COMPONENT, `${id}: sync ${file.path} failed: ${(err as Error).message}`);
    s.refuse(stage, R.writeError, detail);
    return false;
  }
  const answer = await commitEnvelope(s.env.endpoint, envelope);
  if (answer.type === "qmgr.committed" && answer.id === id) {
    // Postfix's smtpd and cleanup lines: pflogsumm counts a message received from its `client=` line.
    const auth = s.auth ? `, sasl_method=${s.auth.mechanism}, sasl_username=${printable(s.auth.user)}` : "";
    log.info(COMPONENT, `${id}: client=${s.clientLabel}${auth}`);
    if (file.messageId !== undefined) log.info(COMPONENT, `${id}: message-id=${file.messageId}`);
    s.env.counters.message(s.auth?.mechanism);
    s.reply(R.queued(id));
    return true;
  }
  const why = answer.type === "qmgr.committed" ? `qmgr committed another id ${answer.id}` : answer.reason;
  log.error(COMPONENT, `${id}: commit failed: ${why}`);
  s.refuse(stage, R.writeError, detail);
  return false;
}
