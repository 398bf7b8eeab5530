// Alias expansion for mail qmgr makes itself (DSNs, delay notices), asked with qmgr.expand: a local
// submission, so no relaying, access map or greylisting checks, and no local-user check (an unknown
// mailbox bounces at delivery as it would for any mail). A bare name gets the hostname (`postmaster` ->
// postmaster@hostname). An address that is no alias comes back as itself; so does one whose expansion is
// refused (an `error:` entry, a loop): its delivery then fails and is reported as usual. A map that
// cannot answer throws MapTempError (qmgr then keeps the address as it was). Touches the aliases map.

import { log } from "../util/log.ts";
import type { Policy } from "./policy.ts";
import { ownersOf } from "./stage_rcpt.ts";

export interface ExpandAnswer {
  recipients: string[];
  errorsTo?: Record<string, string>;
}

/** The final addresses of `address` after aliases, with the list owner of those that have one. */
export async function expandAddress(policy: Policy, address: string): Promise<ExpandAnswer> {
  let a = address.trim().replace(/^<(.*)>$/, "$1");
  if (a !== "" && !a.includes("@")) a = `${a}@${policy.d.hostname}`;
  const aliases = policy.d.aliases;
  if (!aliases || a === "") return { recipients: [a] };
  const x = await aliases.expand(a);
  if (x.kind === "error") {
    log.warn("smar", `expand <${a}>: ${x.reply.code} ${x.reply.status} ${x.reply.text}: kept as it is`);
    return { recipients: [a] };
  }
  if (!x.expanded) return { recipients: [a] };
  const { recipients, errorsTo } = ownersOf(x.recipients);
  return { recipients, ...(errorsTo ? { errorsTo } : {}) };
}
