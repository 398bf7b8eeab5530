// Protected recipients (sendmail X README 3.10.2): an access map entry `protectedrcpt:<recipient>` lists
// who may send to that recipient; anyone else gets 550 5.7.1. Its right-hand side holds restrictions
// separated by blanks or commas:
// - `from:<address>` (the sender exactly), `from:@<domain>` or `from:<domain>` (any sender there;
//   `.domain` for its subdomains): count when allow_by has `sender`;
// - `cltaddr:<A.B.C.D>` or a prefix `cltaddr:<A.B.C>` (the client address): counts with `client_ip`;
// - `list:<name>`: the sender is a member of the alias `name` (its right-hand side in the aliases map,
//   not expanded further): counts with `sender`.
// The recipient is looked up as it is (`protectedrcpt:user+detail@domain`), plus `user@domain` with
// match_type implicitly_match_detail, or in the full address order (keys.ts) with generic_lookup.
// Touches only the maps.

import type { ProtectedRecipientsConfig } from "../../config/types.ts";
import type { SmtpReply } from "../protocol/messages.ts";
import type { AccessMap } from "./access.ts";
import type { Aliases } from "./aliases.ts";
import { addressKeys, addressParts, domainKeys, ipKeys, tagged } from "./keys.ts";
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
  const sender = q.sender.toLowerCase();
  const senderDomain = addressParts(sender, delimiter).domain;
  const clientKeys = new Set(ipKeys(q.ip));
  for (const r of entry.rhs.split(/[\s,]+/).filter((x) => x !== "")) {
    const colon = r.indexOf(":");
    const kind = r.slice(0, colon).toLowerCase();
    const value = r.slice(colon + 1).toLowerCase();
    if (colon < 0 || value === "") continue;
    if (kind === "from" && bySender && sender !== "") {
      if (value === sender) return undefined;
      const domain = value.startsWith("@") ? value.slice(1) : value.includes("@") ? undefined : value;
      if (domain !== undefined && senderDomain !== "" && domainKeys(senderDomain).includes(domain)) {
        return undefined;
      }
    } else if (kind === "cltaddr" && byIp) {
      if (clientKeys.has(value)) return undefined;
    } else if (kind === "list" && bySender && aliases && sender !== "") {
      const local = addressParts(sender, delimiter).local.toLowerCase();
      const members = await aliases.members(value);
      if (members.some((m) => m === sender || (!m.includes("@") && m === local))) return undefined;
    }
  }
  return { ...REPLY.protectedRecipient };
}
