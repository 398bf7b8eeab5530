// smar's policy: the answers to smtps' connect, MAIL and RCPT checks, from the maps and DNS (the stages
// are in stage_connect.ts, stage_mail.ts, stage_rcpt.ts). smtps' flags decide what is checked:
// relaying, local users and aliases always; the anti-spam entries of the access map (ok, reject, error,
// discard, DNSBL, sender domains, protected recipients) only with the `access` flag; delay_checks holds
// refusals of the connect and MAIL stages back until RCPT; greylisting with the `greylisting` flag.
// A map that cannot answer (a socket map down) gives 451 4.3.0, never a 5xx. Touches what its maps,
// resolver and greylisting database touch.

import type { DnsblSpec, ProtectedRecipientsConfig } from "../../config/types.ts";
import type { CheckContext, PolicyState, Verdict } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import type { AccessMap } from "./access.ts";
import type { Aliases } from "./aliases.ts";
import type { Resolver } from "./dns/resolver.ts";
import type { Greylist } from "./greylist.ts";
import { ipKeys, tagged } from "./keys.ts";
import type { Mailertable } from "./mailertable.ts";
import { MapTempError, type SmarMap } from "./maps.ts";
import { refusal, REPLY, type StageOptions } from "./outcome.ts";
import { checkAuth } from "./stage_auth.ts";
import { checkConnect } from "./stage_connect.ts";
import { checkMail } from "./stage_mail.ts";
import { checkRcpt, type RcptQuestion } from "./stage_rcpt.ts";

export interface PolicyDeps {
  access?: AccessMap;
  mailertable?: Mailertable;
  aliases?: Aliases;
  localUsers?: SmarMap;
  resolver: Pick<Resolver, "query">;
  /** The greylisting database (qmgrctl explain hands a read-only view: Greylist.peek). */
  greylist?: Pick<Greylist, "check">;
  dnsbl: DnsblSpec[];
  protection: ProtectedRecipientsConfig;
  delimiter: string;
  /** The MTA's name: the domain of a bare `postmaster` and of bare local names in aliases. */
  hostname: string;
  /** Log no events of the checks (qmgrctl explain: nothing happened to a real client). */
  quiet?: boolean;
}

/** The flags of the asking smtps section, as a stage sees them. */
export function stageOptions(ctx: CheckContext, stage: "connect" | "mail"): StageOptions {
  const flags = ctx.flags ?? [];
  return {
    antiSpam: flags.includes("access"),
    delay: flags.includes("delay_checks"),
    rejectReply: stage === "connect" ? REPLY.connectRejected : REPLY.rejected,
    heldRejectReply: REPLY.rejected,
    relayGrants: stage === "connect",
  };
}

export class Policy {
  constructor(readonly d: PolicyDeps) {}

  /** Whether mail for `domain` is delivered here: the mailertable routes it lmtp: (not by its catch-all). */
  isLocal(domain: string): boolean {
    return this.d.mailertable?.find(domain, { catchAll: false })?.route.protocol === "lmtp";
  }

  /** The connect-stage state of a check that came without one: only whether the client may relay. */
  async sessionState(ip: string): Promise<PolicyState> {
    const hit = await this.d.access?.first(tagged("cltaddr", ipKeys(ip)));
    return hit?.value.action === "relay" ? { relay: true } : {};
  }

  checkConnect(ip: string, ctx: CheckContext = {}): Promise<Verdict> {
    return this.#guard(`check_connect ip=${ip}`, () => checkConnect(this, ip, ctx));
  }

  checkMail(ip: string, sender: string, ctx: CheckContext = {}): Promise<Verdict> {
    return this.#guard(`check_mail from=<${sender}>`, () => checkMail(this, ip, sender, ctx));
  }

  checkRcpt(q: RcptQuestion, ctx: CheckContext = {}): Promise<Verdict> {
    return this.#guard(`check_rcpt to=<${q.recipient}>`, () => checkRcpt(this, q, ctx));
  }

  checkAuth(ip: string, tags: string[], ctx: CheckContext = {}): Promise<Verdict> {
    return this.#guard(`check_auth ip=${ip}`, () => checkAuth(this, ip, tags, ctx));
  }

  async #guard(what: string, run: () => Promise<Verdict>): Promise<Verdict> {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof MapTempError)) throw err;
      log.warn("smar", `${what}: ${err.message}`);
      return refusal(REPLY.mapTemp);
    }
  }
}
