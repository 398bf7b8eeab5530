// One mail transaction inside an SMTP session: what MAIL FROM opened and RCPT TO added, until DATA or the
// last BDAT chunk ends it or RSET / HELO / EHLO drops it (RFC 5321 4.1.4), with its own counters for the
// per-transaction limits. Plain data; the session owns it.

import { isNonAscii } from "../mail/address.ts";
import type { Envelope, PolicyState, RecipientSpec, SmtpReply } from "../protocol/messages.ts";
import type { CdbFrame } from "../mail/cdb.ts";
import type { MessageFile } from "../smtp_io/message_file.ts";
import type { SpfOutcome } from "./mailauth/verify.ts";

export type BodyType = "7BIT" | "8BITMIME";

/** What MAIL FROM carried: the reverse path and its ESMTP parameters. */
export interface MailParams {
  /** Canonical reverse path; "" for <>. */
  sender: string;
  /** SIZE= the client announced (RFC 1870). */
  size?: number;
  body?: BodyType;
  /** SMTPUTF8 was given (RFC 6531): addresses and headers may hold UTF-8. */
  smtputf8?: boolean;
  /** DSN parameters (RFC 3461), xtext-decoded. */
  envid?: string;
  ret?: "FULL" | "HDRS";
  /** AUTH= (RFC 4954 5), xtext-decoded; "" for AUTH=<>. Only logged: it never grants anything. */
  auth?: string;
  /** REQUIRETLS (RFC 8689): the message must travel over verified TLS only. */
  requireTls?: boolean;
}

/** A message being received (DATA, or BDAT chunks, RFC 3030): its queue id, file and when it began. */
export interface ChunkedMessage {
  id: string;
  file: MessageFile;
  /** The queue file's framing (mail/cdb.ts): its envelope and completion mark go in at commit. */
  frame: CdbFrame;
  arrival: Date;
}

export class Transaction {
  readonly mail: MailParams;
  /** The recipients for the envelope: what RCPT accepted, after smar's alias expansion. */
  readonly recipients: RecipientSpec[] = [];
  /** The addresses RCPT accepted, as the client wrote them (canonical). */
  readonly accepted = new Set<string>();
  /** smar's state from check_mail, sent back with each check_rcpt. */
  policyState: PolicyState | undefined;
  /** smar said `discard`: the message is received, answered 250 and dropped. */
  discard = false;
  /** The reply DATA (or the first BDAT) gets instead of going on (greylisting delayed until DATA). */
  dataReply: SmtpReply | undefined;
  /** SPF as checked at MAIL (`authentication { flags = { spf } }`). */
  spf: SpfOutcome | undefined;
  /** Counters for the max_*_per_transaction / max_nop_commands_in_transaction limits. */
  badCommands = 0;
  nopCommands = 0;
  invalidAddresses = 0;
  /** Header fields a policy service said to PREPEND (raw, CRLF-terminated), written above Received:. */
  readonly prepend: string[] = [];
  /** A policy service said HOLD, or a milter quarantined the message: it is kept on hold with this reason. */
  quarantine: string | undefined;
  /** A policy service said REDIRECT: the message goes to this address only. */
  redirect: string | undefined;
  /** The policy delegation `instance` attribute: the same for every request about this message. */
  readonly instance = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
  /** The milters were sent DATA (before the 354); with BDAT they get it at the end. */
  milterDataSent = false;
  /** The milters had the whole message (end of message sent): no ABORT owed them. */
  filtered = false;
  /** The message the BDAT chunks so far began; DATA is out of sequence from then on. */
  chunks: ChunkedMessage | undefined;

  constructor(mail: MailParams) {
    this.mail = mail;
  }

  get sender(): string {
    return this.mail.sender;
  }

  /**
   * Adds an accepted recipient, or the addresses smar expanded it to (each with its DSN parameters, ORCPT
   * defaulting to the address the client gave, and its list owner from `errorsTo`, keyed by address); an
   * address already in the envelope is kept once.
   */
  addRecipient(r: RecipientSpec, expanded?: string[], errorsTo?: Record<string, string>): void {
    this.accepted.add(r.address);
    const addresses = expanded ?? [r.address];
    for (const address of addresses) {
      if (this.recipients.some((x) => x.address === address)) continue;
      const type = isNonAscii(r.address) ? "utf-8" : "rfc822";
      const orcpt = r.orcpt ?? (address !== r.address ? `${type};${r.address}` : undefined);
      const owner = errorsTo && Object.hasOwn(errorsTo, address) ? errorsTo[address] : undefined;
      this.recipients.push({
        ...r,
        address,
        ...(orcpt !== undefined ? { orcpt } : {}),
        ...(owner !== undefined ? { errorsTo: owner } : {}),
      });
    }
  }

  /** Every recipient replaced by `address` (a policy service said REDIRECT). */
  redirectTo(address: string): void {
    this.recipients.splice(0, this.recipients.length, { address });
  }

  /** Removes `address` from the envelope (a milter deleted it). */
  removeRecipient(address: string): void {
    const lower = address.toLowerCase();
    for (let i = this.recipients.length - 1; i >= 0; i--) {
      if (this.recipients[i].address.toLowerCase() === lower) this.recipients.splice(i, 1);
    }
  }

  /** True when RCPT already accepted `address` in this transaction. */
  hasRecipient(address: string): boolean {
    return this.accepted.has(address);
  }

  /** The envelope fields this transaction decides (the caller adds id, file, size, arrival, client). */
  envelopeFields(): Pick<
    Envelope,
    "sender" | "recipients" | "bodyType" | "smtputf8" | "envid" | "ret" | "requireTls"
  > {
    const m = this.mail;
    return {
      sender: m.sender,
      recipients: this.recipients.map((r) => ({ ...r })),
      ...(m.body ? { bodyType: m.body } : {}),
      ...(m.smtputf8 ? { smtputf8: true } : {}),
      ...(m.envid !== undefined ? { envid: m.envid } : {}),
      ...(m.ret ? { ret: m.ret } : {}),
      ...(m.requireTls ? { requireTls: true } : {}),
    };
  }
}
