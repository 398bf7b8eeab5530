// Validation of protocol bodies where they arrive: a worker never trusts a peer. Returns a description of
// the first problem found, or undefined when the body is a well-formed Message.

import { TLSRPT_RESULTS } from "../mail/tlsrpt.ts";
import { DNS_QUERY_TYPES, type Message } from "./messages.ts";
import { TLS_LEVELS } from "../mail/tls_policy.ts";

type Check = (v: unknown) => string | undefined;

const str: Check = (v) => typeof v === "string" ? undefined : "expected a string";
const num: Check = (v) => typeof v === "number" && Number.isFinite(v) ? undefined : "expected a number";
const bool: Check = (v) => typeof v === "boolean" ? undefined : "expected a boolean";
const opt = (c: Check): Check => (v) => v === undefined ? undefined : c(v);
const oneOf = (...values: string[]): Check => (v) =>
  values.includes(v as string) ? undefined : `expected one of ${values.join(", ")}`;
const arr = (c: Check): Check => (v) => {
  if (!Array.isArray(v)) return "expected an array";
  for (let i = 0; i < v.length; i++) {
    const p = c(v[i]);
    if (p) return `[${i}]: ${p}`;
  }
  return undefined;
};
const obj = (shape: Record<string, Check>): Check => (v) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "expected an object";
  for (const [k, c] of Object.entries(shape)) {
    const p = c((v as Record<string, unknown>)[k]);
    if (p) return `${k}: ${p}`;
  }
  return undefined;
};

const reply = obj({ code: num, status: str, text: str });
const relay = obj({ name: str, address: str, port: num });
const policyState = obj({
  clientName: opt(str),
  resolve: opt(oneOf("ok", "no", "tempptr", "tempa")),
  relay: opt(bool),
  quick: opt(bool),
  whitelisted: opt(bool),
  deferred: opt(reply),
  discard: opt(bool),
});
const context = opt(obj({
  flags: opt(arr(str)),
  helo: opt(str),
  authUser: opt(str),
  cert: opt(obj({ verified: bool, issuer: str, subject: str })),
  tlsFlags: opt(arr(str)),
  tls: opt(bool),
  state: opt(policyState),
}));
/** An object whose every own value passes `c` (a map keyed by address). */
const record = (c: Check): Check => (v) => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "expected an object";
  for (const [k, x] of Object.entries(v)) {
    const p = c(x);
    if (p) return `${k}: ${p}`;
  }
  return undefined;
};
const recipient = { address: str, notify: opt(arr(str)), orcpt: opt(str), errorsTo: opt(str) };
const bodyType = opt(oneOf("7BIT", "8BITMIME", "BINARYMIME"));
const ret = opt(oneOf("FULL", "HDRS"));
const tlsRptFailure = opt(
  obj({ result: oneOf(...TLSRPT_RESULTS), mx: opt(str), ip: opt(str), reason: opt(str) }),
);
const hosts = arr(obj({ name: str, address: str }));
const accessEntry = obj({ key: str, rhs: str });
const tlsa = obj({ usage: num, selector: num, matchingType: num, data: str });
const daneLookup: Check = (v) => {
  const s = (v as { status?: unknown })?.status;
  if (s === "secure") return obj({ records: arr(tlsa) })(v);
  if (s === "temp") return obj({ reason: str })(v);
  if (s === "insecure" || s === "none") return undefined;
  return "status: expected secure, insecure, none or temp";
};
const mtaStsLookup: Check = (v) => {
  const s = (v as { status?: unknown })?.status;
  if (s === "none") return undefined;
  if (s !== "policy") return "status: expected policy or none";
  return obj({
    policy: obj({ mode: oneOf("enforce", "testing", "none"), mx: arr(str), id: opt(str), maxAge: opt(num) }),
  })(v);
};
/** The TLS facts of a route (mail/tls_policy.ts RouteTls). */
const routeTls = opt(obj({
  domain: str,
  tlsSrv: opt(accessEntry),
  tryTls: opt((v) => record(accessEntry)(v)),
  dane: opt((v) => record(daneLookup)(v)),
  mtaSts: opt(mtaStsLookup),
}));
const any: Check = () => undefined;
const histogram = (v: unknown) => {
  const p = obj({ bounds: arr(num), counts: arr(num), sum: num })(v);
  if (p) return p;
  const h = v as { bounds: number[]; counts: number[] };
  return h.counts.length === h.bounds.length + 1 ? undefined : "counts: expected one more than bounds";
};
const counts = record(num);
const queueState = obj({ messages: num, bytes: num, age: histogram, oldest: opt(num) });

const SHAPES: Record<Message["type"], Record<string, Check>> = {
  "smtps.conn_open": { ip: str },
  "smtps.conn_close": { ip: str },
  "smtps.commit": {
    envelope: obj({
      id: str,
      cdbPath: str,
      size: num,
      arrival: num,
      sender: str,
      recipients: arr(obj(recipient)),
      client: obj({ ip: str, helo: str }),
      bodyType,
      smtputf8: opt(bool),
      envid: opt(str),
      ret,
      quarantine: opt(str),
      requireTls: opt(bool),
      tlsRequiredNo: opt(bool),
    }),
  },
  "smtps.check_connect": { ip: str, context },
  "smtps.check_mail": { ip: str, sender: str, context },
  "smtps.check_rcpt": { ip: str, sender: str, recipient: str, authorized: bool, context },
  "smtps.dns_query": { name: str, rrtype: oneOf(...DNS_QUERY_TYPES) },
  "smtps.check_auth": { ip: str, stage: oneOf("mail", "data"), tags: arr(str), context },
  "qmgr.conn_verdict": { accept: bool, reply: opt(reply) },
  "qmgr.committed": { id: str },
  "qmgr.commit_failed": { id: str, reason: str },
  "qmgr.disk_state": { low: bool, free: num },
  "qmgr.route": { domain: str },
  "qmgr.expand": { address: str },
  "qmgr.explain": {
    client: str,
    sender: str,
    recipients: arr(str),
    context,
    tlsLevel: opt(str),
    authorized: opt(bool),
  },
  "qmgr.deliver": {
    ta: obj({
      taId: str,
      messageId: str,
      cdbPath: str,
      size: num,
      sender: str,
      recipients: arr(obj({ ...recipient, index: num })),
      route: obj({
        protocol: oneOf("esmtp", "lmtp"),
        port: num,
        hosts,
        tls: routeTls,
        implicitTls: opt(bool),
      }),
      bodyType,
      smtputf8: opt(bool),
      envid: opt(str),
      ret,
      requireTls: opt(bool),
      tlsRequiredNo: opt(bool),
    }),
  },
  "smar.verdict": {
    verdict: obj({
      action: oneOf("accept", "reject", "tempfail"),
      reply: opt(reply),
      state: opt(policyState),
      discard: opt(bool),
      dropRecipient: opt(bool),
      recipients: opt(arr(str)),
      errorsTo: opt(record(str)),
      dataReply: opt(reply),
    }),
  },
  "smar.route": {
    domain: str,
    result: (v) => {
      const s = (v as { status?: unknown })?.status;
      if (s === "ok") {
        return obj({
          protocol: oneOf("esmtp", "lmtp"),
          port: num,
          hosts,
          tls: routeTls,
          tlsRptFailure,
          implicitTls: opt(bool),
        })(v);
      }
      if (s === "temp" || s === "perm") return obj({ text: str })(v);
      return "status: expected ok, temp or perm";
    },
  },
  "smar.dns_answer": {
    name: str,
    rrtype: oneOf(...DNS_QUERY_TYPES),
    answer: (v) => {
      const kind = (v as { kind?: unknown })?.kind;
      if (kind === "answer") {
        const record: Check = (r) =>
          typeof r === "string" ? undefined : obj({ exchange: str, preference: num })(r);
        return obj({ records: arr(record) })(v);
      }
      if (kind === "temp") return obj({ reason: str })(v);
      if (kind === "nodata" || kind === "nxdomain") return undefined;
      return "kind: expected answer, nodata, nxdomain or temp";
    },
  },
  "smar.expansion": { address: str, recipients: arr(str), errorsTo: opt(record(str)) },
  "smar.explanation": {
    steps: arr(obj({
      stage: str,
      kind: oneOf("lookup", "dns", "greylist", "alias", "route", "tls", "note", "verdict"),
      text: str,
      map: opt(str),
      key: opt(str),
      value: (v) => v === undefined || v === null ? undefined : str(v),
      name: opt(str),
      rrtype: opt(str),
      action: opt(str),
    })),
  },
  "smtpc.result": {
    taId: str,
    relay: opt(relay),
    failedHosts: opt(arr(obj({ address: str, port: num, reason: str }))),
    dsn: opt(bool),
    tls: opt(obj({ version: str, cipher: str, verified: bool, verifyError: opt(str) })),
    tlsFailures: opt(arr(obj({ name: str, address: str, source: str, reason: str }))),
    tlsPolicy: opt(obj({
      level: oneOf(...TLS_LEVELS),
      source: oneOf("tls_srv", "dane", "mta-sts", "security_level", "try_tls", "tls-required"),
      rule: str,
      domain: opt(str),
      met: bool,
      failure: opt(str),
    })),
    results: arr(obj({
      index: num,
      status: oneOf("sent", "temp", "perm"),
      origin: oneOf("remote", "agent", "routing"),
      reply: obj({ code: opt(num), enhanced: opt(str), lines: arr(str) }),
      relay: opt(relay),
    })),
  },
  "qmgr.dns_query": { name: str, rrtype: oneOf(...DNS_QUERY_TYPES) },
  "qmgr.https_post": { url: str, contentType: str, body: str },
  "smar.https_posted": { ok: bool, status: opt(num), reason: opt(str) },
  "metrics.snapshot": {},
  "metrics.queue_list": { args: record((v) => typeof v === "string" ? undefined : num(v)) },
  "qmgr.snapshot": {
    started: num,
    counters: obj({ received: num, delivered: num, deferred: num, bounced: num, dsn: num }),
    perMinute: obj({ received: arr(num), delivered: arr(num), deferred: arr(num), bounced: arr(num) }),
    delay: obj({ sent: histogram, deferred: histogram, bounced: histogram }),
    tlsOut: counts,
    queue: obj({
      recipients: obj({ incoming: num, active: num, deferred: num, held: num }),
      states: obj({ incoming: queueState, active: queueState, deferred: queueState, hold: queueState }),
      domains: arr(obj({
        domain: str,
        recipients: num,
        messages: num,
        deferred: num,
        oldest: num,
        oldestId: str,
      })),
    }),
    down: arr(obj({ address: str, until: num, failures: num, reason: opt(str) })),
    diskFree: opt(num),
    diskLow: bool,
  },
  "smtps.snapshot": {
    started: num,
    connects: num,
    sessions: num,
    messages: counts,
    rejected: counts,
    saslFailures: counts,
    tls: counts,
    mailauth: counts,
  },
  "qmgr.queue_list": { ok: bool, result: any, error: opt(str) },
  "rpc.failure": { reason: str },
};

/** Describes what is wrong with `body`, or returns undefined when it is a valid Message. */
export function validateMessage(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return "body is not an object";
  const type = (body as { type?: unknown }).type;
  if (typeof type !== "string" || !Object.hasOwn(SHAPES, type)) return `unknown message type ${String(type)}`;
  const problem = obj(SHAPES[type as Message["type"]])(body);
  return problem ? `${type}: ${problem}` : undefined;
}
