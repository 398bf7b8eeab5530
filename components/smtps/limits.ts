// The session-ending limits of an smtps section (sendmail X README 3.10): bad commands, invalid addresses
// and commands that move no mail, each per session and per transaction. Checked before every command is
// read; once one is reached the session ends with 421. A limit of 0 means no limit. Pure: reads counters.

import type { SmtpReply } from "../mail/reply.ts";
import { R } from "./replies.ts";
import type { Session } from "./session.ts";

const reached = (count: number, max: number) => max > 0 && count >= max;

/** The 421 that ends the session when one of its limits is reached, else undefined. */
export function limitReached(s: Session): SmtpReply | undefined {
  const c = s.env.server;
  const t = s.transaction;
  if (
    reached(s.badCommands, c.max_bad_commands_per_session) ||
    (t !== undefined && reached(t.badCommands, c.max_bad_commands_per_transaction))
  ) return R.tooManyErrors(s.host);
  if (
    reached(s.invalidAddresses, c.max_invalid_addresses_per_session) ||
    (t !== undefined && reached(t.invalidAddresses, c.max_invalid_addresses_per_transaction))
  ) return R.tooManyInvalidAddresses(s.host);
  if (
    t === undefined
      ? reached(s.nopCommands, c.max_nop_commands_between_transactions)
      : reached(t.nopCommands, c.max_nop_commands_in_transaction)
  ) return R.tooManyNops(s.host);
  return undefined;
}

/** Whether a new transaction would exceed max_transactions. */
export function tooManyTransactions(s: Session): boolean {
  return reached(s.transactions, s.env.server.max_transactions);
}
