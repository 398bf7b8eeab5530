// One mail transaction on a Link (link.ts), for some of a delivery's recipients: MAIL FROM, RCPT TO per
// recipient, DATA and the content, then the final reply (ESMTP: one for all; LMTP, RFC 2033: one per
// accepted recipient, in RCPT order). With PIPELINING, MAIL, every RCPT and DATA leave in one write and
// the replies are read in order. Each reply decides recipients in the Outcome: 2xx goes on, 4xx is temp,
// 5xx is perm; a 421 anywhere ends the session (temp). A connection that breaks, times out or speaks
// garbage leaves every undecided recipient of the transaction temp. Recipients refused with 452 (too many
// recipients) while others were accepted are handed back for a next transaction on the same link. A reused
// link that turns out dead before its MAIL got a reply is reported `stale`, nothing decided, so the
// delivery can go again on a fresh connection. Each step has its RFC 5321 deadline (timeouts.ts). Reads
// the CDB file it is handed; writes nothing.

import type { DeliveryTransaction } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { addressProblem, mailCommand, needsUtf8, rcptCommand, sizeLimit } from "./commands.ts";
import { sendContent } from "./content.ts";
import type { Link } from "./link.ts";
import { byAgent, byRemote, type Decision, type Outcome, type Status } from "./outcome.ts";
import { escapeControls, type Reply, replyClass } from "./reply_reader.ts";
import { ioMessage, WireError } from "./wire.ts";

export interface TransactionParams {
  link: Link;
  ta: DeliveryTransaction;
  /** Positions (in ta.recipients) this transaction carries, all undecided, in RCPT order. */
  positions: number[];
  /** The open CDB file, positioned at the start of the content. */
  content: { read(p: Uint8Array): Promise<number | null> };
  outcome: Outcome;
  /** The link came from the connection cache. */
  reused: boolean;
}

export interface TransactionResult {
  /** The link can carry another transaction (after a RSET when link.needsRset). */
  fit: boolean;
  /** A reused link was dead before anything was decided: go again on a fresh connection. */
  stale: boolean;
  /** Recipients refused with 452 while others were accepted: for a next transaction. */
  retry: number[];
}

/** The failure status a reply means, or undefined for success (2xx). */
function failureOf(reply: Reply): Status | undefined {
  const c = replyClass(reply);
  return c === 2 ? undefined : c === 5 ? "perm" : "temp";
}

class Stale extends Error {}
class Closing extends Error {}

export class Transaction {
  #stage = "sending MAIL FROM";
  #afterDot = false;
  #mailReplied = false;
  #retry: number[] = [];

  constructor(readonly p: TransactionParams) {}

  /** Runs the transaction; never rejects on I/O. */
  async run(): Promise<TransactionResult> {
    const { link } = this.p;
    link.transactions++;
    try {
      const fit = await this.#dialogue();
      return { fit, stale: false, retry: this.#retry };
    } catch (err) {
      link.close();
      if (err instanceof Stale) return { fit: false, stale: true, retry: [] };
      if (!(err instanceof Closing)) {
        const why = err instanceof WireError ? this.#describe(err) : this.#describeOther(err);
        if (this.p.reused && !this.#mailReplied && err instanceof WireError && err.kind === "closed") {
          return { fit: false, stale: true, retry: [] };
        }
        this.#rest("temp", byAgent(why, link.server));
      }
      return { fit: false, stale: false, retry: [] };
    }
  }

  #rest(status: Status, d: Decision): void {
    for (const pos of this.p.positions) this.p.outcome.decide(pos, status, d);
  }

  async #dialogue(): Promise<boolean> {
    const { ta, outcome, link, positions } = this.p;
    const exts = link.exts;
    const limit = sizeLimit(exts);
    if (limit > 0 && ta.size > limit) {
      this.#rest("perm", byAgent(`message too big for ${link.relay}`, link.server, 552, "5.3.4"));
      return true;
    }
    if (ta.smtputf8 && needsUtf8(ta) && !exts.has("SMTPUTF8")) {
      const why = `SMTPUTF8 is required but not supported by ${link.relay}`;
      this.#rest("perm", byAgent(why, link.server, 553, "5.6.7"));
      return true;
    }
    const senderProblem = addressProblem(ta.sender);
    if (senderProblem) {
      this.#rest("perm", byAgent(`invalid sender address: ${senderProblem}`, link.server, 501, "5.1.7"));
      return true;
    }
    for (const pos of positions) {
      const problem = addressProblem(ta.recipients[pos].address);
      if (problem) {
        outcome.decide(
          pos,
          "perm",
          byAgent(`invalid recipient address: ${problem}`, link.server, 501, "5.1.3"),
        );
      }
    }
    const sendable = positions.filter((pos) => !outcome.isDecided(pos));
    if (sendable.length === 0) return true;
    if (ta.bodyType !== undefined && ta.bodyType !== "7BIT" && !exts.has("8BITMIME")) {
      // sendmail's pass8: nearly every server takes 8-bit text anyway; refusing would only delay mail.
      log.info(
        "smtpc",
        `${ta.messageId}: ${link.relay} does not offer 8BITMIME; sending 8-bit content as it is`,
      );
    }

    link.needsRset = true;
    const mail = mailCommand(ta, exts);
    const rcpts = sendable.map((pos) => rcptCommand(ta.recipients[pos], exts));
    const { accepted, dataReply } = exts.has("PIPELINING")
      ? await this.#envelopePipelined(mail, rcpts, sendable)
      : await this.#envelopeStepwise(mail, rcpts, sendable);
    if (accepted.length === 0) {
      // A server that said 354 anyway waits for content we will not send: drop the connection.
      return dataReply?.code !== 354;
    }
    let data = dataReply;
    if (!data) {
      this.#stage = "sending DATA";
      await link.wire.write("DATA\r\n", link.deadlines.data);
      data = await this.#read(link.deadlines.data);
    }
    if (data.code !== 354) {
      const d = byRemote(data, link.server);
      for (const pos of accepted) outcome.decide(pos, failureOf(data) ?? "temp", d);
      return true;
    }
    await this.#content();
    await this.#finalReplies(accepted);
    link.needsRset = false;
    return true;
  }

  /** Reads a reply; a 421 (the server is closing the session) ends the transaction, temp. */
  async #read(timeoutMs: number): Promise<Reply> {
    const reply = await this.p.link.wire.readReply(timeoutMs);
    if (reply.code !== 421) return reply;
    if (this.p.reused && !this.#mailReplied) throw new Stale();
    const dup = this.#afterDot ? "-- message may be sent more than once" : undefined;
    this.#rest("temp", byRemote(reply, this.p.link.server, dup));
    throw new Closing();
  }

  async #envelopePipelined(mail: string, rcpts: string[], positions: number[]) {
    const { wire, deadlines } = this.p.link;
    this.#stage = "sending MAIL FROM";
    await wire.write(mail + rcpts.join("") + "DATA\r\n", deadlines.mail);
    const mailReply = await this.#read(deadlines.mail);
    this.#mailReplied = true;
    const replies: Reply[] = [];
    this.#stage = "sending RCPT TO";
    for (const _ of rcpts) replies.push(await this.#read(deadlines.rcpt));
    this.#stage = "sending DATA";
    const dataReply = await this.#read(deadlines.data);
    if (!this.#mailAccepted(mailReply, positions)) return { accepted: [], dataReply };
    return { accepted: this.#decideRcpts(positions, replies), dataReply };
  }

  async #envelopeStepwise(mail: string, rcpts: string[], positions: number[]) {
    const { wire, deadlines } = this.p.link;
    this.#stage = "sending MAIL FROM";
    await wire.write(mail, deadlines.mail);
    const mailReply = await this.#read(deadlines.mail);
    this.#mailReplied = true;
    if (!this.#mailAccepted(mailReply, positions)) return { accepted: [], dataReply: undefined };
    this.#stage = "sending RCPT TO";
    const replies: Reply[] = [];
    for (const rcpt of rcpts) {
      await wire.write(rcpt, deadlines.rcpt);
      replies.push(await this.#read(deadlines.rcpt));
    }
    return { accepted: this.#decideRcpts(positions, replies), dataReply: undefined };
  }

  #mailAccepted(reply: Reply, positions: number[]): boolean {
    const failed = failureOf(reply);
    if (failed) {
      const d = byRemote(reply, this.p.link.server);
      for (const pos of positions) this.p.outcome.decide(pos, failed, d);
    }
    return !failed;
  }

  /** Decides refused recipients; returns the positions of the accepted ones, in RCPT order. */
  #decideRcpts(positions: number[], replies: Reply[]): number[] {
    const accepted: number[] = [];
    const full: [number, Reply][] = [];
    positions.forEach((pos, i) => {
      const reply = replies[i];
      if (reply.code === 452) full.push([pos, reply]);
      else if (failureOf(reply)) {
        this.p.outcome.decide(pos, failureOf(reply)!, byRemote(reply, this.p.link.server));
      } else accepted.push(pos);
    });
    // RFC 5321 4.5.3.1.10: a server out of room for recipients says 452; the rest go in a next
    // transaction, but only when this one made progress (else the server is just full: temp).
    if (accepted.length > 0) this.#retry = full.map(([pos]) => pos);
    else {
      for (const [pos, reply] of full) {
        this.p.outcome.decide(pos, "temp", byRemote(reply, this.p.link.server));
      }
    }
    return accepted;
  }

  async #content(): Promise<void> {
    const { link, content } = this.p;
    this.#stage = "sending message content";
    const nuls = await sendContent(
      content,
      (bytes) => link.wire.write(bytes, link.deadlines.block),
      this.p.ta.size,
    );
    if (nuls > 0) {
      log.warn("smtpc", `${this.p.ta.messageId}: removed ${nuls} NUL byte(s) from the content sent`);
    }
    this.#afterDot = true;
    this.#stage = "waiting for the reply to end of data";
  }

  async #finalReplies(accepted: number[]): Promise<void> {
    const { link, outcome } = this.p;
    const decideBy = (pos: number, reply: Reply) =>
      outcome.decide(pos, failureOf(reply) ?? "sent", byRemote(reply, link.server));
    // One deadline for all the replies: an LMTP server cannot stretch it by answering slowly.
    const end = Date.now() + link.deadlines.dot;
    const left = () => Math.max(1, end - Date.now());
    if (!link.lmtp) {
      const reply = await this.#read(left());
      for (const pos of accepted) decideBy(pos, reply);
      return;
    }
    for (const pos of accepted) decideBy(pos, await this.#read(left()));
  }

  #describe(err: WireError): string {
    const { relay } = this.p.link;
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
