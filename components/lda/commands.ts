// The LMTP verbs (RFC 2033 on top of RFC 5321): LHLO instead of HELO/EHLO, MAIL, RCPT (each recipient
// checked against the local users and quotas at once), DATA with one reply per accepted recipient after
// the final dot, RSET, NOOP, VRFY, QUIT. MAIL and RCPT arguments are parsed as smtps parses them. The
// content goes to a spool file in the first recipient's Maildir tmp/, from which delivery.ts links each
// recipient's copy. Line and DATA reading are the ones smtps uses (components/smtp_io/), non-strict
// here: bare line ends are content. Touches the mail store through spool.ts and delivery.ts only.

import { reply, type SmtpReply } from "../mail/reply.ts";
import { readData } from "../smtp_io/data_reader.ts";
import { log } from "../util/log.ts";
import { parseMailArgs, parseRcptArgs } from "./arguments.ts";
import { LR } from "./delivery.ts";
import type { LmtpSession } from "./session.ts";
import { Spool } from "./spool.ts";

/** Recipients per transaction; more get 452 (the client sends them in another transaction). */
export const MAX_RECIPIENTS = 1000;

const CR = {
  ok: reply(250, "2.0.0", "Ok"),
  senderOk: reply(250, "2.1.0", "Sender ok"),
  bye: reply(221, "2.0.0", "Bye"),
  vrfy: reply(252, "2.5.2", "Cannot VRFY user, but will accept message"),
  startData: reply(354, "", "End data with <CR><LF>.<CR><LF>"),
  useLhlo: reply(500, "5.5.1", "This is LMTP: use LHLO"),
  unrecognized: reply(500, "5.5.1", "Command unrecognized"),
  syntax: (usage: string) => reply(501, "5.5.4", `Syntax: ${usage}`),
  needLhlo: reply(503, "5.5.1", "Error: send LHLO first"),
  nestedMail: reply(503, "5.5.1", "Error: nested MAIL command"),
  needMail: reply(503, "5.5.1", "Error: need MAIL command"),
  noValidRecipients: reply(503, "5.5.1", "No valid recipients"),
  tooManyRecipients: reply(452, "4.5.3", "Too many recipients"),
  tooBig: reply(552, "5.3.4", "Message size exceeds fixed maximum message size"),
  spoolError: reply(451, "4.3.0", "Local error: cannot store the message, try again later"),
} satisfies Record<string, SmtpReply | ((...args: string[]) => SmtpReply)>;

/** Runs one command line. */
export async function dispatch(s: LmtpSession, line: string): Promise<void> {
  const space = line.indexOf(" ");
  const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
  const arg = space < 0 ? "" : line.slice(space + 1).trim();
  s.lastVerb = verb;
  switch (verb) {
    case "LHLO":
      if (arg === "") return s.badCommand(verb, CR.syntax("LHLO domain"));
      s.state = "ready";
      s.dropTransaction();
      return s.reply(lhloReply(s));
    case "HELO":
    case "EHLO":
      return s.badCommand(verb, CR.useLhlo);
    case "MAIL":
      return mail(s, arg);
    case "RCPT":
      return await rcpt(s, arg);
    case "DATA":
      return await data(s, arg);
    case "RSET":
      s.dropTransaction();
      return s.reply(CR.ok);
    case "NOOP":
      return s.reply(CR.ok);
    case "VRFY":
      return s.reply(CR.vrfy);
    case "QUIT":
      s.reply(CR.bye);
      return s.quit();
    default:
      return s.badCommand(verb || "command", CR.unrecognized);
  }
}

function lhloReply(s: LmtpSession): SmtpReply {
  const max = s.store.env.lda.max_message_size;
  const lines = [s.host, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", `SIZE ${max}`];
  return reply(250, "", lines.join("\n"));
}

function mail(s: LmtpSession, arg: string): void {
  if (s.state === "init") return s.badCommand("MAIL", CR.needLhlo);
  if (s.state !== "ready") return s.badCommand("MAIL", CR.nestedMail);
  const parsed = parseMailArgs(arg);
  if (!parsed.ok) return s.badCommand("MAIL", parsed.reply);
  const max = s.store.env.lda.max_message_size;
  if (parsed.size !== undefined && max > 0 && parsed.size > max) return s.reply(CR.tooBig);
  s.transaction = { sender: parsed.sender, size: parsed.size ?? 0, rcpts: [] };
  s.state = "mail";
  s.reply(CR.senderOk);
}

async function rcpt(s: LmtpSession, arg: string): Promise<void> {
  if (s.state === "init") return s.badCommand("RCPT", CR.needLhlo);
  const t = s.transaction;
  if (!t) return s.badCommand("RCPT", CR.needMail);
  const parsed = parseRcptArgs(arg);
  if (!parsed.ok) return s.badCommand("RCPT", parsed.reply);
  if (t.rcpts.length >= MAX_RECIPIENTS) return s.reply(CR.tooManyRecipients);
  const checked = await s.store.check(parsed.recipient, t.size);
  if (!checked.ok) {
    log.info(
      "lda",
      `NOQUEUE: reject: RCPT from unknown[${s.ip}]: ${checked.reply.code}; to=<${parsed.recipient}> proto=LMTP`,
    );
    return s.reply(checked.reply);
  }
  t.rcpts.push(checked.rcpt);
  s.state = "rcpt";
  s.reply(LR.rcptOk(parsed.recipient));
}

async function data(s: LmtpSession, arg: string): Promise<void> {
  if (s.state === "init") return s.badCommand("DATA", CR.needLhlo);
  const t = s.transaction;
  if (!t) return s.badCommand("DATA", CR.needMail);
  if (t.rcpts.length === 0) return s.badCommand("DATA", CR.noValidRecipients);
  if (arg !== "") return s.badCommand("DATA", CR.syntax("DATA"));
  const { lda, names } = s.store.env;
  let spool: Spool;
  try {
    spool = await Spool.create(t.rcpts[0].maildir, names, t.sender, lda.max_message_size);
  } catch (err) {
    log.error("lda", `create spool file: ${(err as Error).message}`);
    s.dropTransaction();
    return s.reply(CR.spoolError);
  }
  let replies: SmtpReply[];
  try {
    s.reply(CR.startData);
    await s.flush();
    // Not strict: a bare LF from the queue is content here (our own smtpc is the client), never an end.
    const end = await readData(s.input, spool, s.ioTimeout, false);
    if (end !== "end") {
      log.info("lda", `lost connection in DATA from [${s.ip}]: nothing delivered`);
      s.dropTransaction();
      return s.quit();
    }
    replies = await finish(s, spool, t);
  } finally {
    await spool.discard();
  }
  for (const r of replies) s.reply(r);
  s.dropTransaction();
}

/** Syncs the spool and delivers it: one reply per accepted recipient, in RCPT order. */
async function finish(s: LmtpSession, spool: Spool, t: NonNullable<LmtpSession["transaction"]>) {
  if (spool.refusal === "too_big") return t.rcpts.map((r) => LR.tooBig(r.address));
  try {
    await spool.commit();
  } catch (err) {
    log.error("lda", `write spool file ${spool.path}: ${(err as Error).message}`);
    return t.rcpts.map((r) => LR.localError(r.address));
  }
  return await s.store.deliver(spool, t.sender, t.rcpts);
}
