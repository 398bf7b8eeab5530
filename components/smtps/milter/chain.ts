// The policy milters of one SMTP session, in the order configured (sendmail X README 3.10 item 17). At
// the session's start each is connected: one that cannot be reached is skipped (and left alone for
// DOWN_MS by later sessions), ends the session with 421 4.7.0 under `abort`, or is tried again by the
// next session under `accept_but_reconnect`. Each stage asks them in turn; the first refusal answers the
// client. A milter that fails later (timeout, closed connection, garbage) is logged once and replaced by
// its default_action (tempfail: 451 4.7.1 for this and every later transaction of the session; reject:
// 550 5.7.1; accept: it is left out), or ends the session with 421 4.7.0 under `abort`, so no message
// is accepted without its checks. Touches: the milters' sockets.

import type { PolicyMilterConfig } from "../../../config/types.ts";
import { reply, type SmtpReply } from "../../mail/reply.ts";
import { log } from "../../util/log.ts";
import { type Answer, type EomAnswer, Milter, type Stage } from "./milter.ts";
import { MilterFailure, socketName } from "./connection.ts";

const COMPONENT = "smtps";

/** How long a milter that could not be reached is skipped by later sessions (without a flag). */
export const DOWN_MS = 60_000;

/** Milters that could not be reached, by socket, until when they are skipped (shared by sessions). */
const downUntil = new Map<string, number>();

/** What the chain says about a stage. */
export type Outcome =
  | { kind: "continue" }
  /** Refuse the command (or the message); `end` closes the session after the reply (421). */
  | { kind: "refuse"; reply: SmtpReply; end?: boolean; milter: string }
  /** Take the message, then drop it. */
  | { kind: "discard"; milter: string };

const CONTINUE: Outcome = { kind: "continue" };

/** One milter's place in the session. */
interface Entry {
  config: PolicyMilterConfig;
  name: string;
  milter?: Milter;
  /** "session": it accepted the connection (no more questions); "message": it is done with this message. */
  done?: "session" | "message";
  /** It failed during the session: its default action now stands in for it. */
  failed?: boolean;
}

export class MilterChain {
  readonly #entries: Entry[];
  readonly #host: string;

  private constructor(entries: Entry[], host: string) {
    this.#entries = entries;
    this.#host = host;
  }

  /**
   * Connects every milter; resolves the chain, or a 421 outcome when a milter flagged `abort` cannot be
   * reached. `now` is for tests.
   */
  static async open(
    configs: PolicyMilterConfig[],
    host: string,
    now = Date.now,
  ): Promise<{ chain: MilterChain; refusal?: Outcome }> {
    const entries: Entry[] = [];
    const chain = new MilterChain(entries, host);
    for (const config of configs) {
      const name = socketName(config.socket);
      const entry: Entry = { config, name };
      entries.push(entry);
      const flag = config.flags[0];
      if (!flag && (downUntil.get(name) ?? 0) > now()) continue; // skipped quietly: logged when it failed
      try {
        entry.milter = await Milter.open(config);
        downUntil.delete(name);
      } catch (err) {
        const why = (err as Error).message;
        if (flag === "abort") {
          log.error(COMPONENT, `milter ${name}: ${why}; ending the session (flag abort)`);
          return { chain, refusal: chain.#abortReply(name) };
        }
        if (!flag) downUntil.set(name, now() + DOWN_MS);
        const then = flag ? "trying again with the next session" : `skipped for ${DOWN_MS / 1000}s`;
        log.warn(COMPONENT, `milter ${name}: ${why}; going on without it, ${then}`);
      }
    }
    return { chain };
  }

  /** True when no milter takes part any more. */
  get empty(): boolean {
    return this.#entries.every((e) => !e.milter && !e.failed);
  }

  /** The milters that take part in a message now (connected, not done with it). */
  active(): Milter[] {
    return this.#entries.filter((e) => e.milter && !e.done && !e.failed).map((e) => e.milter!);
  }

  /**
   * Asks every milter still taking part about `stage`. Connect and HELO refusals and failures stand
   * until a later MAIL; `scope` says what an accept ends (the session or the message).
   */
  async ask(
    stage: Stage,
    macros: Record<string, string>,
    data: (Uint8Array | string)[],
    scope: "session" | "message",
  ): Promise<Outcome> {
    const pending = stage === "connect" || stage === "helo" ? undefined : this.standing();
    if (pending) return pending;
    for (const e of this.#entries) {
      if (!e.milter || e.done || e.failed) continue;
      let answer: Answer;
      try {
        answer = await e.milter.ask(stage, macros, ...data);
      } catch (err) {
        const outcome = this.#failed(e, stage, err);
        if (outcome.kind !== "continue") return outcome;
        continue;
      }
      const outcome = this.#take(e, answer, scope);
      if (outcome.kind !== "continue") return outcome;
    }
    return CONTINUE;
  }

  /**
   * Runs one milter through a message: `send` gives it the headers and body; resolves its end-of-message
   * answer, or the outcome its failure calls for.
   */
  async message(
    milter: Milter,
    send: (m: Milter) => Promise<Answer>,
    eomMacros: Record<string, string>,
  ): Promise<{ outcome: Outcome; eom?: EomAnswer }> {
    const e = this.#entries.find((x) => x.milter === milter)!;
    try {
      const early = await send(milter);
      if (early.kind !== "continue" && early.kind !== "skip") {
        return { outcome: this.#take(e, early, "message") };
      }
      const eom = await milter.eom(eomMacros);
      return { outcome: this.#take(e, eom.answer, "message"), eom };
    } catch (err) {
      return { outcome: this.#failed(e, "end of message", err) };
    }
  }

  /** The transaction ended without end of message (RSET, refusal, lost client): ABORT to those in it. */
  async abort(): Promise<void> {
    for (const e of this.#entries) {
      if (e.milter && e.done !== "session" && !e.failed) await e.milter.abort();
      if (e.done === "message") e.done = undefined;
    }
  }

  /** A new transaction begins: milters done with the last message take part again. */
  newMessage(): void {
    for (const e of this.#entries) if (e.done === "message") e.done = undefined;
  }

  /** The session is over: QUIT to every milter. */
  async close(): Promise<void> {
    await Promise.all(this.#entries.map((e) => e.milter?.quit()));
  }

  /** The refusal a failed milter's default action stands for, from MAIL on. */
  standing(): Extract<Outcome, { kind: "refuse" }> | undefined {
    for (const e of this.#entries) {
      if (!e.failed) continue;
      const r = this.#fallback(e);
      if (r) return { kind: "refuse", reply: r, milter: e.name };
    }
    return undefined;
  }

  #take(e: Entry, answer: Answer, scope: "session" | "message"): Outcome {
    switch (answer.kind) {
      case "continue":
      case "skip":
        return CONTINUE;
      case "accept":
        e.done = scope;
        return CONTINUE;
      case "discard":
        e.done = "message";
        return { kind: "discard", milter: e.name };
      case "reject":
      case "tempfail":
        return { kind: "refuse", reply: answer.reply, milter: e.name };
    }
  }

  #failed(e: Entry, stage: string, err: unknown): Outcome {
    if (!(err instanceof MilterFailure)) throw err;
    e.milter?.close();
    e.milter = undefined;
    if (e.config.flags[0] === "abort") {
      log.error(COMPONENT, `milter ${e.name}: ${err.message} at ${stage}; ending the session (flag abort)`);
      return this.#abortReply(e.name);
    }
    const action = e.config.default_action;
    log.error(COMPONENT, `milter ${e.name}: ${err.message} at ${stage}; default_action ${action}`);
    if (action === "accept") return CONTINUE;
    e.failed = true;
    if (stage === "connect" || stage === "helo") return CONTINUE; // refused from MAIL on
    return { kind: "refuse", reply: this.#fallback(e)!, milter: e.name };
  }

  #fallback(e: Entry): SmtpReply | undefined {
    switch (e.config.default_action) {
      case "tempfail":
        return reply(451, "4.7.1", "Service unavailable - try again later");
      case "reject":
        return reply(550, "5.7.1", "Command rejected");
      case "accept":
        return undefined;
    }
  }

  #abortReply(name: string): Outcome {
    return {
      kind: "refuse",
      reply: reply(421, "4.7.0", `${this.#host} Service unavailable - try again later`),
      end: true,
      milter: name,
    };
  }
}
