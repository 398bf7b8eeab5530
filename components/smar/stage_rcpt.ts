// The RCPT stage (sendmail X README 3.12.2 RCPT case 1, 4.3-4.5), in this order:
// 1. relaying: a client that may relay (AUTH, a verified certificate per the TLS flags or a
//    `certissuer:`/`certsubject:` relay entry, a `relay` entry for the client) may send anywhere;
//    anyone else only to local domains (lmtp: in the mailertable, unless lmtp_does_not_imply_relaying)
//    or to recipients with a `to:` relay entry, and never with a local part that routes onward
//    (`u%ext@us`, `ext!u@us`, `"u@ext"@us`): 550 5.7.1 Relay access denied;
// 2. with the `access` flag and no `quick:` entry earlier: the `to:` entry (reject/error refuse; only
//    quick:ok / quick:relay lift a refusal held back by delay_checks, which is answered now otherwise;
//    discard drops this recipient, quick:discard the whole transaction), then protected recipients;
// 3. local recipients: aliases expanded, then each local mailbox must be a local user (550 5.1.1 when
//    the recipient itself is unknown; members of an alias that are unknown are kept and bounce later);
//    without a local users map, a local recipient must be found in the aliases map (`user: local:`);
//    a bare `postmaster` becomes postmaster@hostname and is always accepted (RFC 5321 4.5.1); members
//    of a list that has an `owner-` alias get the owner as errorsTo (aliases.ts);
// 4. greylisting with the `greylisting` flag, except for relaying clients and `ok` entries: 421 now,
//    or as the DATA reply with delay_greylisting_error_until_DATA.
// Touches the maps and the greylisting database.

import type { CheckContext, PolicyState, SmtpReply, Verdict } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { AccessHit } from "./access.ts";
import type { Expanded } from "./aliases.ts";
import { parseDomain } from "./domain.ts";
import { addressKeys, addressParts, tagged } from "./keys.ts";
import { refusal, REPLY } from "./outcome.ts";
import type { Policy } from "./policy.ts";
import { checkProtected } from "./protected.ts";

export interface RcptQuestion {
  ip: string;
  sender: string;
  recipient: string;
  /** smtps says the session may relay (AUTH with a trusted mechanism, or a verified certificate). */
  authorized: boolean;
}

/** A local part that would route the mail onward from here (percent hack, bang path, quoted address). */
export function routesOnward(local: string): boolean {
  return /[%!@]/.test(local);
}

export async function checkRcpt(policy: Policy, q: RcptQuestion, ctx: CheckContext): Promise<Verdict> {
  const flags = ctx.flags ?? [];
  const antiSpam = flags.includes("access");
  const { access, delimiter } = policy.d;
  const state: PolicyState = ctx.state ?? await policy.sessionState(q.ip);

  let rcpt = q.recipient.trim().replace(/^<(.*)>$/, "$1");
  const bare = rcpt.toLowerCase() === "postmaster";
  if (bare) rcpt = `postmaster@${policy.d.hostname}`;
  const p = addressParts(rcpt, delimiter);
  const domain = parseDomain(p.domain);
  if (!domain || p.local === "") return refusal(REPLY.badRecipient);
  const local = policy.isLocal(domain.name);
  const relayClient = q.authorized || state.relay === true || await certRelay(policy, ctx);
  const checks = antiSpam && !state.quick;

  // The to: entry decides relaying where nothing else does, and is an anti-spam check of its own.
  const localRelay = local && !flags.includes("lmtp_does_not_imply_relaying");
  let to: AccessHit | undefined;
  if (access && (checks || (!relayClient && !bare && !localRelay))) {
    to = await access.first(tagged("to", addressKeys(rcpt, { delimiter })));
  }

  if (!relayClient && !bare) {
    if (routesOnward(p.local)) return refusal(REPLY.relayingDenied);
    if (!localRelay && to?.value.action !== "relay") return refusal(REPLY.relayingDenied);
  }

  const discard = state.discard === true;
  const toOk = to?.value.action === "ok" || to?.value.action === "relay";
  const toQuick = toOk && to!.value.quick;
  if (checks) {
    const v = to?.value;
    if (v?.action === "reject" || v?.action === "error") return refusal(v.reply ?? REPLY.rejected);
    // README 3.9.3.1: only `quick:ok` / `quick:relay` for the recipient lift a held-back refusal.
    if (state.deferred && !toQuick) return refusal(state.deferred);
    if (v?.action === "discard") {
      // This recipient only, unless quick:discard (the whole transaction, README 3.9.3.1 "Discard").
      return v.quick || discard
        ? { action: "accept", discard: true }
        : { action: "accept", dropRecipient: true };
    }
    if (access && !toQuick && !bare && access.mayHave("protectedrcpt")) {
      const p = policy.d.protection;
      const refused = await checkProtected({ ...q, recipient: rcpt }, access, policy.d.aliases, p, delimiter);
      if (refused) return refusal(refused);
    }
  }

  let recipients: string[] | undefined = bare ? [rcpt] : undefined;
  let errorsTo: Record<string, string> | undefined;
  if (local || policy.d.aliases) {
    const r = await localRecipients(policy, rcpt, local, bare);
    if ("reply" in r) return refusal(r.reply);
    if (r.expanded) ({ recipients, errorsTo } = ownersOf(r.recipients));
  }

  let dataReply: SmtpReply | undefined;
  const grey = policy.d.greylist;
  if (flags.includes("greylisting") && grey && !relayClient && !toOk && !state.whitelisted && !state.quick) {
    const g = grey.check(q.ip);
    if (!g.pass) {
      if (!policy.d.quiet) {
        log.info("smar", `greylisted [${q.ip}] (${g.state}, ${Math.ceil(g.waitMs / 1000)} s to wait)`);
      }
      if (!flags.includes("delay_greylisting_error_until_data")) return refusal(REPLY.greylisted);
      dataReply = { ...REPLY.greylisted };
    }
  }
  return {
    action: "accept",
    ...(recipients ? { recipients } : {}),
    ...(errorsTo ? { errorsTo } : {}),
    ...(discard ? { discard: true } : {}),
    ...(dataReply ? { dataReply } : {}),
  };
}

/** The addresses of an expansion, and the list owner of those that have one (Verdict.errorsTo). */
export function ownersOf(
  list: Expanded[],
): { recipients: string[]; errorsTo: Record<string, string> | undefined } {
  let errorsTo: Record<string, string> | undefined;
  for (const r of list) {
    if (r.owner !== undefined) (errorsTo ??= {})[r.address] = r.owner;
  }
  return { recipients: list.map((r) => r.address), errorsTo };
}

/** The recipient's final addresses after aliases, with local mailboxes checked against the users. */
async function localRecipients(
  policy: Policy,
  rcpt: string,
  local: boolean,
  bare: boolean,
): Promise<{ recipients: Expanded[]; expanded: boolean } | { reply: SmtpReply }> {
  const { aliases, localUsers, delimiter } = policy.d;
  let list: Expanded[] = [{ address: rcpt, local }];
  let expanded = false;
  if (aliases) {
    const x = await aliases.expand(rcpt);
    if (x.kind === "error") return { reply: x.reply };
    list = x.recipients;
    expanded = x.expanded;
  }
  if (localUsers) {
    for (const r of list) {
      if (!r.local) continue;
      const user = addressParts(r.address, delimiter).user.replace(/^"(.*)"$/, "$1").toLowerCase();
      if (await localUsers.get(user) !== undefined) continue;
      if (expanded) {
        log.warn("smar", `${rcpt}: alias member ${r.address} is not a local user`);
      } else if (user !== "postmaster") {
        return { reply: { ...REPLY.userUnknown, text: `<${rcpt}>: User unknown` } };
      }
    }
  } else if (aliases && local && !expanded && !bare) {
    // No local_user_map: the aliases map lists the valid local addresses (README 4.3.2, `user: local:`).
    const user = addressParts(rcpt, delimiter).user.replace(/^"(.*)"$/, "$1").toLowerCase();
    if (user !== "postmaster") return { reply: { ...REPLY.userUnknown, text: `<${rcpt}>: User unknown` } };
  }
  return { recipients: list, expanded: expanded || bare };
}

/** Whether the client certificate lets the client relay (smtps' TLS flags, the access map). */
async function certRelay(policy: Policy, ctx: CheckContext): Promise<boolean> {
  const cert = ctx.cert;
  if (!cert?.verified) return false;
  const tls = ctx.tlsFlags ?? [];
  const checkMap = tls.includes("check_access_map_for_relaying");
  if (tls.includes("allow_relaying_if_verified") && !checkMap) return true;
  if (!checkMap || !policy.d.access) return false;
  const a = policy.d.access;
  for (const key of [`certissuer:${cert.issuer}`, `certsubject:${cert.subject}`]) {
    if ((await a.first([key]))?.value.action === "relay") return true;
  }
  return false;
}
