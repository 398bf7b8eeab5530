// The connect stage (sendmail X README 3.12.2), in this order, each step able to end the stage:
// 1. `cltaddr:` the client address (keys.ts order);
// 2. when the access map holds `cltresolve:` or `cltname:` entries: the client's PTR name confirmed by
//    its A record, looked up as `cltresolve:ok|no|tempptr|tempa`, then `cltname:` in the domain order;
// 3. with the `access` flag, the DNS blacklists, asked all at once and judged in configuration order:
//    each answer address as `tag:A.B.C.D` (IPv4 order), `tag:temp` when the list could not be asked,
//    `tag:perm` when the client is not listed (NXDOMAIN). A listing without an entry does nothing.
// `relay` and `ok` end the stage (no DNS work after them), refusals are answered now or, with
// delay_checks, held in the state for RCPT. Touches the access map and the resolver.

import type { CheckContext, PolicyState, Verdict } from "../protocol/messages.ts";
import { listing, type ListingResult, resolveClient } from "./client_dns.ts";
import { domainKeys, ipKeys, tagged } from "./keys.ts";
import { applyHit } from "./outcome.ts";
import { type Policy, stageOptions } from "./policy.ts";

export async function checkConnect(policy: Policy, ip: string, ctx: CheckContext): Promise<Verdict> {
  const o = stageOptions(ctx, "connect");
  const state: PolicyState = {};
  const done = (): Verdict => ({ action: "accept", state, ...(state.discard ? { discard: true } : {}) });
  const access = policy.d.access;
  if (!access) return done();

  let r = applyHit(await access.first(tagged("cltaddr", ipKeys(ip))), state, o);
  if (r !== "continue") return r === "stop" ? done() : r;

  if (access.mayHave("cltresolve") || access.mayHave("cltname")) {
    const client = await resolveClient(policy.d.resolver, ip);
    state.resolve = client.state;
    if (client.name) state.clientName = client.name;
    r = applyHit(await access.first([`cltresolve:${client.state}`]), state, o);
    if (r !== "continue") return r === "stop" ? done() : r;
    if (client.name) {
      r = applyHit(await access.first(tagged("cltname", domainKeys(client.name))), state, o);
      if (r !== "continue") return r === "stop" ? done() : r;
    }
  }

  const lists = policy.d.dnsbl;
  if (o.antiSpam && lists.length > 0) {
    const results = await Promise.all(lists.map((bl) => listing(policy.d.resolver, ip, bl.domain)));
    for (let i = 0; i < lists.length; i++) {
      r = applyHit(await access.first(listingKeys(lists[i].tag, results[i])), state, o);
      if (r !== "continue") return r === "stop" ? done() : r;
    }
  }
  return done();
}

/** The access keys a blacklist's answer is looked up with. */
export function listingKeys(tag: string, result: ListingResult): string[] {
  switch (result.kind) {
    case "listed":
      return [...new Set(result.addresses.flatMap((a) => tagged(tag, ipKeys(a))))];
    case "temp":
      return [`${tag}:temp`];
    case "perm":
      return [`${tag}:perm`];
  }
}
