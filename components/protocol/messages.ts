// The typed protocol between the MTA's components. Every message body is one member of `Message`, its tag
// prefixed by the sender (`smtps.commit`, `qmgr.deliver` ...). Bodies travel inside frames (frames.ts) over
// MessagePorts the MCP wires between workers. Bump PROTOCOL_VERSION on any incompatible change.
// Receivers validate every body they get (validate.ts) and never trust a peer.

export const PROTOCOL_VERSION = 3;

import type { RouteTls, TlsLevel, TlsSource } from "../mail/tls_policy.ts";
import type { TlsRptSession } from "../mail/tlsrpt.ts";

export type ComponentName = "qmgr" | "smtps" | "smtpc" | "smar";
export const COMPONENTS: readonly ComponentName[] = ["qmgr", "smar", "smtpc", "smtps"];

/**
 * Optional services the MCP starts when configured. The lda has no peers (it is reached over LMTP, not
 * messages); metrics asks the components it reads (METRICS_PEERS) through peer ports of its own.
 */
export type ServiceName = "lda" | "metrics";
export const SERVICES: readonly ServiceName[] = ["lda", "metrics"];

/** Any worker the MCP starts: a core component or an optional service. */
export type WorkerName = ComponentName | ServiceName;

/** A worker that can be at the other end of a peer port: a component, or the metrics service. */
export type PeerName = ComponentName | "metrics";

/** The components the metrics worker is wired to (and asks for their snapshots). */
export const METRICS_PEERS: readonly ComponentName[] = ["qmgr", "smtps"];

/** A reply as the SMTP server will send it: `code status text`, e.g. 550 5.7.1 Relay access denied. */
export interface SmtpReply {
  code: number;
  /** Enhanced status code (RFC 3463), e.g. "5.7.1". */
  status: string;
  text: string;
}

/** DSN parameters of one recipient (RFC 3461). */
export interface RecipientSpec {
  address: string;
  /** NOTIFY=... values in upper case; absent when the client gave none. */
  notify?: string[];
  /** ORCPT=addr-type;xtext-decoded address. */
  orcpt?: string;
  /**
   * The list owner (`owner-list@domain`) of a recipient expanded from an alias `list` that has an
   * `owner-list` alias: its delivery uses this as the envelope sender and its DSNs go here instead of
   * to the message's sender (sendmail's owner- lists). Ignored for mail from <>.
   */
  errorsTo?: string;
}

/** The envelope smtps hands to qmgr once the content is synced in the CDB. */
export interface Envelope {
  /** Queue id, also the CDB file name (components/mail/queue_id.ts). */
  id: string;
  /** Path of the CDB file holding the content (Received: header included). */
  cdbPath: string;
  /** Content size in bytes. */
  size: number;
  /** Arrival time, ms since the epoch. */
  arrival: number;
  /** Reverse path without angle brackets; "" for the null sender <>. */
  sender: string;
  recipients: RecipientSpec[];
  client: { ip: string; helo: string };
  bodyType?: "7BIT" | "8BITMIME" | "BINARYMIME";
  smtputf8?: boolean;
  envid?: string;
  ret?: "FULL" | "HDRS";
  /** A milter quarantined the message: qmgr keeps it on hold (qmgrctl release lets it go) with this reason. */
  quarantine?: string;
  /** MAIL FROM ... REQUIRETLS (RFC 8689): relayed only over TLS that DANE or MTA-STS verifies. */
  requireTls?: boolean;
  /** The header has `TLS-Required: No` (RFC 8689 section 5), and MAIL had no REQUIRETLS. */
  tlsRequiredNo?: boolean;
}

/**
 * The address of a route host that stands for smtpc's LMTP unix socket (`LMTP_socket`), for an `lmtp:`
 * mailertable entry without a host; every other host address is an IPv4 or IPv6 address.
 */
export const LMTP_SOCKET_ADDRESS = "unix:LMTP_socket";

/** Where smar says a domain's mail goes. Hosts are in the order smtpc should try them. */
export type RouteResult =
  | {
    status: "ok";
    protocol: "esmtp" | "lmtp";
    port: number;
    hosts: { name: string; address: string }[];
    /** What smar found about the next hop's TLS (access map, DANE, MTA-STS): mail/tls_policy.ts decides. */
    tls?: RouteTls;
    /** TLS-RPT (RFC 8460): why no new MTA-STS policy could be had for the route's domain this time. */
    tlsRptFailure?: TlsRptSession;
    /** TLS from the first byte (mailertable `smtps:` / `lmtps:`, RFC 8314 style), no STARTTLS. */
    implicitTls?: boolean;
  }
  | { status: "temp"; text: string }
  | { status: "perm"; text: string };

/** A delivery transaction: one message, one destination, some of its recipients. */
export interface DeliveryTransaction {
  taId: string;
  messageId: string;
  cdbPath: string;
  size: number;
  sender: string;
  /** `index` is the recipient's position in the envelope; results refer to it. */
  recipients: (RecipientSpec & { index: number })[];
  route: {
    protocol: "esmtp" | "lmtp";
    port: number;
    hosts: { name: string; address: string }[];
    /** The route's TLS facts (RouteResult's), for smtpc's policy decision (mail/tls_policy.ts). */
    tls?: RouteTls;
    /** TLS from the first byte (RouteResult's). */
    implicitTls?: boolean;
  };
  bodyType?: "7BIT" | "8BITMIME" | "BINARYMIME";
  smtputf8?: boolean;
  envid?: string;
  ret?: "FULL" | "HDRS";
  /** MAIL FROM ... REQUIRETLS (RFC 8689): only over TLS verified by DANE or MTA-STS, passed on. */
  requireTls?: boolean;
  /** The message has `TLS-Required: No` (RFC 8689 section 5): the recipient domain's TLS policies are ignored. */
  tlsRequiredNo?: boolean;
}

/** Where a recipient's result came from: the remote server's reply, the delivery agent, or routing. */
export type ResultOrigin = "remote" | "agent" | "routing";

/**
 * A result's reply: a remote server's (its code, enhanced status when it gave one, and text lines without
 * code and enhanced status), or the reason of the delivery agent or router (its lines; a code and enhanced
 * status only when it decided one, e.g. 552 5.3.4 for a message too big for the server).
 */
export interface ResultReply {
  code?: number;
  /** RFC 3463 enhanced status code, e.g. "5.1.1". */
  enhanced?: string;
  lines: string[];
}

/** The server a result came from: its name, and the address and port connected to (port 0: a unix socket, address = path). */
export interface Relay {
  name: string;
  address: string;
  port: number;
}

export interface RecipientResult {
  index: number;
  status: "sent" | "temp" | "perm";
  origin: ResultOrigin;
  reply: ResultReply;
  /** The server talked to when the result was decided; absent when no connection was made. */
  relay?: Relay;
}

/** A host smtpc could not get through the opening of a session with (connect, greeting, EHLO, TLS). */
export interface FailedHost {
  address: string;
  port: number;
  reason: string;
}

/** The policy answer smar gives to smtps. "accept" = go on; otherwise `reply` is what smtps sends. */
export interface Verdict {
  action: "accept" | "reject" | "tempfail";
  reply?: SmtpReply;
  /** check_connect / check_mail: what smtps sends back as CheckContext.state with the next checks. */
  state?: PolicyState;
  /**
   * Accept, but deliver nothing (access map `discard`): smtps receives the message, answers 250 and drops
   * it instead of committing it; from check_connect for every message of the session, from check_mail
   * for the transaction, from check_rcpt for the transaction too (a `to:` entry `quick:discard`).
   */
  discard?: boolean;
  /**
   * check_rcpt: accept this recipient (250) but leave it out of the envelope (a `to:` entry `discard`,
   * README 3.9.3.1 "Discard"); a transaction left with no recipient is received and dropped.
   */
  dropRecipient?: boolean;
  /**
   * check_rcpt: the recipients after alias expansion, which smtps stores in the envelope in place of the
   * address it asked about (each with that RCPT's DSN parameters, ORCPT defaulting to the address
   * asked about). Aliases are expanded here, at RCPT time, so qmgr routes only final addresses.
   */
  recipients?: string[];
  /**
   * check_rcpt: for those of `recipients` expanded from a list that has an `owner-` alias, the owner's
   * address (RecipientSpec.errorsTo), keyed by recipient address.
   */
  errorsTo?: Record<string, string>;
  /** check_rcpt: the reply DATA must get instead of 354 (greylisting delayed until DATA). */
  dataReply?: SmtpReply;
}

/**
 * smar's memory of a session (from check_connect) and of a transaction (from check_mail): smar keeps no
 * per-session state, smtps keeps this and sends it back unchanged with the next checks.
 */
export interface PolicyState {
  /** The client's name, when its PTR record was confirmed by an A record. */
  clientName?: string;
  /** The outcome of the PTR and A lookups (access map `cltresolve:`). */
  resolve?: "ok" | "no" | "tempptr" | "tempa";
  /** The client may relay (an access map `relay` for the client). */
  relay?: boolean;
  /** A `quick:ok` or `quick:relay` entry matched: no more anti-spam checks (relaying is still checked). */
  quick?: boolean;
  /** An `ok` entry matched the client or the sender: exempt from greylisting. */
  whitelisted?: boolean;
  /** A refusal delay_checks held back until RCPT (from the connect or MAIL stage); only a `to:` entry
   * `quick:ok` or `quick:relay` lifts it (README 3.9.3.1). */
  deferred?: SmtpReply;
  /** The access map said `discard` for the client (every message) or the sender (this one). */
  discard?: boolean;
}

/** What smtps knows about the session beyond the client address, sent with each policy check. */
export interface CheckContext {
  /** The smtps section's flags (access, delay_checks, greylisting, delay_greylisting_error_until_data ...). */
  flags?: string[];
  /** The HELO/EHLO argument. */
  helo?: string;
  /** The user the session authenticated as (AUTH). */
  authUser?: string;
  /** The TLS client certificate; issuer and subject in the README's DN encoding (`+XX` escapes). */
  cert?: { verified: boolean; issuer: string; subject: string };
  /** The smtps section's TLS flags (allow_relaying_if_verified, check_access_map_for_relaying). */
  tlsFlags?: string[];
  /** The session is encrypted (STARTTLS or implicit TLS): for `tls_clt:` requirements. */
  tls?: boolean;
  /** Verdict.state of the previous stage (connect for MAIL, MAIL for RCPT), unchanged. */
  state?: PolicyState;
}

// ---- smtps -> qmgr
export interface SmtpsConnOpen {
  type: "smtps.conn_open";
  ip: string;
}
export interface SmtpsConnClose {
  type: "smtps.conn_close";
  ip: string;
}
export interface SmtpsCommit {
  type: "smtps.commit";
  envelope: Envelope;
}

// ---- smtps -> smar
export interface SmtpsCheckConnect {
  type: "smtps.check_connect";
  ip: string;
  context?: CheckContext;
}
export interface SmtpsCheckMail {
  type: "smtps.check_mail";
  ip: string;
  sender: string;
  context?: CheckContext;
}
export interface SmtpsCheckRcpt {
  type: "smtps.check_rcpt";
  ip: string;
  sender: string;
  recipient: string;
  /** The session is authenticated (AUTH) or has a verified client certificate. */
  authorized: boolean;
  context?: CheckContext;
}

/**
 * A DNS question smtps asks for mail authentication (SPF, DKIM, DMARC, ARC): smtps has no DNS rights,
 * smar answers from its resolver and cache with smar.dns_answer.
 */
export interface SmtpsDnsQuery {
  type: "smtps.dns_query";
  name: string;
  rrtype: DnsQueryType;
}
/**
 * The authentication results of a message (`spf:fail`, `dmarc:reject` ...) looked up in the access map
 * as tags, in the order given; smar answers smar.verdict (`stage` says which reply a refusal gets).
 */
export interface SmtpsCheckAuth {
  type: "smtps.check_auth";
  ip: string;
  stage: "mail" | "data";
  tags: string[];
  context?: CheckContext;
}

/** A DNS question of qmgr (TLS-RPT's `_smtp._tls` TXT record); smar answers smar.dns_answer. */
export interface QmgrDnsQuery {
  type: "qmgr.dns_query";
  name: string;
  rrtype: DnsQueryType;
}
/**
 * An HTTPS POST qmgr asks smar to make (a TLS-RPT report to an `https:` rua, RFC 8460 5.4): qmgr has no
 * network; smar answers smar.https_posted.
 */
export interface QmgrHttpsPost {
  type: "qmgr.https_post";
  url: string;
  contentType: string;
  /** The body, base64. */
  body: string;
}
export interface SmarHttpsPosted {
  type: "smar.https_posted";
  ok: boolean;
  /** The HTTP status, or why there was none. */
  status?: number;
  reason?: string;
}

/** The record types smar looks up for smtps. */
export type DnsQueryType = "A" | "AAAA" | "MX" | "TXT" | "PTR";
export const DNS_QUERY_TYPES: readonly DnsQueryType[] = ["A", "AAAA", "MX", "TXT", "PTR"];

/**
 * One answer of smar's resolver as smtps receives it: A/AAAA addresses, PTR names, MX hosts with their
 * preference, TXT strings (the character strings of one record joined); `temp` when DNS cannot tell now.
 */
export type DnsAnswer =
  | { kind: "answer"; records: (string | { exchange: string; preference: number })[] }
  | { kind: "nodata" }
  | { kind: "nxdomain" }
  | { kind: "temp"; reason: string };

// ---- qmgr -> smtps
export interface QmgrConnVerdict {
  type: "qmgr.conn_verdict";
  accept: boolean;
  reply?: SmtpReply;
}
export interface QmgrCommitted {
  type: "qmgr.committed";
  id: string;
}
export interface QmgrCommitFailed {
  type: "qmgr.commit_failed";
  id: string;
  reason: string;
}
/** A notice: the queue's file system is low on space (smtps answers MAIL with 452 4.3.1) or fine again. */
export interface QmgrDiskState {
  type: "qmgr.disk_state";
  low: boolean;
  /** Free bytes at the last probe. */
  free: number;
}

// ---- qmgr -> smar / smtpc
export interface QmgrRoute {
  type: "qmgr.route";
  domain: string;
}
export interface QmgrDeliver {
  type: "qmgr.deliver";
  ta: DeliveryTransaction;
}
/**
 * Expand the recipient of a message qmgr makes itself (a DSN, a delay notice): aliases only, no relay
 * or anti-spam checks (a local submission). smar answers smar.expansion.
 */
export interface QmgrExpand {
  type: "qmgr.expand";
  address: string;
}

/**
 * qmgrctl explain, passed on by qmgr: smar walks its real policy code for this envelope (connect, MAIL,
 * each RCPT, each final recipient's route) with every lookup recorded, writing nothing (greylisting is
 * only read). smar answers smar.explanation.
 */
export interface QmgrExplain {
  type: "qmgr.explain";
  client: string;
  sender: string;
  recipients: string[];
  /** The flags, TLS flags and HELO name of the smtps section the checks run as. */
  context: CheckContext;
  /** smtpc's TLS security level (the TLS step's decision starts from it). */
  tlsLevel?: string;
  /** As if the session had authenticated with a trusted mechanism (it may relay). */
  authorized?: boolean;
}

/** One step of an explanation: a lookup with its answer, a DNS answer, a decision, a note. */
export interface ExplainStep {
  /** Where in the envelope's path: "connect", "helo", "mail", "rcpt <a@b>", "route <a@b>", "tls <a@b>". */
  stage: string;
  kind: "lookup" | "dns" | "greylist" | "alias" | "route" | "tls" | "note" | "verdict";
  /** The step in words, as qmgrctl prints it. */
  text: string;
  /** lookup: the map and key asked, and its answer (null: not found). */
  map?: string;
  key?: string;
  value?: string | null;
  /** dns: the name and record type asked. */
  name?: string;
  rrtype?: string;
  /** verdict: accept, reject, tempfail. */
  action?: string;
}

// ---- smar -> *
export interface SmarExplanation {
  type: "smar.explanation";
  steps: ExplainStep[];
}
export interface SmarVerdict {
  type: "smar.verdict";
  verdict: Verdict;
}
export interface SmarRoute {
  type: "smar.route";
  domain: string;
  result: RouteResult;
}
export interface SmarDnsAnswer {
  type: "smar.dns_answer";
  name: string;
  rrtype: DnsQueryType;
  answer: DnsAnswer;
}
/** The answer to qmgr.expand: the final addresses (the address itself when it is no alias). */
export interface SmarExpansion {
  type: "smar.expansion";
  address: string;
  recipients: string[];
  /** As Verdict.errorsTo: the list owner of recipients expanded from a list that has one. */
  errorsTo?: Record<string, string>;
}

// ---- smtpc -> qmgr
export interface SmtpcResult {
  type: "smtpc.result";
  taId: string;
  /** The host that answered, when a connection was made. */
  relay?: Relay;
  /** The route's hosts tried without getting through the opening, in the order tried (qmgr marks them down). */
  failedHosts?: FailedHost[];
  /** Whether that host offered DSN (RFC 3461); when not, NOTIFY=SUCCESS is ours to answer ("relayed"). */
  dsn?: boolean;
  /** The TLS session with that host, when STARTTLS was used. */
  tls?: TlsSummary;
  /** The TLS policy that applied to that host (or to the last host tried), and whether it was met. */
  tlsPolicy?: TlsPolicyReport;
  /** Hosts whose session a TLS policy ended on the way (connected, then the requirement was not met), for TLS-RPT. */
  tlsFailures?: TlsFailure[];
  results: RecipientResult[];
}

/** The TLS requirement a delivery worked under (mail/tls_policy.ts), for qmgr's logs and TLS reports. */
export interface TlsPolicyReport {
  level: TlsLevel;
  source: TlsSource;
  /** The rule: `tls_srv:.example.com verify`, `DANE TLSA _25._tcp.mx.example.com`, `security_level may`. */
  rule: string;
  /** The next hop domain the policy is about (RouteTls.domain), when smar gave one. */
  domain?: string;
  met: boolean;
  /** Why it was not met. */
  failure?: string;
}

/** A host a TLS policy refused after connecting (smtpc.result's tlsFailures). */
export interface TlsFailure {
  name: string;
  address: string;
  source: TlsSource;
  reason: string;
}

/** A TLS session as smtpc reports it. */
export interface TlsSummary {
  /** e.g. "TLSv1.3". */
  version: string;
  /** e.g. "TLS_AES_256_GCM_SHA384". */
  cipher: string;
  /** The certificate chain verified against the trust anchors and the host name matched. */
  verified: boolean;
  /** Why it did not verify, e.g. "UNABLE_TO_VERIFY_LEAF_SIGNATURE". */
  verifyError?: string;
}

// ---- metrics -> qmgr, smtps
/** Asks a component for its counters and state now (on a scrape of /metrics or the status page). */
export interface MetricsSnapshot {
  type: "metrics.snapshot";
}
/** Asks qmgr for what `qmgrctl list` shows: the control socket's list command with these arguments. */
export interface MetricsQueueList {
  type: "metrics.queue_list";
  /** The list command's arguments (sender, recipient, domain, state, age, limit), checked by qmgr. */
  args: Record<string, string | number>;
}

/** A histogram as a component keeps it: counts per upper bound (the last bound is +Inf), sum, count. */
export interface HistogramData {
  /** Upper bounds, ascending; observations above the last land in `counts[bounds.length]`. */
  bounds: number[];
  /** Observations per bucket (not cumulative); one more entry than `bounds`. */
  counts: number[];
  sum: number;
}

/** A labelled counter's values: the label values joined by "|" in a fixed order, to the count. */
export type LabelledCounts = Record<string, number>;

/** What the queue holds in one state (incoming, active, deferred, hold). */
export interface QueueStateSnapshot {
  messages: number;
  bytes: number;
  /** Age (s since arrival) of the messages in this state. */
  age: HistogramData;
  /** Arrival of the oldest message in this state (ms since the epoch); absent when none. */
  oldest?: number;
}

/** One recipient domain of the queue: its open recipients and messages, and its oldest message. */
export interface DomainSnapshot {
  domain: string;
  recipients: number;
  messages: number;
  /** Recipients deferred at least once. */
  deferred: number;
  /** Arrival of the oldest message with an open recipient there (ms since the epoch). */
  oldest: number;
  oldestId: string;
}

/** qmgr's answer to metrics.snapshot: its counters (since it started) and the queue as it is now. */
export interface QmgrSnapshotMessage {
  type: "qmgr.snapshot";
  /** When qmgr started (ms since the epoch): a new value means its counters started again from 0. */
  started: number;
  counters: { received: number; delivered: number; deferred: number; bounced: number; dsn: number };
  /** Per-minute counts for the last 60 minutes, oldest first (the last is the current minute). */
  perMinute: { received: number[]; delivered: number[]; deferred: number[]; bounced: number[] };
  /** Delay from arrival to each recipient's delivery, deferral or bounce (s), by that status. */
  delay: { sent: HistogramData; deferred: HistogramData; bounced: HistogramData };
  /** Outgoing TLS sessions reported by smtpc, by `trust|protocol|cipher`. */
  tlsOut: LabelledCounts;
  queue: {
    /** Recipients by state (qmgrctl status's counts). */
    recipients: { incoming: number; active: number; deferred: number; held: number };
    states: Record<"incoming" | "active" | "deferred" | "hold", QueueStateSnapshot>;
    /** The domains with the most open recipients, at most 50. */
    domains: DomainSnapshot[];
  };
  /** Destinations (address:port) marked down now: until when and why. */
  down: { address: string; until: number; failures: number; reason?: string }[];
  /** The queue's free disk space (bytes) at the disk guard's last probe; absent when it does not probe. */
  diskFree?: number;
  diskLow: boolean;
}

/** smtps's answer to metrics.snapshot: its counters since it started. */
export interface SmtpsSnapshotMessage {
  type: "smtps.snapshot";
  started: number;
  /** Connections accepted (before admission checks). */
  connects: number;
  /** Sessions open now. */
  sessions: number;
  /** Messages answered 250 after DATA/BDAT, by `sasl_method` ("" without AUTH). */
  messages: LabelledCounts;
  /** Policy refusals (Postfix's `NOQUEUE: reject:`), by `stage|code|enhanced status`. */
  rejected: LabelledCounts;
  /** Failed AUTH attempts by mechanism. */
  saslFailures: LabelledCounts;
  /** TLS sessions, by `trust|protocol|cipher`. */
  tls: LabelledCounts;
  /** Mail authentication results, by `method|result` (spf, dkim, dmarc, arc). */
  mailauth: LabelledCounts;
}

/** qmgr's answer to metrics.queue_list: the list command's answer, as qmgrctl gets it. */
export interface QmgrQueueList {
  type: "qmgr.queue_list";
  ok: boolean;
  /** The list's result (`{rows, more}`) when ok. */
  result?: unknown;
  error?: string;
}

/** Sent by the endpoint layer when a request cannot be answered (peer down, timeout, handler threw). */
export interface RpcFailure {
  type: "rpc.failure";
  reason: string;
}

export type Message =
  | SmtpsConnOpen
  | SmtpsConnClose
  | SmtpsCommit
  | SmtpsCheckConnect
  | SmtpsCheckMail
  | SmtpsCheckRcpt
  | SmtpsDnsQuery
  | SmtpsCheckAuth
  | QmgrConnVerdict
  | QmgrCommitted
  | QmgrCommitFailed
  | QmgrDiskState
  | QmgrRoute
  | QmgrDeliver
  | QmgrExpand
  | QmgrExplain
  | SmarVerdict
  | SmarRoute
  | SmarExpansion
  | SmarDnsAnswer
  | SmarExplanation
  | SmtpcResult
  | QmgrDnsQuery
  | QmgrHttpsPost
  | SmarHttpsPosted
  | MetricsSnapshot
  | MetricsQueueList
  | QmgrSnapshotMessage
  | SmtpsSnapshotMessage
  | QmgrQueueList
  | RpcFailure;

export type MessageType = Message["type"];
