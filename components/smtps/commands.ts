// The verb table: each SMTP command with the states it is out of sequence in, a syntax check that parses
// its argument, and a proceed step (RFC 5321 4.1.1, 4.1.4; extensions RFC 1870, 2920, 2034, 3030, 3207,
// 3461, 4954, 6152, 6531). dispatch() runs one command line through the table, after the PIPELINING rule
// (RFC 2920 3.1): nothing may follow a command that ends a group, and nothing may be pipelined at all
// before EHLO offered it; a client that does so is refused with 554 and the session ends. Bytes sent
// behind STARTTLS are dropped instead (session.ts), and a BDAT's chunk follows its command by design.

import type { SmtpReply } from "../mail/reply.ts";
import { parseMailArgs, parseRcptArgs } from "./arguments.ts";
import { authenticate, authOffered } from "./auth.ts";
import { parseBdat, receiveChunk } from "./bdat.ts";
import { checkHelo, ehloReply, greet, helpReply } from "./ehlo.ts";
import { mailStep, rcptStep } from "./mail_rcpt.ts";
import { receiveMessage } from "./receive.ts";
import { milterHelo, milterRefused } from "./milter/stages.ts";
import { R } from "./replies.ts";
import type { Session, State } from "./session.ts";
import type { MailParams } from "./transaction.ts";
import type { RecipientSpec } from "../protocol/messages.ts";

type Parsed<T> = { ok: true; value: T } | { ok: false; reply: SmtpReply; invalidAddress?: boolean };

interface Verb<T> {
  /** The reply for each state in which the command is out of sequence (503 and friends). */
  outOfSequence?: Partial<Record<State, (s: Session) => SmtpReply>>;
  /** Checks the argument's syntax and returns what proceed needs, or the reply refusing it. */
  parse(arg: string, s: Session): Parsed<T>;
  proceed(s: Session, value: T): void | Promise<void>;
}

/** A table row with its argument type erased (each row's parse and proceed agree on it). */
interface Row {
  outOfSequence?: Partial<Record<State, (s: Session) => SmtpReply>>;
  run(s: Session, verb: string, arg: string): void | Promise<void>;
}

function row<T>(v: Verb<T>): Row {
  return {
    outOfSequence: v.outOfSequence,
    run(s, verb, arg) {
      const p = v.parse(arg, s);
      if (!p.ok) {
        if (p.invalidAddress) s.invalidAddress();
        return s.badCommand(verb, p.reply);
      }
      return v.proceed(s, p.value);
    },
  };
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const refuse = (reply: SmtpReply): Parsed<never> => ({ ok: false, reply });
const noArgument = (usage: string) => (arg: string): Parsed<void> =>
  arg === "" ? ok(undefined) : refuse(R.syntax(usage));
const anyArgument = (arg: string): Parsed<string> => ok(arg);
const required = (usage: string) => (arg: string): Parsed<string> =>
  arg === "" ? refuse(R.syntax(usage)) : ok(arg);

const needHelo = () => R.needHelo;
const nestedMail = () => R.nestedMail;
const needMail = () => R.needMail;

/** Commands after which a client must wait for our reply (RFC 2920 3.1, RFC 4954 4). */
const ENDS_GROUP = new Set(["EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "QUIT", "NOOP", "AUTH"]);

const VERBS: Record<string, Row> = {
  EHLO: row({
    parse: (arg, s) => checkHelo(s, arg, "EHLO hostname"),
    async proceed(s, helo) {
      if (await milterRefused(s, "EHLO", milterHelo(s, helo))) return;
      greet(s, helo, true);
      s.reply(ehloReply(s));
    },
  }),
  HELO: row({
    parse: (arg, s) => checkHelo(s, arg, "HELO hostname"),
    async proceed(s, helo) {
      if (await milterRefused(s, "HELO", milterHelo(s, helo))) return;
      greet(s, helo, false);
      s.reply(R.helo(s.host));
    },
  }),
  STARTTLS: row({
    outOfSequence: { init: needHelo, mail: () => R.tlsInTransaction, rcpt: () => R.tlsInTransaction },
    parse: noArgument("STARTTLS"),
    async proceed(s) {
      if (!s.env.tls) return s.badCommand("STARTTLS", R.notImplemented);
      if (s.tls) return s.badCommand("STARTTLS", R.tlsActive);
      s.reply(R.startTls);
      if (!await s.startTls()) s.quit(); // the handshake failed: the connection is gone
    },
  }),
  AUTH: row({
    parse: required("AUTH mechanism [initial-response]"),
    proceed: (s, arg) => authenticate(s, arg),
  }),
  MAIL: row<MailParams>({
    outOfSequence: { init: needHelo, mail: nestedMail, rcpt: nestedMail },
    parse(arg, s) {
      const env = s.env;
      const m = parseMailArgs(arg, {
        esmtp: s.esmtp,
        eightBit: env.eightBit,
        smtputf8: env.eightBit,
        auth: s.auth !== undefined || authOffered(s),
        requireTls: s.tls !== undefined,
      });
      return m.ok ? ok(m.mail) : m;
    },
    proceed: mailStep,
  }),
  RCPT: row<RecipientSpec>({
    outOfSequence: { init: needMail, ready: needMail },
    parse(arg, s) {
      const r = parseRcptArgs(arg, s.esmtp, s.transaction?.mail.smtputf8 === true);
      return r.ok ? ok(r.recipient) : r;
    },
    proceed: rcptStep,
  }),
  DATA: row({
    outOfSequence: {
      init: needMail,
      ready: needMail,
      mail: () => R.noValidRecipients, // MAIL given, but no recipient accepted (yet)
    },
    parse: noArgument("DATA"),
    proceed(s) {
      if (s.transaction!.chunks) return s.badCommand("DATA", R.dataAfterBdat);
      return receiveMessage(s);
    },
  }),
  BDAT: {
    // No sequence check here: a refused chunk must still be read (bdat.ts decides).
    run(s, verb, arg) {
      const p = parseBdat(arg);
      if (!p) return s.end(verb, R.syntax("BDAT size [LAST]")); // its chunk cannot be found: give up
      return receiveChunk(s, p.size, p.last);
    },
  },
  RSET: row({
    parse: noArgument("RSET"),
    proceed(s) {
      s.nop();
      s.dropTransaction();
      s.reply(R.ok);
    },
  }),
  NOOP: row({
    parse: anyArgument,
    proceed(s) {
      s.nop();
      s.reply(R.ok);
    },
  }),
  QUIT: row({
    parse: noArgument("QUIT"),
    proceed(s) {
      s.reply(R.bye);
      s.quit();
    },
  }),
  VRFY: row({
    parse: required("VRFY address"),
    proceed(s) {
      s.nop();
      s.reply(R.vrfy);
    },
  }),
  HELP: row({
    parse: anyArgument,
    proceed(s) {
      s.nop();
      s.reply(helpReply(s));
    },
  }),
  // RFC 5321 3.5.2 lets EXPN go unimplemented; like the other commands we do not offer: 502 5.5.1.
  EXPN: row({
    parse: anyArgument,
    proceed: (s) => s.badCommand("EXPN", R.notImplemented),
  }),
};

/** Runs one command line: checks pipelining, looks the verb up, checks the sequence, parses, proceeds. */
export function dispatch(s: Session, line: string): void | Promise<void> {
  const space = line.indexOf(" ");
  const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
  const arg = space < 0 ? "" : line.slice(space + 1).trim();
  const entry = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  s.lastVerb = entry ? verb : "unknown command";
  if (s.input.hasBuffered && verb !== "STARTTLS" && verb !== "BDAT" && (!s.esmtp || ENDS_GROUP.has(verb))) {
    return s.end(s.lastVerb, R.improperPipelining(s.host, s.lastVerb));
  }
  if (!entry) return s.badCommand(verb.slice(0, 16) || "empty line", R.unrecognized);
  const outOfSequence = entry.outOfSequence?.[s.state];
  if (outOfSequence) return s.badCommand(verb, outOfSequence(s));
  return entry.run(s, verb, arg);
}
