// What smtps tells smar about a session with each policy check (protocol CheckContext): the section's
// flags and TLS flags, the HELO name, the AUTH user, the client certificate (issuer and subject in the
// DN encoding of tls.ts), and smar's own state from the previous stage, which smar keeps nowhere else
// (connect for MAIL, MAIL for RCPT). Pure: reads the session.

import type { CheckContext, PolicyState } from "../protocol/messages.ts";
import type { Session } from "./session.ts";

/** The context of a check made now in session `s`, carrying smar's `state` from the previous stage. */
export function checkContext(s: Session, state?: PolicyState): CheckContext {
  const server = s.env.server;
  const c: CheckContext = { flags: server.flags };
  if (s.helo) c.helo = s.helo;
  if (s.auth) c.authUser = s.auth.user;
  const tls = s.tls;
  if (tls) c.tls = true;
  if (tls?.issuer !== undefined && tls.subject !== undefined) {
    c.cert = { verified: tls.verified, issuer: tls.issuer, subject: tls.subject };
  }
  if (server.tls) c.tlsFlags = server.tls.flags;
  if (state) c.state = state;
  return c;
}
