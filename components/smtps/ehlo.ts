// HELO and EHLO (RFC 5321 4.1.1.1): checks the client's name (strictly, as a domain or address literal,
// with the strict_ehlo_checks flag), resets the transaction, and builds the EHLO reply with the
// extensions this session is offered: PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES, DSN, CHUNKING,
// SMTPUTF8, STARTTLS (before TLS, when configured), REQUIRETLS (under TLS, RFC 8689) and AUTH (when configured, and under TLS unless plain
// text is allowed). Pure apart from the session state it sets.

import { isDomainName, parseAddressLiteral } from "../mail/address.ts";
import type { SmtpReply } from "../mail/reply.ts";
import { sessionMechanisms } from "./auth.ts";
import { R } from "./replies.ts";
import type { Session } from "./session.ts";

/** The HELO/EHLO argument to remember, or the reply refusing it. */
export function checkHelo(s: Session, arg: string, usage: string): { ok: true; value: string } | {
  ok: false;
  reply: SmtpReply;
} {
  if (arg === "") return { ok: false, reply: R.syntax(usage) };
  const [name, ...rest] = arg.split(" ");
  if (s.env.strictEhlo) {
    if (rest.length > 0) {
      return { ok: false, reply: R.badHelo("one domain name or address literal expected") };
    }
    if (!isDomainName(name) && parseAddressLiteral(name) === undefined) {
      return { ok: false, reply: R.badHelo("not a domain name or address literal") };
    }
  }
  return { ok: true, value: name };
}

/** HELO or EHLO accepted: the session knows the client's name, and any transaction is gone (4.1.4). */
export function greet(s: Session, helo: string, esmtp: boolean): void {
  s.helo = helo;
  s.esmtp = esmtp;
  s.dropTransaction();
}

/** HELP: the commands this session can use now, STARTTLS and AUTH only where EHLO would offer them. */
export function helpReply(s: Session): SmtpReply {
  const verbs = ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "HELP"];
  if (s.env.tls && !s.tls) verbs.push("STARTTLS");
  if (sessionMechanisms(s).length > 0) verbs.push("AUTH");
  return R.help(verbs);
}

/** The EHLO reply: our name, then one extension per line. */
export function ehloReply(s: Session): SmtpReply {
  const env = s.env;
  const max = env.server.max_message_size;
  const lines = [s.host, "PIPELINING"];
  if (env.eightBit) lines.push("8BITMIME");
  lines.push(max > 0 ? `SIZE ${max}` : "SIZE", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING");
  if (env.eightBit) lines.push("SMTPUTF8"); // RFC 6531 needs 8BITMIME
  if (env.tls && !s.tls) lines.push("STARTTLS");
  if (s.tls) lines.push("REQUIRETLS"); // RFC 8689 section 3: only inside TLS
  const mechanisms = sessionMechanisms(s);
  if (mechanisms.length > 0) lines.push(`AUTH ${mechanisms.join(" ")}`);
  return { code: 250, status: "", text: lines.join("\n") };
}
