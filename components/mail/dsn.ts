// Delivery status notifications (RFC 3464, with RFC 3461's parameters and RFC 6522's multipart/report):
// builds the text of a DSN around the original message. The DSN is
//   headers (From MAILER-DAEMON, To the original sender or list owner, Auto-Submitted: auto-replied)
//   multipart/report; report-type=delivery-status:
//     1. text/plain: what happened, for a person;
//     2. message/delivery-status: Reporting-MTA, Original-Envelope-Id, Arrival-Date, then per recipient
//        Final-Recipient, Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date,
//        Will-Retry-Until;
//     3. message/rfc822 (the whole original) or text/rfc822-headers (its header only).
// dsnHead() is everything up to the returned original, dsnTail() what follows it: the caller streams the
// original in between, so a large message is never held in memory. Without MIME the same information
// comes as plain text. Lines end in CRLF. Pure: touches nothing.

export type DsnAction = "failed" | "delayed" | "delivered" | "relayed";

export interface DsnRecipient {
  /** The recipient as we tried it (Final-Recipient). */
  address: string;
  /** ORCPT as given to us: `addr-type;address` (Original-Recipient). */
  orcpt?: string;
  action: DsnAction;
  /** Enhanced status code (RFC 3463), e.g. 5.1.1. */
  status: string;
  /** The host that answered, as a DNS name (Remote-MTA). */
  remoteMta?: string;
  /** The remote server's reply, e.g. "550 5.1.1 No such user" (Diagnostic-Code: smtp). */
  diagnostic?: string;
  /** Our own reason when no server answered (the text part only). */
  reason?: string;
  lastAttempt?: number;
  /** Delayed recipients: until when delivery will be retried. */
  willRetryUntil?: number;
}

export interface DsnReport {
  /** Our host name (Reporting-MTA, From: MAILER-DAEMON@...). */
  reportingMta: string;
  /** The original message's queue id. */
  queueId: string;
  envid?: string;
  arrival: number;
  /** When the DSN is made (Date:). */
  date: number;
  /** Who gets the DSN: the original sender, the list owner (owner-list@domain), or postmaster. */
  to: string;
  recipients: DsnRecipient[];
  /** Return the whole original or its header. */
  returns: "full" | "headers";
  /** multipart/report (RFC 3464) rather than plain text. */
  mime: boolean;
  boundary: string;
  messageId: string;
}

const CRLF = "\r\n";

/** A date as RFC 5322 writes it, in UTC: `Tue, 14 Nov 2023 22:13:20 +0000`. */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/ GMT$/, " +0000");
}

/** The reason recorded for a recipient that stayed in the queue past queue_return_timeout (DSN 4.4.7). */
export const EXPIRED = "delivery time expired";

const UNITS: [name: string, ms: number][] = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1_000],
];

/**
 * A duration for people, in its largest whole unit, rounded down: `5 days`, `1 hour`, `30 minutes`,
 * `1 day 6 hours` (the next unit too when the first is below 10 and the rest is not 0).
 */
export function describeDuration(ms: number): string {
  const name = (n: number, unit: string) => `${n} ${unit}${n === 1 ? "" : "s"}`;
  const left = Math.max(0, ms);
  for (let i = 0; i < UNITS.length; i++) {
    const [unit, size] = UNITS[i];
    const n = Math.floor(left / size);
    if (n === 0 && i < UNITS.length - 1) continue;
    const next = UNITS[i + 1];
    const rest = next && n < 10 ? Math.floor((left - n * size) / next[1]) : 0;
    return rest > 0 ? `${name(n, unit)} ${name(rest, next[0])}` : name(n, unit);
  }
  return "0 seconds";
}

/** One line of printable text: line breaks and controls become spaces, long text is cut. */
function oneLine(text: string, max = 900): string {
  // deno-lint-ignore no-control-regex
  const flat = text.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

/** `type; address` for Final-Recipient / Original-Recipient (utf-8 for a non-ASCII address, RFC 6533). */
function typedAddress(address: string): string {
  // deno-lint-ignore no-control-regex
  return `${/^[\x00-\x7f]*$/.test(address) ? "rfc822" : "utf-8"}; ${oneLine(address, 500)}`;
}

function originalRecipient(orcpt: string): string {
  const semi = orcpt.indexOf(";");
  if (semi < 0) return typedAddress(orcpt);
  return `${orcpt.slice(0, semi).trim()}; ${oneLine(orcpt.slice(semi + 1), 500)}`;
}

/** The kind of notice: the most severe action among the recipients. */
export function dsnKind(r: DsnReport): DsnAction {
  const actions = r.recipients.map((x) => x.action);
  for (const a of ["failed", "delayed", "relayed", "delivered"] as const) if (actions.includes(a)) return a;
  return "failed";
}

const SUBJECT: Record<DsnAction, string> = {
  failed: "Undelivered Mail Returned to Sender",
  delayed: "Delayed Mail (still being retried)",
  relayed: "Successful Mail Delivery Report",
  delivered: "Successful Mail Delivery Report",
};

const RETURNED: Record<DsnAction, string> = {
  failed: "Undelivered Message",
  delayed: "Delayed Message",
  relayed: "Delivered Message",
  delivered: "Delivered Message",
};

/** The text for a person: what happened to which recipient. */
function humanText(r: DsnReport): string {
  const kind = dsnKind(r);
  const lines = [`This is the mail system at host ${r.reportingMta}.`, ""];
  if (kind === "failed") {
    lines.push(
      "I'm sorry to have to inform you that your message could not",
      "be delivered to one or more recipients. It's attached below.",
      "",
      "For further assistance, please send mail to postmaster.",
    );
  } else if (kind === "delayed") {
    lines.push(
      "####################################################################",
      "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
      "####################################################################",
      "",
      `Your message could not be delivered for more than ${describeDuration(r.date - r.arrival)}.`,
      "It will be retried until it is too old; you will be told if it fails.",
    );
  } else {
    lines.push(
      "Your message was successfully delivered to the destination(s)",
      "listed below. If the message was delivered to a mailbox you will",
      "receive no further notifications. Otherwise you may still receive",
      "notifications of mail delivery errors from other systems.",
    );
  }
  lines.push("");
  for (const x of r.recipients) {
    const why = x.reason?.startsWith(EXPIRED) // it names how long and the last error itself
      ? `${oneLine(x.reason)}${x.remoteMta ? ` (from ${x.remoteMta})` : ""}`
      : x.remoteMta && x.diagnostic
      ? `host ${x.remoteMta} said: ${oneLine(x.diagnostic)}`
      : oneLine(x.reason ?? x.diagnostic ?? `${x.action} (${x.status})`);
    lines.push(`<${oneLine(x.address, 500)}>: ${why}`, "");
  }
  return lines.join(CRLF);
}

/** The message/delivery-status body: per-message fields, then one block per recipient. */
export function deliveryStatus(r: DsnReport): string {
  const fields = [`Reporting-MTA: dns; ${r.reportingMta}`, `X-Smx-Queue-ID: ${r.queueId}`];
  if (r.envid !== undefined) fields.push(`Original-Envelope-Id: ${oneLine(r.envid, 200)}`);
  fields.push(`Arrival-Date: ${rfc5322Date(r.arrival)}`);
  const blocks = [fields.join(CRLF)];
  for (const x of r.recipients) {
    const f = [`Final-Recipient: ${typedAddress(x.address)}`];
    if (x.orcpt !== undefined) f.push(`Original-Recipient: ${originalRecipient(x.orcpt)}`);
    f.push(`Action: ${x.action}`, `Status: ${x.status}`);
    if (x.remoteMta) f.push(`Remote-MTA: dns; ${oneLine(x.remoteMta, 255)}`);
    if (x.diagnostic) f.push(`Diagnostic-Code: smtp; ${oneLine(x.diagnostic)}`);
    if (x.lastAttempt !== undefined) f.push(`Last-Attempt-Date: ${rfc5322Date(x.lastAttempt)}`);
    if (x.willRetryUntil !== undefined) f.push(`Will-Retry-Until: ${rfc5322Date(x.willRetryUntil)}`);
    blocks.push(f.join(CRLF));
  }
  return blocks.join(CRLF + CRLF) + CRLF;
}

/** Everything before the returned original (which the caller appends, then dsnTail()). */
export function dsnHead(r: DsnReport): string {
  const kind = dsnKind(r);
  const headers = [
    `Date: ${rfc5322Date(r.date)}`,
    `From: Mail Delivery System <MAILER-DAEMON@${r.reportingMta}>`,
    `Subject: ${SUBJECT[kind]}`,
    `To: <${oneLine(r.to, 500)}>`,
    `Message-ID: <${r.messageId}>`,
    "Auto-Submitted: auto-replied",
  ];
  const returned = RETURNED[kind] + (r.returns === "headers" ? " Headers" : "");
  if (!r.mime) {
    return [
      ...headers,
      "",
      humanText(r),
      "--- Delivery report ---",
      "",
      deliveryStatus(r),
      `--- ${returned} ---`,
      "",
      "",
    ].join(CRLF);
  }
  const b = r.boundary;
  return [
    ...headers,
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF}\tboundary="${b}"`,
    "",
    "This is a MIME-encapsulated message.",
    "",
    `--${b}`,
    "Content-Description: Notification",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    humanText(r),
    `--${b}`,
    "Content-Description: Delivery report",
    "Content-Type: message/delivery-status",
    "",
    deliveryStatus(r),
    `--${b}`,
    `Content-Description: ${returned}`,
    `Content-Type: ${r.returns === "full" ? "message/rfc822" : "text/rfc822-headers"}`,
    "",
    "",
  ].join(CRLF);
}

/** What follows the returned original (which must end in CRLF). */
export function dsnTail(r: DsnReport): string {
  return r.mime ? `${CRLF}--${r.boundary}--${CRLF}` : "";
}
