// The per-recipient results of one delivery transaction as they are decided. Each recipient is decided
// once (the first decision wins); whatever is still undecided when the transaction ends becomes a
// temporary failure, so qmgr always gets one result per recipient and never a silent loss. A decision is
// structured (protocol v2): the remote server's reply or the delivery agent's reason, and the relay.

import { reasonReply, replyLine } from "../mail/result.ts";
import type { RecipientResult, Relay, ResultReply } from "../protocol/messages.ts";
import { escapeControls, MAX_REPLY_TEXT, type Reply } from "./reply_reader.ts";

export type Status = RecipientResult["status"];

/** What decided a recipient: where from, the reply, and the server talked to. */
export type Decision = Omit<RecipientResult, "index" | "status">;

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: +|$)/;

/** A server's reply as a result carries it: code, enhanced status, text lines (escaped, bounded). */
export function remoteReply(reply: Reply, suffix?: string): ResultReply {
  let enhanced: string | undefined;
  const first = ENHANCED.exec(reply.lines[0]?.trim() ?? "");
  if (first && first[1][0] === String(reply.code)[0]) enhanced = first[1];
  const lines: string[] = [];
  let room = MAX_REPLY_TEXT;
  for (let line of reply.lines) {
    line = line.trim();
    if (enhanced !== undefined && line.startsWith(enhanced)) {
      const m = ENHANCED.exec(line);
      if (m && m[1] === enhanced) line = line.slice(m[0].length);
    }
    line = escapeControls(line);
    if (line === "") continue;
    if (line.length > room) {
      lines.push(`${line.slice(0, Math.max(0, room - 3))}...`);
      room = 0;
      break;
    }
    lines.push(line);
    room -= line.length + 1;
  }
  if (suffix !== undefined) lines.push(suffix);
  const r: ResultReply = { code: reply.code, lines };
  if (enhanced !== undefined) r.enhanced = enhanced;
  return r;
}

/** A decision by a server's reply. */
export function byRemote(reply: Reply, relay: Relay, suffix?: string): Decision {
  return { origin: "remote", reply: remoteReply(reply, suffix), relay };
}

/** A decision of the delivery agent (a reason; a code and enhanced status when it chose one). */
export function byAgent(text: string, relay?: Relay, code?: number, enhanced?: string): Decision {
  const d: Decision = { origin: "agent", reply: reasonReply(text, code, enhanced) };
  if (relay !== undefined) d.relay = relay;
  return d;
}

export class Outcome {
  readonly #results: (RecipientResult | undefined)[];

  /** `indexes` are the envelope indexes of the transaction's recipients, in RCPT order. */
  constructor(readonly indexes: number[]) {
    this.#results = indexes.map(() => undefined);
  }

  /** Decides recipient number `pos` (position in the transaction) unless it already is. */
  decide(pos: number, status: Status, d: Decision): void {
    if (this.#results[pos] === undefined) this.#results[pos] = { index: this.indexes[pos], status, ...d };
  }

  /** Decides every recipient still undecided. */
  decideRest(status: Status, d: Decision): void {
    for (let pos = 0; pos < this.#results.length; pos++) this.decide(pos, status, d);
  }

  isDecided(pos: number): boolean {
    return this.#results[pos] !== undefined;
  }

  /** One result per recipient in transaction order; undecided ones would be a bug, reported as temp. */
  results(): RecipientResult[] {
    return this.#results.map((r, pos) =>
      r ?? { index: this.indexes[pos], status: "temp", ...byAgent("delivery ended without a result") }
    );
  }

  /** Counts and the most telling reply, for the log line. */
  summary(): string {
    const all = this.results();
    const count = (s: Status) => all.filter((r) => r.status === s).length;
    const telling = all.find((r) => r.status !== "sent") ?? all[0];
    return `sent=${count("sent")}, deferred=${count("temp")}, bounced=${count("perm")}` +
      (telling ? ` (${replyLine(telling.reply)})` : "");
  }
}
