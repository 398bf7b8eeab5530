// The MAIL stage (sendmail X README 3.12.2), with the `access` flag and unless a `quick:` entry or a
// refusal held back from the connect stage already decided: `from:` the sender (keys.ts order; `<>` for
// the null sender; `relay` counts as `ok` here), then, for a sender at a local domain, that it exists
// (an alias or a local user), else that its domain is routable: the mailertable (its default entry `.`
// too), MX, or A records (553 5.1.8 when the domain does not exist or has neither, 451 4.1.8 when DNS
// cannot tell now), and with `mxbadip:` entries, that no address of its mail exchangers is listed. A
// `quick:error` (or `quick:reject`) refuses at once even with delay_checks. Touches the maps and the
// resolver.

import type { CheckContext, PolicyState, SmtpReply, Verdict } from "../protocol/messages.ts";
import type { DnsResult } from "./dns/resolver.ts";
import { parseDomain } from "./domain.ts";
import { addressKeys, addressParts, ipKeys, tagged } from "./keys.ts";
import { applyHit, refusal, REPLY } from "./outcome.ts";
import { type Policy, stageOptions } from "./policy.ts";
import { checkTlsClient } from "./tls_client.ts";

/** Most mail exchangers whose addresses are looked up for `mxbadip:`. */
const MAX_MX = 10;

export async function checkMail(
  policy: Policy,
  ip: string,
  sender: string,
  ctx: CheckContext,
): Promise<Verdict> {
  const o = stageOptions(ctx, "mail");
  const state: PolicyState = { ...ctx.state };
  const done = (): Verdict => ({ action: "accept", state, ...(state.discard ? { discard: true } : {}) });
  const refuse = (reply: SmtpReply): Verdict => {
    if (!o.delay) return refusal(reply);
    state.deferred = { ...reply };
    return done();
  };
  const { access, delimiter } = { access: policy.d.access, delimiter: policy.d.delimiter };
  // A TLS requirement is no anti-spam check: neither quick: nor delay_checks puts it off.
  if (access?.mayHave("tls_clt")) {
    const refused = await checkTlsClient(access, ip, ctx, state);
    if (refused) return refusal(refused);
  }
  if (!o.antiSpam || state.quick || state.deferred) return done();

  if (access) {
    const r = applyHit(await access.first(tagged("from", addressKeys(sender, { delimiter }))), state, o);
    if (r !== "continue") return r === "stop" ? done() : r;
  }
  if (sender === "") return done();

  const domain = parseDomain(addressParts(sender, delimiter).domain);
  if (!domain) return refuse(REPLY.senderUnknown);
  if (policy.isLocal(domain.name)) {
    return await localSenderExists(policy, sender) ? done() : refuse(REPLY.localSenderUnknown);
  }
  // README MAIL check 1: routable when "routing is specified via mailertable", its `.` entry included.
  if (domain.kind === "literal" || policy.d.mailertable?.find(domain.name, { catchAll: true })) {
    return done();
  }

  const found = await senderHosts(policy, domain.ascii);
  if (found.kind === "perm") return refuse(found.reply);
  if (found.kind === "temp") return refuse(REPLY.senderTemp);
  if (access?.mayHave("mxbadip")) {
    for (const address of found.addresses) {
      const hit = await access.first(tagged("mxbadip", ipKeys(address)));
      if (!hit) continue;
      const r = applyHit(hit, state, { ...o, rejectReply: REPLY.badMx });
      if (r !== "continue") return r === "stop" ? done() : r;
    }
  }
  return done();
}

/** Whether a sender at a local domain is an alias or a local user (true when neither map is set). */
async function localSenderExists(policy: Policy, sender: string): Promise<boolean> {
  const { aliases, localUsers, delimiter } = policy.d;
  if (!aliases && !localUsers) return true;
  if (aliases) {
    const x = await aliases.expand(sender);
    if (x.kind === "error" || x.expanded) return true;
  }
  if (!localUsers) return false;
  return await localUsers.get(addressParts(sender, delimiter).user.toLowerCase()) !== undefined;
}

type SenderHosts =
  | { kind: "ok"; addresses: string[] }
  | { kind: "temp" }
  | { kind: "perm"; reply: SmtpReply };

/** The sender domain's mail exchangers' addresses (or its own, without MX). */
async function senderHosts(policy: Policy, domain: string): Promise<SenderHosts> {
  const resolver = policy.d.resolver;
  const wantAddresses = policy.d.access?.mayHave("mxbadip") ?? false;
  const mx = await resolver.query(domain, "MX");
  if (mx.kind === "temp") return { kind: "temp" };
  if (mx.kind === "nxdomain") return { kind: "perm", reply: REPLY.senderUnknown };
  if (mx.kind === "answer") {
    const hosts = mx.records.flatMap((r) => r.type === "MX" && r.exchange !== "" ? [r.exchange] : []);
    if (hosts.length === 0) {
      return {
        kind: "perm",
        reply: { code: 550, status: "5.7.27", text: "Sender domain does not accept mail" },
      };
    }
    if (!wantAddresses) return { kind: "ok", addresses: [] };
    const answers = await Promise.all(hosts.slice(0, MAX_MX).map((h) => resolver.query(h, "A")));
    return { kind: "ok", addresses: answers.flatMap(addressesOf) };
  }
  const a = await resolver.query(domain, "A");
  if (a.kind === "temp") return { kind: "temp" };
  const addresses = addressesOf(a);
  return addresses.length > 0 ? { kind: "ok", addresses } : { kind: "perm", reply: REPLY.senderUnknown };
}

function addressesOf(r: DnsResult): string[] {
  return r.kind === "answer" ? r.records.flatMap((x) => x.type === "A" ? [x.address] : []) : [];
}
