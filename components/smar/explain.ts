// qmgrctl explain (qmgr.explain): every policy decision for one envelope, step by step, without mail.
// It runs smar's real code (the connect, MAIL and RCPT stages smtps asks for, in smtps' order, with the
// state each stage hands the next, then the route qmgr would ask for each final recipient) over traced
// views of the same maps, resolver and greylisting database: each access map key tried and its answer,
// the mailertable, aliases and local users lookups, every DNS answer used, the greylisting state and each
// stage's verdict are recorded as they happen; each route ends with its TLS step (the requirement
// mail/tls_policy.ts decides per host, from the facts the route carries: tls_srv:, try_tls:, DANE, MTA-STS). Nothing is written: greylisting is only read
// (Greylist.peek), no entry is created or confirmed. Touches what the policy touches, read-only.

import type {
  CheckContext,
  ExplainStep,
  PolicyState,
  QmgrExplain,
  RouteResult,
  Verdict,
} from "../protocol/messages.ts";
import { AccessMap } from "./access.ts";
import type { Generation } from "./dispatch.ts";
import type { DnsResult } from "./dns/resolver.ts";
import type { Greylist } from "./greylist.ts";
import { addressParts } from "./keys.ts";
import { Mailertable } from "./mailertable.ts";
import type { SmarMap } from "./maps.ts";
import type { MapLookup } from "../maps/load.ts";
import { Policy, type PolicyDeps } from "./policy.ts";
import { resolveRoute, type RouteDeps } from "./routes.ts";
import { tlsaLookup } from "./tlsa.ts";
import { decideTls, describeRequirement } from "../mail/tls_policy.ts";

/** Records steps under the current stage. */
class Trace {
  readonly steps: ExplainStep[] = [];
  stage = "connect";

  add(step: Omit<ExplainStep, "stage">): void {
    this.steps.push({ stage: this.stage, ...step });
  }

  lookup(map: string, key: string, value: string | undefined): void {
    this.add({
      kind: "lookup",
      map,
      key,
      value: value ?? null,
      text: `${map}: ${key} -> ${value === undefined ? "not found" : JSON.stringify(value)}`,
    });
  }
}

/** A SmarMap whose every lookup is recorded. */
function tracedMap(map: SmarMap, label: string, trace: Trace): SmarMap {
  const sync = map.getSync;
  return {
    name: map.name,
    source: map.source,
    async get(key) {
      const v = await map.get(key);
      trace.lookup(label, key, v);
      return v;
    },
    getSync: sync
      ? (key) => {
        const v = sync(key);
        trace.lookup(label, key, v);
        return v;
      }
      : undefined,
    hasPrefix(prefix) {
      const has = map.hasPrefix(prefix);
      if (has === false) {
        trace.add({ kind: "note", text: `${label}: no ${prefix} entries, that lookup is skipped` });
      }
      return has;
    },
    close: () => {},
  };
}

/** A mailertable map whose every lookup is recorded. */
function tracedLookup(map: MapLookup, trace: Trace): MapLookup {
  return {
    name: map.name,
    file: map.file,
    lookup(key) {
      const v = map.lookup(key);
      trace.lookup("mailertable", key, v);
      return v;
    },
    entries: () => map.entries(),
    close: () => {},
  };
}

/** A DNS answer in words: `mx1.example (10), mx2.example (20)`, `no such domain`, ... */
export function dnsText(r: DnsResult): string {
  switch (r.kind) {
    case "answer": {
      const parts = r.records.map((x) => {
        switch (x.type) {
          case "A":
          case "AAAA":
            return x.address;
          case "MX":
            return x.exchange === "" ? "null MX (.)" : `${x.exchange} (${x.preference})`;
          case "TXT":
            return JSON.stringify(x.text);
          case "PTR":
          case "CNAME":
            return x.target;
          case "SOA":
            return "SOA";
          case "TLSA":
            return `TLSA ${x.usage} ${x.selector} ${x.matchingType} ${x.data.slice(0, 16)}...`;
          default: {
            const never: never = x;
            return (never as { type: string }).type;
          }
        }
      });
      return parts.length > 0 ? parts.join(", ") : "an empty answer";
    }
    case "nodata":
      return "no record of that type (NODATA)";
    case "nxdomain":
      return "no such domain (NXDOMAIN)";
    case "temp":
      return `temporary failure: ${r.reason}`;
  }
}

function verdictText(v: Verdict): string {
  const reply = v.reply ? ` ${v.reply.code} ${v.reply.status} ${v.reply.text}` : "";
  const more = [
    v.discard ? "the message will be discarded" : "",
    v.dropRecipient ? "this recipient is accepted and dropped (discard)" : "",
    v.dataReply ? `DATA will be answered ${v.dataReply.code} ${v.dataReply.status} ${v.dataReply.text}` : "",
    v.state?.deferred
      ? `a refusal is held back until RCPT (delay_checks): ${v.state.deferred.code} ${v.state.deferred.status} ${v.state.deferred.text}`
      : "",
    v.state?.relay ? "the client may relay" : "",
    v.state?.quick ? "quick: later anti-spam checks are skipped" : "",
    v.state?.whitelisted ? "ok: exempt from greylisting" : "",
  ].filter((t) => t !== "");
  return `${v.action}${reply}${more.length ? ` (${more.join("; ")})` : ""}`;
}

/** What the TLS step of a route has: the route with the TLS facts smar gathered for it (tls_route.ts). */
export interface TlsExplainDeps {
  domain: string;
  route: Extract<RouteResult, { status: "ok" }>;
}

/**
 * The TLS step of a route: the facts smar gathered (DANE per MX host, MTA-STS; the tls_srv:/try_tls:
 * access lookups are in the route's steps) and, for each host, the requirement the one TLS policy
 * decision (mail/tls_policy.ts decideTls, what smtpc enforces) gives with smtpc's security_level, for a
 * message without REQUIRETLS or `TLS-Required: No`.
 */
export function tlsSteps(q: QmgrExplain, d: TlsExplainDeps): Omit<ExplainStep, "stage">[] {
  const level = (q.tlsLevel ?? "may") as Parameters<typeof decideTls>[2];
  const t = d.route.tls;
  const steps: Omit<ExplainStep, "stage">[] = [];
  for (const [host, dane] of Object.entries(t?.dane ?? {})) {
    const what = dane.status === "secure"
      ? `${dane.records.length} validated TLSA records`
      : dane.status === "temp"
      ? `lookup failed: ${dane.reason}`
      : dane.status === "insecure"
      ? "TLSA records not validated (DANE does not apply)"
      : "no TLSA records";
    steps.push({ kind: "tls", text: `DANE ${host}: ${what}` });
  }
  if (t?.mtaSts) {
    const p = t.mtaSts.status === "policy" ? t.mtaSts.policy : undefined;
    steps.push({
      kind: "tls",
      text: p
        ? `MTA-STS policy of ${d.domain}: mode ${p.mode}, mx ${p.mx.join(", ")}`
        : `MTA-STS: no policy for ${d.domain}`,
    });
  }
  for (const h of d.route.hosts) {
    const r = decideTls(t, h, level);
    steps.push({ kind: "tls", text: `${h.name}[${h.address}]: ${describeRequirement(r)}` });
  }
  return steps;
}

/** Explains `q` with the maps and resolver of generation `g`. */
export async function explainEnvelope(g: Generation, q: QmgrExplain): Promise<ExplainStep[]> {
  const trace = new Trace();
  const d = g.policy.d;
  const resolver = {
    async query(name: string, type: Parameters<PolicyDeps["resolver"]["query"]>[1]) {
      const r = await d.resolver.query(name, type);
      trace.add({ kind: "dns", name, rrtype: type, text: `DNS ${type} ${name}: ${dnsText(r)}` });
      return r;
    },
  };
  const grey = d.greylist as (Pick<Greylist, "check"> & Partial<Pick<Greylist, "peek">>) | undefined;
  const mailertable = d.mailertable ? new Mailertable(tracedLookup(d.mailertable.map, trace)) : undefined;
  const deps: PolicyDeps = {
    ...d,
    quiet: true,
    access: d.access ? new AccessMap(tracedMap(d.access.map, "access map", trace)) : undefined,
    mailertable,
    aliases: d.aliases?.withMap((m) => tracedMap(m, "aliases", trace)),
    localUsers: d.localUsers ? tracedMap(d.localUsers, "local users", trace) : undefined,
    resolver,
    greylist: grey
      ? {
        check(ip: string) {
          if (!grey.peek) throw new TypeError("Explain greylisting: the database cannot be read alone");
          const { key, ...a } = grey.peek(ip);
          const state = a.pass
            ? `${a.state}: passes`
            : `${a.state}: would be greylisted (${Math.ceil(a.waitMs / 1000)} s to wait)`;
          trace.add({
            kind: "greylist",
            key,
            text: `greylisting ${key}: ${state} (read only, nothing recorded)`,
          });
          return a;
        },
      }
      : undefined,
  };
  const policy = new Policy(deps);
  const ctx: CheckContext = { ...q.context };
  const verdict = (v: Verdict) => trace.add({ kind: "verdict", action: v.action, text: verdictText(v) });

  const auth = q.authorized ? `, authenticated${ctx.authUser ? ` as ${ctx.authUser}` : ""} (may relay)` : "";
  trace.add({
    kind: "note",
    text: `client [${q.client}]${auth}, smtps flags: ${ctx.flags?.join(", ") || "none"}`,
  });
  const connect = await policy.checkConnect(q.client, ctx);
  verdict(connect);
  if (connect.action !== "accept") {
    trace.add({ kind: "note", text: "smtps refuses the session here: nothing after it is asked" });
    return trace.steps;
  }
  let state: PolicyState | undefined = connect.state;

  trace.stage = "helo";
  trace.add({
    kind: "note",
    text: ctx.helo
      ? `HELO ${ctx.helo}: no access check at HELO/EHLO; the name goes with the later checks`
      : "no HELO name given: no access check at HELO/EHLO",
  });

  trace.stage = "mail";
  const mail = await policy.checkMail(q.client, q.sender, { ...ctx, ...(state ? { state } : {}) });
  verdict(mail);
  if (mail.action !== "accept") {
    trace.add({ kind: "note", text: "smtps refuses MAIL here: no recipient is asked" });
    return trace.steps;
  }
  state = mail.state ?? state;

  const finals: string[] = [];
  for (const recipient of q.recipients) {
    trace.stage = `rcpt <${recipient}>`;
    const v = await policy.checkRcpt(
      { ip: q.client, sender: q.sender, recipient, authorized: q.authorized === true },
      { ...ctx, ...(state ? { state } : {}) },
    );
    verdict(v);
    if (v.action !== "accept" || v.dropRecipient) continue;
    const list = v.recipients ?? [recipient];
    if (v.recipients) {
      trace.add({
        kind: "alias",
        text: `delivered as ${list.map((r) => `<${r}>`).join(", ")}${
          v.errorsTo ? ` (list owner ${[...new Set(Object.values(v.errorsTo))].join(", ")})` : ""
        }`,
      });
    }
    for (const r of list) if (!finals.includes(r)) finals.push(r);
  }

  const routed = new Set<string>();
  // The route's TLS facts through the traced access map and resolver too (tls_srv:, try_tls:, TLSA).
  const tls = g.routes.tls
    ? { ...g.routes.tls, access: deps.access, dane: g.routes.tls.dane ? tlsaLookup(resolver) : undefined }
    : undefined;
  const routeDeps: RouteDeps = { ...g.routes, resolver, mailertable, tls };
  for (const r of finals) {
    const domain = (addressParts(r, d.delimiter).domain || d.hostname).toLowerCase();
    if (routed.has(domain)) continue;
    routed.add(domain);
    trace.stage = `route ${domain}`;
    const route = await resolveRoute(domain, routeDeps);
    if (route.status === "ok") {
      const hosts = route.hosts.map((h) =>
        h.name === h.address ? `[${h.address}]` : `${h.name}[${h.address}]`
      );
      trace.add({
        kind: "route",
        text: `${route.protocol} to port ${route.port}, next hops in order: ${hosts.join(", ")}`,
      });
      trace.stage = `tls ${domain}`;
      for (const step of tlsSteps(q, { domain, route })) trace.add(step);
    } else {
      trace.add({
        kind: "route",
        text: `${route.status === "perm" ? "bounces" : "deferred"}: ${route.text}`,
      });
    }
  }
  return trace.steps;
}
