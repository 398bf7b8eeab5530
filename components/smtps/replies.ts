// Every reply smtps sends on its own account (policy replies come from smar's verdicts), in one place so
// the wording stays consistent and tests can name them. Enhanced status codes per RFC 3463 / RFC 5248.

import { reply, type SmtpReply } from "../mail/reply.ts";

export const R = {
  greeting: (host: string) => reply(220, "", `${host} ESMTP`),
  bye: reply(221, "2.0.0", "Bye"),
  help: reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"),
  helo: (host: string) => reply(250, "", host),
  ok: reply(250, "2.0.0", "Ok"),
  senderOk: reply(250, "2.1.0", "Ok"),
  rcptOk: reply(250, "2.1.5", "Ok"),
  queued: (id: string) => reply(250, "2.0.0", `Ok: queued as ${id}`),
  vrfy: reply(252, "2.5.2", "Cannot VRFY user, but will accept message"),
  startData: reply(354, "", "End data with <CR><LF>.<CR><LF>"),

  tooManySessions: (host: string) => reply(421, "4.3.2", `${host} Too many sessions, try again later`),
  unavailable: (host: string) => reply(421, "4.3.0", `${host} Service temporarily unavailable`),
  shuttingDown: (host: string) => reply(421, "4.3.2", `${host} Service shutting down`),
  timeout: (host: string) => reply(421, "4.4.2", `${host} Error: timeout exceeded`),
  tooManyErrors: (host: string) => reply(421, "4.7.0", `${host} Too many errors`),
  writeError: reply(451, "4.3.0", "Error: queue file write error"),
  tooManyRecipients: reply(452, "4.5.3", "Too many recipients"),

  unrecognized: reply(500, "5.5.1", "Command unrecognized"),
  lineTooLong: reply(500, "5.5.2", "Line too long"),
  syntax: (usage: string) => reply(501, "5.5.4", `Syntax: ${usage}`),
  badParameter: (why: string) => reply(501, "5.5.4", `Bad parameter: ${why}`),
  badSender: (why: string) => reply(501, "5.1.7", `Bad sender address syntax: ${why}`),
  badRecipient: (why: string) => reply(501, "5.1.3", `Bad recipient address syntax: ${why}`),
  needHelo: reply(503, "5.5.1", "Error: send HELO/EHLO first"),
  nestedMail: reply(503, "5.5.1", "Error: nested MAIL command"),
  needMail: reply(503, "5.5.1", "Error: need MAIL command"),
  tooBig: reply(552, "5.3.4", "Message size exceeds fixed maximum message size"),
  noValidRecipients: reply(554, "5.5.1", "No valid recipients"),
  tooManyHops: reply(554, "5.4.6", "Too many hops"),
  unsupportedParameter: (keyword: string) => reply(555, "5.5.4", `Unsupported parameter: ${keyword}`),
} satisfies Record<string, SmtpReply | ((...args: string[]) => SmtpReply)>;

/** The reply to send for a policy refusal that came without one. */
export function defaultRefusal(action: "reject" | "tempfail"): SmtpReply {
  return action === "reject"
    ? reply(550, "5.7.1", "Access denied")
    : reply(451, "4.3.0", "Temporary failure");
}
