// The dialogue of one delivery transaction on a connection that has been greeted with 2xx: EHLO (HELO
// on 5xx) or LHLO, MAIL FROM, RCPT TO per recipient, DATA and the content, then the final reply (ESMTP:
// one for all; LMTP, RFC 2033: one per accepted recipient, in RCPT order). With PIPELINING, MAIL, every
// RCPT and DATA leave in one write and the replies are read in order. Each reply decides recipients in
// the Outcome: 2xx goes on, 4xx is temp, 5xx is perm. A connection that breaks, times out or speaks
// garbage leaves every undecided recipient temp. Reads the CDB file it is handed; writes nothing.

import type { DeliveryTransaction } from "../protocol/messages.ts";
import {
  addressProblem,
  type Extensions,
  mailCommand,
  needsUtf8,
  parseExtensions,
  rcptCommand,
  sizeLimit,
} from "./commands.ts";
import { sendContent } from "./content.ts";
import type { Outcome, Status } from "./outcome.ts";
import { escapeControls, type Reply, replyClass, replyText } from "./reply_reader.ts";
import { ioMessage, type Wire, WireError } from "./wire.ts";

export interface SessionParams {
  wire: Wire;
  ta: DeliveryTransaction;
  /** The open CDB file, positioned at the start of the content. */
  content: { read(p: Uint8Array): Promise<number | null> };
  relay: string;
  /** Our name in EHLO/LHLO. */
  hostname: string;
  outcome: Outcome;
}

/** The failure status a reply means, or undefined for success (2xx). */
function failureOf(reply: Reply): Status | undefined {
  const c = replyClass(reply);
  return c === 2 ? undefined : c === 5 ? "perm" : "temp";
}

export class Session {
  #stage = "sending EHLO";
  #afterDot = false;
  readonly lmtp: boolean;

  constructor(readonly p: SessionParams) {
    this.lmtp = p.ta.route.protocol === "lmtp";
  }

  /** Runs the dialogue; resolves true when the connection is fit for a polite QUIT. Never rejects on I/O. */
  async run(): Promise<boolean> {
    try {
      return await this.#dialogue();
    } catch (err) {
      const why = err instanceof WireError ? this.#describe(err) : this.#describeOther(err);
      this.p.outcome.decideRest("temp", why);
      this.p.wire.close();
      return false;
    }
  }

  async #dialogue(): Promise<boolean> {
    const { ta, outcome, relay } = this.p;
    const exts = await this.#hello();
    if (!exts) return true;

    const limit = sizeLimit(exts);
    if (limit > 0 && ta.size > limit) {
      outcome.decideRest("perm", `552 5.3.4 message too big for ${relay}`);
      return true;
    }
    if (ta.smtputf8 && needsUtf8(ta) && !exts.has("SMTPUTF8")) {
      outcome.decideRest("perm", `553 5.6.7 SMTPUTF8 is required but not supported by ${relay}`);
      return true;
    }
    const senderProblem = addressProblem(ta.sender);
    if (senderProblem) {
      outcome.decideRest("perm", `501 5.1.7 invalid sender address: ${senderProblem}`);
      return true;
    }
    ta.recipients.forEach((r, pos) => {
      const problem = addressProblem(r.address);
      if (problem) outcome.decide(pos, "perm", `501 5.1.3 invalid recipient address: ${problem}`);
    });
    const sendable = ta.recipients.map((_, pos) => pos).filter((pos) => !outcome.isDecided(pos));
    if (sendable.length === 0) return true;

    const pipelining = exts.has("PIPELINING");
    const mail = mailCommand(ta, exts);
    const rcpts = sendable.map((pos) => rcptCommand(ta.recipients[pos], exts));
    const { accepted, dataReply } = pipelining
      ? await this.#envelopePipelined(mail, rcpts, sendable)
      : await this.#envelopeStepwise(mail, rcpts, sendable);
    if (accepted.length === 0) {
      // A server that said 354 anyway waits for content we will not send: drop the connection.
      return dataReply?.code !== 354;
    }

    let data = dataReply;
    if (!data) {
      this.#stage = "sending DATA";
      await this.p.wire.write("DATA\r\n");
      data = await this.p.wire.readReply();
    }
    if (data.code !== 354) {
      const text = replyText(data);
      for (const pos of accepted) outcome.decide(pos, failureOf(data) ?? "temp", text);
      return true;
    }
    await this.#content();
    await this.#finalReplies(accepted);
    return true;
  }

  /** EHLO/LHLO (HELO after a 5xx to EHLO); the extensions, or undefined when the server refused us. */
  async #hello(): Promise<Extensions | undefined> {
    const { wire, hostname, outcome } = this.p;
    const verb = this.lmtp ? "LHLO" : "EHLO";
    this.#stage = `sending ${verb}`;
    await wire.write(`${verb} ${hostname}\r\n`);
    let reply = await wire.readReply();
    if (replyClass(reply) === 2) return parseExtensions(reply);
    if (!this.lmtp && replyClass(reply) === 5) {
      this.#stage = "sending HELO";
      await wire.write(`HELO ${hostname}\r\n`);
      reply = await wire.readReply();
      if (replyClass(reply) === 2) return new Map();
    }
    outcome.decideRest(failureOf(reply) ?? "temp", replyText(reply));
    return undefined;
  }

  async #envelopePipelined(mail: string, rcpts: string[], positions: number[]) {
    const { wire } = this.p;
    this.#stage = "sending MAIL FROM";
    await wire.write(mail + rcpts.join("") + "DATA\r\n");
    const mailReply = await wire.readReply();
    const replies: Reply[] = [];
    this.#stage = "sending RCPT TO";
    for (const _ of rcpts) replies.push(await wire.readReply());
    this.#stage = "sending DATA";
    const dataReply = await wire.readReply();
    if (!this.#mailAccepted(mailReply)) return { accepted: [], dataReply };
    return { accepted: this.#decideRcpts(positions, replies), dataReply };
  }

  async #envelopeStepwise(mail: string, rcpts: string[], positions: number[]) {
    const { wire } = this.p;
    this.#stage = "sending MAIL FROM";
    await wire.write(mail);
    if (!this.#mailAccepted(await wire.readReply())) return { accepted: [], dataReply: undefined };
    this.#stage = "sending RCPT TO";
    const replies: Reply[] = [];
    for (const rcpt of rcpts) {
      await wire.write(rcpt);
      replies.push(await wire.readReply());
    }
    return { accepted: this.#decideRcpts(positions, replies), dataReply: undefined };
  }

  #mailAccepted(reply: Reply): boolean {
    const failed = failureOf(reply);
    if (failed) this.p.outcome.decideRest(failed, replyText(reply));
    return !failed;
  }

  /** Decides refused recipients; returns the positions of the accepted ones, in RCPT order. */
  #decideRcpts(positions: number[], replies: Reply[]): number[] {
    const accepted: number[] = [];
    positions.forEach((pos, i) => {
      const failed = failureOf(replies[i]);
      if (failed) this.p.outcome.decide(pos, failed, replyText(replies[i]));
      else accepted.push(pos);
    });
    return accepted;
  }

  async #content(): Promise<void> {
    const { wire, content } = this.p;
    this.#stage = "sending message content";
    await sendContent(content, (bytes) => wire.write(bytes));
    this.#afterDot = true;
    this.#stage = "waiting for the reply to end of data";
  }

  async #finalReplies(accepted: number[]): Promise<void> {
    const { wire, outcome } = this.p;
    const decideBy = (pos: number, reply: Reply) =>
      outcome.decide(pos, failureOf(reply) ?? "sent", replyText(reply));
    if (!this.lmtp) {
      const reply = await wire.readReply();
      for (const pos of accepted) decideBy(pos, reply);
      return;
    }
    for (const pos of accepted) decideBy(pos, await wire.readReply());
  }

  #describe(err: WireError): string {
    const { relay } = this.p;
    const dup = this.#afterDot ? " -- message may be sent more than once" : "";
    const detail = escapeControls(err.message);
    switch (err.kind) {
      case "timeout":
        return `conversation with ${relay} timed out while ${this.#stage}${dup}`;
      case "closed":
        return `lost connection with ${relay} while ${this.#stage}: ${detail}${dup}`;
      case "protocol":
        return `protocol error with ${relay} while ${this.#stage}: ${detail}${dup}`;
      case "aborted":
        return `delivery interrupted while ${this.#stage}: ${detail}${dup}`;
      default: {
        const never: never = err.kind;
        return `delivery failed: ${never}`;
      }
    }
  }

  /** A failure that is not the connection's: reading the CDB file, or a bug. */
  #describeOther(err: unknown): string {
    if (this.#stage === "sending message content") return `read message content: ${ioMessage(err)}`;
    return `delivery failed while ${this.#stage}: ${ioMessage(err)}`;
  }
}
