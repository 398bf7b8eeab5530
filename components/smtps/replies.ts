// Every reply smtps sends on its own account (policy replies come from smar's verdicts), in one place so
// the wording stays consistent and tests can name them. Enhanced status codes per RFC 3463 / RFC 5248;
// AUTH replies per RFC 4954, SMTPUTF8 per RFC 6531. Also soft_bounce: refusals 5yz turned into 4yz.

import { reply, type SmtpReply } from "../mail/reply.ts";

export const R = {
  greeting: (host: string) => reply(220, "", `${host} ESMTP`),
  startTls: reply(220, "2.0.0", "Ready to start TLS"),
  bye: reply(221, "2.0.0", "Bye"),
  authOk: reply(235, "2.7.0", "Authentication successful"),
  /** HELP: the commands this session is offered (ehlo.ts helpReply() decides). */
  help: (verbs: string[]) => reply(214, "2.0.0", `Commands: ${verbs.join(" ")}`),
  helo: (host: string) => reply(250, "", host),
  ok: reply(250, "2.0.0", "Ok"),
  senderOk: reply(250, "2.1.0", "Ok"),
  rcptOk: reply(250, "2.1.5", "Ok"),
  queued: (id: string) => reply(250, "2.0.0", `Ok: queued as ${id}`),
  chunkOk: (octets: string) => reply(250, "2.0.0", `Ok: ${octets} octets received`),
  vrfy: reply(252, "2.5.2", "Cannot VRFY user, but will accept message"),
  authChallenge: (base64: string) => reply(334, "", base64),
  startData: reply(354, "", "End data with <CR><LF>.<CR><LF>"),

  tooManySessions: (host: string) => reply(421, "4.3.2", `${host} Too many sessions, try again later`),
  unavailable: (host: string) => reply(421, "4.3.0", `${host} Service temporarily unavailable`),
  shuttingDown: (host: string) => reply(421, "4.3.2", `${host} Service shutting down`),
  timeout: (host: string) => reply(421, "4.4.2", `${host} Error: timeout exceeded`),
  tooManyErrors: (host: string) => reply(421, "4.7.0", `${host} Too many errors`),
  tooManyInvalidAddresses: (host: string) => reply(421, "4.7.0", `${host} Too many invalid addresses`),
  tooManyNops: (host: string) => reply(421, "4.7.0", `${host} Too many commands that do not send mail`),
  tooManyTransactions: (host: string) => reply(421, "4.7.0", `${host} Too many transactions`),
  tooManyAuthFailures: (host: string) => reply(421, "4.7.0", `${host} Too many authentication failures`),
  writeError: reply(451, "4.3.0", "Error: queue file write error"),
  tooManyRecipients: reply(452, "4.5.3", "Too many recipients"),
  diskFull: reply(452, "4.3.1", "Insufficient system storage"),
  tlsUnavailable: reply(454, "4.7.0", "TLS not available due to temporary reason"),
  authTemporaryFailure: reply(454, "4.7.0", "Temporary authentication failure"),

  unrecognized: reply(500, "5.5.1", "Command unrecognized"),
  lineTooLong: reply(500, "5.5.2", "Line too long"),
  badUtf8: reply(500, "5.5.2", "Invalid UTF-8 in command"),
  syntax: (usage: string) => reply(501, "5.5.4", `Syntax: ${usage}`),
  badParameter: (why: string) => reply(501, "5.5.4", `Bad parameter: ${why}`),
  badSender: (why: string) => reply(501, "5.1.7", `Bad sender address syntax: ${why}`),
  badRecipient: (why: string) => reply(501, "5.1.3", `Bad recipient address syntax: ${why}`),
  badHelo: (why: string) => reply(501, "5.5.2", `Invalid HELO/EHLO argument: ${why}`),
  badBase64: reply(501, "5.5.2", "Cannot decode the response"),
  authAborted: reply(501, "5.0.0", "Authentication aborted"),
  notImplemented: reply(502, "5.5.1", "Command not implemented"),
  needHelo: reply(503, "5.5.1", "Error: send HELO/EHLO first"),
  nestedMail: reply(503, "5.5.1", "Error: nested MAIL command"),
  needMail: reply(503, "5.5.1", "Error: need MAIL command"),
  needRcpt: reply(503, "5.5.1", "Error: need RCPT command"),
  dataAfterBdat: reply(503, "5.5.1", "Error: DATA after BDAT in the same transaction"),
  tlsActive: reply(503, "5.5.1", "Error: TLS already active"),
  tlsInTransaction: reply(503, "5.5.1", "Error: STARTTLS not allowed in a mail transaction"),
  alreadyAuthenticated: reply(503, "5.5.1", "Error: already authenticated"),
  authInTransaction: reply(503, "5.5.1", "Error: AUTH not allowed in a mail transaction"),
  unknownMechanism: reply(504, "5.5.4", "Unrecognized authentication type"),
  authFailed: reply(535, "5.7.8", "Authentication credentials invalid"),
  nulInContent: reply(554, "5.6.0", "Message content contains NUL characters"),
  encryptionRequired: reply(538, "5.7.11", "Encryption required for requested authentication mechanism"),
  requireTlsWithoutTls: reply(530, "5.7.10", "REQUIRETLS needs a TLS session: STARTTLS first"),
  tooBig: reply(552, "5.3.4", "Message size exceeds fixed maximum message size"),
  addressNotAllowed: (role: "sender" | "recipient", why: string) =>
    reply(553, role === "sender" ? "5.1.7" : "5.1.3", `Address not allowed: ${why}`),
  needSmtputf8: reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"),
  noValidRecipients: reply(554, "5.5.1", "No valid recipients"),
  tooManyHops: reply(554, "5.4.6", "Too many hops: mail loop"),
  bareNewline: (host: string) => reply(554, "5.5.2", `${host} Error: bare CR or LF received`),
  earlyTalker: (host: string) => reply(554, "5.5.0", `${host} Error: talked before the greeting`),
  improperPipelining: (host: string, verb: string) =>
    reply(554, "5.5.0", `${host} Error: improper command pipelining after ${verb}`),
  unsupportedParameter: (keyword: string) => reply(555, "5.5.4", `Unsupported parameter: ${keyword}`),
} satisfies Record<string, SmtpReply | ((...args: never[]) => SmtpReply)>;

/** The reply to send for a policy refusal that came without one. */
export function defaultRefusal(action: "reject" | "tempfail"): SmtpReply {
  return action === "reject"
    ? reply(550, "5.7.1", "Access denied")
    : reply(451, "4.3.0", "Temporary failure");
}

/**
 * soft_bounce: a permanent refusal (5yz, status 5.y.z) becomes the temporary 4yz (4.y.z), the same digits
 * otherwise (550 5.7.1 -> 450 4.7.1). Protocol errors (500-504: syntax, sequence, not implemented) are
 * left alone: retrying the same command cannot help, and 40z replies do not exist (RFC 5321 4.2.1).
 */
export function softBounce(r: SmtpReply): SmtpReply {
  if (r.code < 500 || r.code <= 504) return r;
  return {
    code: r.code - 100,
    status: r.status.startsWith("5.") ? `4${r.status.slice(1)}` : r.status,
    text: r.text,
  };
}
