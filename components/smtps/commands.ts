// The verb table: each SMTP command with the states it is out of sequence in, a syntax check that parses
// its argument, and a proceed step (RFC 5321 4.1.1, 4.1.4; extensions RFC 1870, 2920, 2034, 6152).
// dispatch() runs one command line through the table. Policy questions go to smar (checkMail/checkRcpt);
// DATA is handed to receive.ts.

import { checkMail, checkRcpt } from "../smar/client.ts";
import type { SmtpReply } from "../mail/reply.ts";
import { parseMailArgs, parseRcptArgs } from "./arguments.ts";
import { receiveMessage } from "./receive.ts";
import { defaultRefusal, R } from "./replies.ts";
import type { Session, State } from "./session.ts";
import { type BodyType, Transaction } from "./transaction.ts";

type Parsed<T> = { ok: true; value: T } | { ok: false; reply: SmtpReply };

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
      if (!p.ok) return s.badCommand(verb, p.reply);
      return v.proceed(s, p.value);
    },
  };
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const refuse = (reply: SmtpReply): Parsed<never> => ({ ok: false, reply });
const noArgument = (usage: string) => (arg: string): Parsed<void> =>
  arg === "" ? ok(undefined) : refuse(R.syntax(usage));
const domainArgument = (usage: string) => (arg: string): Parsed<string> =>
  arg === "" ? refuse(R.syntax(usage)) : ok(arg.split(" ")[0]);

const needHelo = () => R.needHelo;
const nestedMail = () => R.nestedMail;
const needMail = () => R.needMail;

function greet(s: Session, helo: string, esmtp: boolean): void {
  s.helo = helo;
  s.esmtp = esmtp;
  s.dropTransaction(); // HELO/EHLO reset any transaction (RFC 5321 4.1.4)
}

function ehloReply(s: Session): SmtpReply {
  const c = s.env.server;
  const lines = [s.host, "PIPELINING"];
  if (c.flags.includes("8bitmime")) lines.push("8BITMIME");
  lines.push(c.max_message_size > 0 ? `SIZE ${c.max_message_size}` : "SIZE");
  lines.push("ENHANCEDSTATUSCODES");
  return { code: 250, status: "", text: lines.join("\n") };
}

interface MailValue {
  sender: string;
  size?: number;
  body?: BodyType;
}

const VERBS: Record<string, Row> = {
  EHLO: row({
    parse: domainArgument("EHLO hostname"),
    proceed(s, helo) {
      greet(s, helo, true);
      s.reply(ehloReply(s));
    },
  }),
  HELO: row({
    parse: domainArgument("HELO hostname"),
    proceed(s, helo) {
      greet(s, helo, false);
      s.reply(R.helo(s.host));
    },
  }),
  MAIL: row<MailValue>({
    outOfSequence: { init: needHelo, mail: nestedMail, rcpt: nestedMail },
    parse(arg, s) {
      const m = parseMailArgs(arg, s.esmtp, s.env.server.flags.includes("8bitmime"));
      return m.ok ? ok(m) : refuse(m.reply);
    },
    async proceed(s, m) {
      const max = s.env.server.max_message_size;
      if (m.size !== undefined && max > 0 && m.size > max) {
        return s.refuse("MAIL", R.tooBig, `from=<${m.sender}> size=${m.size}`);
      }
      const v = await checkMail(s.env.endpoint, s.ip, m.sender);
      if (v.action !== "accept") {
        return s.refuse("MAIL", v.reply ?? defaultRefusal(v.action), `from=<${m.sender}>`);
      }
      s.transaction = new Transaction(m.sender, m.size, m.body);
      s.state = "mail";
      s.reply(R.senderOk);
    },
  }),
  RCPT: row<string>({
    outOfSequence: { init: needMail, ready: needMail },
    parse(arg) {
      const r = parseRcptArgs(arg);
      return r.ok ? ok(r.recipient) : refuse(r.reply);
    },
    async proceed(s, recipient) {
      const t = s.transaction!;
      const c = s.env.server;
      const detail = `from=<${t.sender}> to=<${recipient}>`;
      if (t.hasRecipient(recipient)) return s.reply(R.rcptOk);
      if (
        t.recipients.length >= c.max_recipients_per_transaction ||
        s.recipientsInSession >= c.max_recipients_per_session
      ) return s.refuse("RCPT", R.tooManyRecipients, detail);
      const v = await checkRcpt(s.env.endpoint, { ip: s.ip, sender: t.sender, recipient, authorized: false });
      if (v.action !== "accept") return s.refuse("RCPT", v.reply ?? defaultRefusal(v.action), detail);
      t.addRecipient(recipient);
      s.recipientsInSession++;
      s.state = "rcpt";
      s.reply(R.rcptOk);
    },
  }),
  DATA: row({
    outOfSequence: {
      init: needMail,
      ready: needMail,
      mail: () => R.noValidRecipients, // MAIL given, but no recipient accepted (yet)
    },
    parse: noArgument("DATA"),
    proceed: (s) => receiveMessage(s),
  }),
  RSET: row({
    parse: noArgument("RSET"),
    proceed(s) {
      s.dropTransaction();
      s.reply(R.ok);
    },
  }),
  NOOP: row({ parse: ok, proceed: (s) => s.reply(R.ok) }),
  QUIT: row({
    parse: noArgument("QUIT"),
    proceed(s) {
      s.reply(R.bye);
      s.quit();
    },
  }),
  VRFY: row({ parse: domainArgument("VRFY address"), proceed: (s) => s.reply(R.vrfy) }),
  HELP: row({ parse: ok, proceed: (s) => s.reply(R.help) }),
};

/** Runs one command line: looks the verb up, checks the sequence, then parses and proceeds. */
export function dispatch(s: Session, line: string): void | Promise<void> {
  const space = line.indexOf(" ");
  const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
  const arg = space < 0 ? "" : line.slice(space + 1).trim();
  const entry = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  s.lastVerb = entry ? verb : "unknown command";
  if (!entry) return s.badCommand(verb.slice(0, 16) || "empty line", R.unrecognized);
  const outOfSequence = entry.outOfSequence?.[s.state];
  if (outOfSequence) return s.badCommand(verb, outOfSequence(s));
  return entry.run(s, verb, arg);
}
