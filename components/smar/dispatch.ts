// smar's one handler: answers smtps' policy questions (check_connect, check_mail, check_rcpt) with
// smar.verdict, qmgr's route requests with smar.route, its alias expansions of the mail it makes
// itself (qmgr.expand) with smar.expansion, and qmgrctl explain (qmgr.explain, explain.ts) with
// smar.explanation; anything else is a sender's bug, logged and
// answered rpc.failure. Each request is answered by the generation of maps current when it arrived
// (a reload installs a new one; the old one is retired once its requests are answered). Touches
// nothing itself.

import type { Handler } from "../protocol/endpoint.ts";
import { failure } from "../protocol/endpoint.ts";
import type { Message, PeerName, RouteResult, Verdict } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { expandAddress } from "./expand.ts";
import { explainEnvelope } from "./explain.ts";
import { MapTempError } from "./maps.ts";
import type { Policy } from "./policy.ts";
import { resolveRoute, type RouteDeps } from "./routes.ts";
import { answerDns } from "./stage_auth.ts";
import type { TlsRptSession } from "../mail/tlsrpt.ts";

/** The maps and policy of one configuration, with the requests still using them. */
export interface Generation {
  policy: Policy;
  routes: RouteDeps;
  /** TLS-RPT: the MTA-STS fetch failure of a domain's last lookup, taken once (the route carries it). */
  stsFailure?: (domain: string) => TlsRptSession | undefined;
  /** POSTs for qmgr (TLS-RPT reports to https: addresses), when TLS_RPT is configured. */
  post?: (url: string, contentType: string, body: string) => Promise<Message>;
  inflight: number;
  /** Set when a reload replaced this generation: closes what only it used. */
  retire: (() => void) | undefined;
}

const verdict = (v: Verdict): Message => ({ type: "smar.verdict", verdict: v });

function logVerdict(what: string, v: Verdict): Verdict {
  if (v.action !== "accept" && v.reply) {
    log.info("smar", `${what}: ${v.action} ${v.reply.code} ${v.reply.status} ${v.reply.text}`);
  }
  return v;
}

/** The handler of a working smar; `current` gives the generation of maps in use. */
export function makeHandler(current: () => Generation): Handler {
  return async (from: PeerName, body: Message): Promise<Message> => {
    const g = current();
    g.inflight++;
    try {
      return await answer(g, from, body);
    } finally {
      if (--g.inflight === 0 && g.retire) g.retire();
    }
  };
}

async function answer(state: Generation, from: PeerName, body: Message): Promise<Message> {
  switch (body.type) {
    case "smtps.check_connect":
      return verdict(
        logVerdict(`check_connect ip=${body.ip}`, await state.policy.checkConnect(body.ip, body.context)),
      );
    case "smtps.check_mail":
      return verdict(
        logVerdict(
          `check_mail ip=${body.ip} from=<${body.sender}>`,
          await state.policy.checkMail(body.ip, body.sender, body.context),
        ),
      );
    case "smtps.check_rcpt":
      return verdict(
        logVerdict(
          `check_rcpt ip=${body.ip} from=<${body.sender}> to=<${body.recipient}>`,
          await state.policy.checkRcpt(body, body.context),
        ),
      );
    case "smtps.check_auth":
      return verdict(
        logVerdict(
          `check_auth ip=${body.ip} ${body.tags.join(" ")}`,
          await state.policy.checkAuth(body.ip, body.tags, body.context),
        ),
      );
    case "smtps.dns_query":
    case "qmgr.dns_query":
      return {
        type: "smar.dns_answer",
        name: body.name,
        rrtype: body.rrtype,
        answer: await answerDns(state.policy.d.resolver, body.name, body.rrtype),
      };
    case "qmgr.route": {
      let result: RouteResult = await resolveRoute(body.domain, state.routes);
      const stsFailure = state.stsFailure?.(body.domain.toLowerCase());
      if (result.status === "ok" && stsFailure) result = { ...result, tlsRptFailure: stsFailure };
      if (result.status !== "ok") {
        log.info("smar", `route ${body.domain}: ${result.status} (${result.text})`);
      }
      return { type: "smar.route", domain: body.domain, result };
    }
    case "qmgr.expand": {
      // Only qmgr sends qmgr.* types (the endpoint checks the sender of every message).
      try {
        return {
          type: "smar.expansion",
          address: body.address,
          ...await expandAddress(state.policy, body.address),
        };
      } catch (err) {
        if (!(err instanceof MapTempError)) throw err;
        log.warn("smar", `expand <${body.address}>: ${err.message}`);
        return failure(`Expand ${body.address}: ${err.message}`);
      }
    }
    case "qmgr.explain": {
      if (from !== "qmgr") return notServed(from, body.type);
      return { type: "smar.explanation", steps: await explainEnvelope(state, body) };
    }
    case "qmgr.https_post": {
      // Only qmgr sends qmgr.* types (the endpoint checks); without TLS_RPT smar makes no POST.
      if (!state.post) return notServed(from, body.type);
      const r = await state.post(body.url, body.contentType, body.body);
      log.info("smar", `TLS-RPT POST ${body.url}: ${JSON.stringify(r).slice(0, 200)}`);
      return r;
    }
    case "smtps.conn_open":
    case "smtps.conn_close":
    case "smtps.commit":
    case "qmgr.conn_verdict":
    case "qmgr.committed":
    case "qmgr.commit_failed":
    case "qmgr.deliver":
    case "smar.verdict":
    case "smar.route":
    case "smar.expansion":
    case "smar.explanation":
    case "smar.dns_answer":
    case "smtpc.result":
    case "qmgr.disk_state":
    case "smar.https_posted":
    case "metrics.snapshot":
    case "metrics.queue_list":
    case "qmgr.snapshot":
    case "smtps.snapshot":
    case "qmgr.queue_list":
    case "rpc.failure":
      return notServed(from, body.type);
    default: {
      const never: never = body;
      return notServed(from, (never as { type: string }).type);
    }
  }
}

/** The handler of a smar whose configuration is broken: every answer says "try later". */
export function brokenHandler(reason: string): Handler {
  return (_from: PeerName, body: Message): Message => {
    const text = `Address resolver misconfigured: ${reason}`;
    switch (body.type) {
      case "smtps.check_connect":
      case "smtps.check_mail":
      case "smtps.check_rcpt":
      case "smtps.check_auth":
        return verdict({
          action: "tempfail",
          reply: { code: 451, status: "4.3.5", text: "Address resolver misconfigured" },
        });
      case "qmgr.route":
        return { type: "smar.route", domain: body.domain, result: { status: "temp", text } };
      case "qmgr.expand":
        return failure(text); // qmgr keeps the address unexpanded
      default:
        return failure(text);
    }
  };
}

function notServed(from: PeerName, type: string): Message {
  log.error("smar", `dropped ${type} from ${from}: smar does not serve it`);
  return failure(`smar does not serve ${type}`);
}
