// Protected recipients (sendmail X README 3.10.2): an access map entry `protectedrcpt:<recipient>` lists
// who may send to that recipient; anyone else gets 550 5.7.1. Its right-hand side holds restrictions
// separated by blanks (commas too), tried in order until one matches (sequential OR):
// - `from:<address>` (angle brackets optional): the sender; counts when allow_by has `sender`;
// - `cltaddr:A.B.C.D`: the client address; counts with `client_ip`;
// - `list:<alias>`: the sender is one of the addresses the alias `alias` (`name` or `name@domain`)
//   expands to in the aliases map, not expanded further (the list's members may post to it); counts
//   with `sender`.
// By default the matches are exact. With match_type generic_lookup (or implicitly_match_detail) the
// recipient, the sender and the client address are matched in the README's lookup order (keys.ts):
// `protectedrcpt:list3` protects list3 at any domain, `from:@domain` and `cltaddr:10` match a domain
// and a net, a sender `user+detail@d` matches `user@d` with implicitly_match_detail. Touches only the
// maps.

import type { ProtectedRecipientsConfig } from "../../config/types.ts";
import type { SmtpReply } from "../protocol/messages.ts";
import type { AccessMap } from "./access.ts";
import type { Aliases } from "./aliases.ts";
import { addressKeys, addressParts, ipKeys, tagged } from "./keys.ts";
import { REPLY } from "./outcome.ts";

export const DEFAULT_PROTECTION: ProtectedRecipientsConfig = {
  allow_by: ["sender", "client_ip"],
  match_type: [],
};

/** The keys a recipient is looked up with. */
export function protectedKeys(
  recipient: string,
  cfg: ProtectedRecipientsConfig,
  delimiter: string,
): string[] {
  if (cfg.match_type.includes("generic_lookup")) {
    return tagged(
      "protectedrcpt",
      addressKeys(recipient, {
        delimiter,
        implicitDetail: cfg.match_type.includes("implicitly_match_detail"),
      }),
    );
  }
  const keys = [recipient];
  const p = addressParts(recipient, delimiter);
  if (cfg.match_type.includes("implicitly_match_detail") && p.detail !== undefined) {
    keys.push(p.domain ? `${p.user}@${p.domain}` : p.user);
  }
  return tagged("protectedrcpt", keys);
}

/** The refusal for this recipient, or undefined when it is not protected or the sender may send. */
export async function checkProtected(
  q: { recipient: string; sender: string; ip: string },
  access: AccessMap,
  aliases: Aliases | undefined,
  cfg: ProtectedRecipientsConfig,
  delimiter: string,
): Promise<SmtpReply | undefined> {
  const entry = await access.raw(protectedKeys(q.recipient, cfg, delimiter));
  if (!entry) return undefined;
  const bySender = cfg.allow_by.includes("sender");
  const byIp = cfg.allow_by.includes("client_ip");
  const generic = cfg.match_type.includes("generic_lookup");
  const implicitDetail = cfg.match_type.includes("implicitly_match_detail");
  const sender = q.sender.toLowerCase();
  const sp = addressParts(sender, delimiter);
  const senderKeys = new Set(
    sender === ""
      ? []
      : generic
      ? addressKeys(sender, { delimiter, implicitDetail })
      : implicitDetail && sp.detail !== undefined
      ? [sender, `${sp.user}@${sp.domain}`]
      : [sender],
  );
  const clientKeys = new Set(generic ? ipKeys(q.ip) : [q.ip.toLowerCase()]);
  for (const r of entry.rhs.split(/[\s,]+/).filter((x) => x !== "")) {
    const colon = r.indexOf(":");
    const kind = r.slice(0, colon).toLowerCase();
    const value = r.slice(colon + 1).toLowerCase().replace(/^<(.*)>$/, "$1");
    if (colon < 0 || value === "") continue;
    if (kind === "from" && bySender) {
      if (senderKeys.has(value)) return undefined;
    } else if (kind === "cltaddr" && byIp) {
      if (clientKeys.has(value)) return undefined;
    } else if (kind === "list" && bySender && aliases && sender !== "") {
      const members = await aliases.members(value);
      if (members.some((m) => senderKeys.has(m))) return undefined;
    }
  }
  return { ...REPLY.protectedRecipient };
}
