// One mail transaction inside an SMTP session: what MAIL FROM opened and RCPT TO added, until DATA ends
// it or RSET / HELO / EHLO drops it (RFC 5321 4.1.4). Plain data; the session owns it.

import type { RecipientSpec } from "../protocol/messages.ts";

export type BodyType = "7BIT" | "8BITMIME";

export class Transaction {
  /** Canonical reverse path; "" for <>. */
  readonly sender: string;
  /** SIZE= the client announced, when it did. */
  readonly declaredSize: number | undefined;
  readonly bodyType: BodyType | undefined;
  readonly recipients: RecipientSpec[] = [];

  constructor(sender: string, declaredSize?: number, bodyType?: BodyType) {
    this.sender = sender;
    this.declaredSize = declaredSize;
    this.bodyType = bodyType;
  }

  /** Adds an accepted recipient; a repeated address is kept once. */
  addRecipient(address: string): void {
    if (!this.recipients.some((r) => r.address === address)) this.recipients.push({ address });
  }

  hasRecipient(address: string): boolean {
    return this.recipients.some((r) => r.address === address);
  }
}
