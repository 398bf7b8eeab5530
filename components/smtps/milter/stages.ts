// Where the SMTP session meets its policy milters (chain.ts): the connect, HELO, MAIL and RCPT stages
// with the macros Postfix sends (j, {daemon_name}, {daemon_addr}, v, _, {client_addr}, {client_port},
// {client_name}, {tls_version}, {cipher}, {cert_subject}, {auth_type}, {auth_authen}, {mail_addr},
// {rcpt_addr}, i, ...), and the message once its content is in the file: each milter in turn gets DATA,
// the header fields, end of header, the body in chunks and end of message, and what it changes is
// carried out (modify.ts) before the next one sees the message. Touches: the message file (read back,
// rewritten by modify.ts).

import type { RecipientSpec } from "../../protocol/messages.ts";
import { log } from "../../util/log.ts";
import type { Session } from "../session.ts";
import type { ChunkedMessage, MailParams, Transaction } from "../transaction.ts";
import { type Answer, type Milter } from "./milter.ts";
import { MilterChain, type Outcome } from "./chain.ts";
import { bytesOf, milterValue, readContent } from "./content.ts";
import { applyChanges } from "./modify.ts";
import { CHUNK_SIZE, cstrings, uint16 } from "./protocol.ts";

const COMPONENT = "smtps";

/** Connects the session's milters and tells them of the client; undefined when there are none. */
export async function milterConnect(s: Session): Promise<Outcome | undefined> {
  const configs = s.env.server.policy_milter ?? [];
  if (configs.length === 0) return undefined;
  const { chain, refusal } = await MilterChain.open(configs, s.host);
  s.milters = chain;
  if (refusal) return refusal;
  const family = s.ip.includes(":") ? "6" : "4";
  const macros = {
    j: s.host,
    daemon_name: s.env.server.name,
    daemon_addr: s.localAddress,
    daemon_port: String(s.localPort),
    v: "smx",
    _: `unknown [${s.ip}]`,
    client_addr: s.ip,
    client_port: String(s.clientPort),
    client_name: "unknown",
    client_ptr: "unknown",
    client_resolve: "FAIL",
  };
  return chain.ask(
    "connect",
    macros,
    [cstrings(`[${s.ip}]`), family, uint16(s.clientPort), cstrings(s.ip)],
    "session",
  );
}

/** HELO/EHLO (again after STARTTLS, with the TLS macros). */
export function milterHelo(s: Session, helo: string): Promise<Outcome> | undefined {
  if (!s.milters) return undefined;
  const macros: Record<string, string> = {};
  if (s.tls) {
    macros.tls_version = s.tls.version;
    macros.cipher = s.tls.cipher;
    if (s.tls.subject) macros.cert_subject = s.tls.subject;
    if (s.tls.issuer) macros.cert_issuer = s.tls.issuer;
  }
  return s.milters.ask("helo", macros, [cstrings(helo)], "session");
}

/** MAIL FROM with its ESMTP parameters. */
export function milterMail(s: Session, mail: MailParams): Promise<Outcome> | undefined {
  if (!s.milters) return undefined;
  s.milters.newMessage();
  const macros: Record<string, string> = {
    mail_addr: mail.sender,
    mail_host: mail.sender.includes("@") ? mail.sender.slice(mail.sender.lastIndexOf("@") + 1) : "",
    mail_mailer: "smtp",
  };
  if (s.auth) {
    macros.auth_type = s.auth.mechanism;
    macros.auth_authen = s.auth.user;
  }
  const args = [`<${mail.sender}>`];
  if (mail.size !== undefined) args.push(`SIZE=${mail.size}`);
  if (mail.body) args.push(`BODY=${mail.body}`);
  if (mail.smtputf8) args.push("SMTPUTF8");
  if (mail.ret) args.push(`RET=${mail.ret}`);
  return s.milters.ask("mail", macros, [cstrings(...args)], "message");
}

/** RCPT TO, once smar accepted the recipient. */
export function milterRcpt(s: Session, r: RecipientSpec): Promise<Outcome> | undefined {
  if (!s.milters) return undefined;
  const at = r.address.lastIndexOf("@");
  const macros = {
    rcpt_addr: r.address,
    rcpt_host: at < 0 ? "" : r.address.slice(at + 1),
    rcpt_mailer: "smtp",
  };
  const args = [`<${r.address}>`];
  if (r.notify) args.push(`NOTIFY=${r.notify.join(",")}`);
  return s.milters.ask("rcpt", macros, [cstrings(...args)], "message");
}

/**
 * The DATA command, before the 354 (the queue id is known then); a discard marks the transaction. With
 * BDAT there is no such moment: milterMessage() sends DATA when the last chunk has arrived.
 */
export async function milterData(s: Session, t: Transaction, id: string): Promise<Outcome | undefined> {
  if (!s.milters) return undefined;
  t.milterDataSent = true;
  const outcome = await s.milters.ask("data", { i: id }, [], "message");
  if (outcome.kind === "discard") t.discard = true;
  return outcome;
}

/** What the milters made of a message: go on (maybe quarantined), or the reply they call for. */
export type MessageVerdict =
  | { kind: "accept"; quarantine?: string }
  | { kind: "refuse"; outcome: Extract<Outcome, { kind: "refuse" }> }
  | { kind: "discard"; why: string };

/** Runs the stored message through every milter still in the transaction, carrying out their changes. */
export async function milterMessage(s: Session, t: Transaction, m: ChunkedMessage): Promise<MessageVerdict> {
  const chain = s.milters;
  if (!chain) return { kind: "accept" };
  const standing = chain.standing();
  if (standing) return { kind: "refuse", outcome: standing };
  let quarantine: string | undefined;
  const i = { i: m.id };
  for (const milter of chain.active()) {
    await m.file.flush();
    const content = await readContent(m.file.path, m.file.contentStart);
    const send = async (mm: Milter): Promise<Answer> => {
      let a: Answer = t.milterDataSent ? { kind: "continue" } : await mm.ask("data", i);
      for (const h of content.headers) {
        if (a.kind !== "continue" || mm.skips("header")) break;
        const data = concat(bytesOf(h.name), [0], bytesOf(milterValue(h, mm.leadingSpace)), [0]);
        a = await mm.ask("header", i, data);
      }
      if (a.kind === "continue") a = await mm.ask("eoh", i);
      if (a.kind === "continue" && mm.wantsBody) a = await sendBody(mm, m.file.path, content.bodyOffset);
      return a;
    };
    const { outcome, eom } = await chain.message(milter, send, i);
    if (outcome.kind === "refuse") return { kind: "refuse", outcome };
    if (outcome.kind === "discard") return { kind: "discard", why: `milter ${outcome.milter} said discard` };
    if (!eom) continue;
    for (const why of eom.refused) log.warn(COMPONENT, `${m.id}: milter ${milter.name}: refused ${why}`);
    const applied = await applyChanges(t, m, content, eom.changes, milter);
    quarantine = applied.quarantine ?? quarantine;
    if (t.recipients.length === 0) {
      return { kind: "discard", why: `milter ${milter.name} removed every recipient` };
    }
  }
  return quarantine === undefined ? { kind: "accept" } : { kind: "accept", quarantine };
}

/** Sends the body from `offset` in chunks of at most CHUNK_SIZE bytes; stops when the milter says skip. */
async function sendBody(mm: Milter, path: string, offset: number): Promise<Answer> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(CHUNK_SIZE);
    for (;;) {
      let n = 0;
      while (n < buf.length) {
        const got = await file.read(buf.subarray(n));
        if (got === null) break;
        n += got;
      }
      if (n === 0) return { kind: "continue" };
      const a = await mm.body(buf.slice(0, n));
      if (a.kind === "skip") return { kind: "continue" };
      if (a.kind !== "continue") return a;
      if (n < buf.length) return { kind: "continue" };
    }
  } finally {
    file.close();
  }
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Answers a command the milters refused (421 ends the session) and resolves true; false when they let
 * it pass (a discard is for the caller to note).
 */
export async function milterRefused(
  s: Session,
  stage: string,
  asked: Promise<Outcome | undefined> | Outcome | undefined,
  detail = "",
): Promise<boolean> {
  const outcome = await asked;
  if (outcome?.kind !== "refuse") return false;
  const why = `milter ${outcome.milter}${detail ? `, ${detail}` : ""}`;
  if (outcome.end) s.end(stage, outcome.reply, why);
  else s.refuse(stage, outcome.reply, why);
  return true;
}

/** The transaction is over without end of message: ABORT to the milters. */
export function milterAbort(s: Session): void {
  s.milters?.abort().catch((err) => log.error(COMPONENT, `milter abort failed: ${(err as Error).message}`));
}

/** The session is over. */
export async function milterClose(s: Session): Promise<void> {
  await s.milters?.close();
}
