// The per-recipient results of one delivery transaction as they are decided. Each recipient is decided
// once (the first decision wins); whatever is still undecided when the transaction ends becomes a
// temporary failure, so qmgr always gets one result per recipient and never a silent loss.

import type { RecipientResult } from "../protocol/messages.ts";

export type Status = RecipientResult["status"];

export class Outcome {
  readonly #results: (RecipientResult | undefined)[];

  /** `indexes` are the envelope indexes of the transaction's recipients, in RCPT order. */
  constructor(readonly indexes: number[]) {
    this.#results = indexes.map(() => undefined);
  }

  /** Decides recipient number `pos` (position in the transaction) unless it already is. */
  decide(pos: number, status: Status, reply: string): void {
    if (this.#results[pos] === undefined) this.#results[pos] = { index: this.indexes[pos], status, reply };
  }

  /** Decides every recipient still undecided. */
  decideRest(status: Status, reply: string): void {
    for (let pos = 0; pos < this.#results.length; pos++) this.decide(pos, status, reply);
  }

  isDecided(pos: number): boolean {
    return this.#results[pos] !== undefined;
  }

  /** One result per recipient in transaction order; undecided ones would be a bug, reported as temp. */
  results(): RecipientResult[] {
    return this.#results.map((r, pos) =>
      r ?? { index: this.indexes[pos], status: "temp", reply: "delivery ended without a result" }
    );
  }

  /** Counts and the most telling reply, for the log line. */
  summary(): string {
    const all = this.results();
    const count = (s: Status) => all.filter((r) => r.status === s).length;
    const telling = all.find((r) => r.status !== "sent") ?? all[0];
    return `sent=${count("sent")}, deferred=${count("temp")}, bounced=${count("perm")}` +
      (telling ? ` (${telling.reply})` : "");
  }
}
