// What an access map entry does to a check in progress (sendmail X README 3.12.2), shared by the connect,
// MAIL and RCPT stages, and the replies smar gives on its own account. Pure; touches nothing.

import type { PolicyState, SmtpReply, Verdict } from "../protocol/messages.ts";
import type { AccessHit } from "./access.ts";

export const REPLY = {
  /** `reject` (README 3.9.3.1: "same as error:550 5.7.0 Rejected."). */
  rejected: { code: 550, status: "5.7.0", text: "Rejected." },
  /** `reject` for the client: before the greeting only 554 may refuse (RFC 5321 3.1). */
  connectRejected: { code: 554, status: "5.7.0", text: "Rejected." },
  relayingDenied: { code: 550, status: "5.7.1", text: "Relay access denied" },
  badRecipient: { code: 501, status: "5.1.3", text: "Bad recipient address syntax" },
  userUnknown: { code: 550, status: "5.1.1", text: "User unknown" },
  senderUnknown: { code: 553, status: "5.1.8", text: "Domain of sender address does not exist" },
  senderTemp: { code: 451, status: "4.1.8", text: "Domain of sender address does not resolve" },
  localSenderUnknown: { code: 553, status: "5.1.0", text: "Sender address rejected: user unknown" },
  badMx: { code: 553, status: "5.7.1", text: "Domain of sender address has a forbidden mail exchanger" },
  protectedRecipient: { code: 550, status: "5.7.1", text: "Recipient is protected: sender not allowed" },
  greylisted: { code: 421, status: "4.7.0", text: "Greylisted, try again later" },
  mapTemp: { code: 451, status: "4.3.0", text: "Temporary lookup failure" },
} as const satisfies Record<string, SmtpReply>;

/** A refusal as a verdict: 5xx rejects, 4xx fails temporarily. */
export function refusal(reply: SmtpReply): Verdict {
  return { action: reply.code >= 500 ? "reject" : "tempfail", reply: { ...reply } };
}

export interface StageOptions {
  /** The smtps `access` flag: anti-spam entries (ok, reject, error, discard) count, not only relay. */
  antiSpam: boolean;
  /** delay_checks: refusals of the connect and MAIL stages are held back until RCPT (unless quick:). */
  delay: boolean;
  /** The reply `reject` gives at this stage. */
  rejectReply: SmtpReply;
  /** The reply a `reject` held back by delay_checks gives at RCPT (rejectReply when absent). */
  heldRejectReply?: SmtpReply;
  /** Whether `relay` lets the client relay here (client entries) or only accepts (from:, to:). */
  relayGrants: boolean;
}

/**
 * Applies one entry found at the connect or MAIL stage to `state`: "continue" with the next check,
 * "stop" the checks of this stage (accepted, or refused and held back), or a verdict to answer now.
 */
export function applyHit(
  hit: AccessHit | undefined,
  state: PolicyState,
  o: StageOptions,
): "continue" | "stop" | Verdict {
  if (!hit) return "continue";
  const { action, quick, reply } = hit.value;
  switch (action) {
    case "relay":
      if (o.relayGrants) state.relay = true;
      else if (!o.antiSpam) return "continue";
      if (o.antiSpam) state.whitelisted = true;
      if (quick) state.quick = true;
      return "stop";
    case "ok":
      if (!o.antiSpam) return "continue";
      state.whitelisted = true;
      if (quick) state.quick = true;
      return "stop";
    case "reject":
    case "error": {
      if (!o.antiSpam) return "continue";
      // README 3.9.3.1: quick: on an error causes an immediate rejection, delay_checks or not.
      if (!o.delay || quick) return refusal(reply ?? o.rejectReply);
      state.deferred ??= { ...(reply ?? o.heldRejectReply ?? o.rejectReply) };
      return "stop";
    }
    case "discard":
      // For the client: every transaction of the session; for the sender: this transaction.
      if (!o.antiSpam) return "continue";
      state.discard = true;
      return "stop";
    case "cont":
      return "continue";
    default: {
      const never: never = action;
      throw new TypeError(`Apply access entry: unknown action ${never}`);
    }
  }
}
