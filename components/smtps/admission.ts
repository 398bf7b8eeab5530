// Whether a new connection may begin a session: qmgr's connection limits first (concurrency and rate per
// client), then smar's connect-stage access checks. A refusal at this stage may only be 421 (try later)
// or 554 (RFC 5321 3.1), so other codes from a verdict are mapped onto those two. smar's policy state and
// a `discard` for the client come back for the session to keep.

import { connectionOpened } from "../qmgr/client.ts";
import { checkConnect } from "../smar/client.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import type { CheckContext, PolicyState } from "../protocol/messages.ts";
import { reply, type SmtpReply } from "../mail/reply.ts";
import { R } from "./replies.ts";

export interface Admission {
  /** qmgr counted the connection: it must hear connectionClosed when the session ends. */
  qmgrAccepted: boolean;
  /** What to send instead of the greeting, when the connection is refused. */
  refusal?: SmtpReply;
  /** Why, for the log. */
  reason?: string;
  /** smar's state for the next checks (Verdict.state). */
  state?: PolicyState;
  /** Every message of the session is to be accepted and dropped (access map `discard`). */
  discard?: boolean;
}

/** A refusal as it may be sent before the greeting: 421 for temporary, 554 for permanent. */
export function connectRefusal(
  r: SmtpReply | undefined,
  action: "reject" | "tempfail",
  host: string,
): SmtpReply {
  if (!r) return action === "reject" ? reply(554, "5.7.1", `${host} Access denied`) : R.unavailable(host);
  if (r.code === 421 || r.code === 554) return r;
  const temporary = r.code < 500;
  return reply(temporary ? 421 : 554, r.status || (temporary ? "4.3.0" : "5.7.1"), r.text);
}

/** Asks qmgr, then smar, whether the client at `ip` may start a session. */
export async function admit(
  ep: Endpoint,
  ip: string,
  host: string,
  context?: CheckContext,
): Promise<Admission> {
  const q = await connectionOpened(ep, ip);
  if (q.type === "rpc.failure") {
    return { qmgrAccepted: false, refusal: R.unavailable(host), reason: q.reason };
  }
  if (!q.accept) {
    return {
      qmgrAccepted: false,
      refusal: connectRefusal(q.reply, "tempfail", host),
      reason: "connection limit",
    };
  }
  const v = await checkConnect(ep, ip, undefined, context);
  if (v.action === "accept") return { qmgrAccepted: true, state: v.state, discard: v.discard };
  return { qmgrAccepted: true, refusal: connectRefusal(v.reply, v.action, host), reason: "access check" };
}
