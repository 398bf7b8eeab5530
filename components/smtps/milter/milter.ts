// One milter in one SMTP session: sends each stage's macros and command (connect, helo, envfrom, envrcpt,
// data, header, eoh, body chunks, eom, abort), leaving out the steps the milter asked to skip and not
// waiting where it asked for no reply, and reads its answer: continue, accept, reject, tempfail, discard,
// replycode, skip (during the body), with progress restarting the timeout. At end of message it also
// collects the modifications, each checked against the actions negotiated. Throws MilterFailure when the
// milter fails. Touches: its connection.

import type { PolicyMilterConfig } from "../../../config/types.ts";
import { isEnhancedStatus, reply, type SmtpReply } from "../../mail/reply.ts";
import { describe, MilterConnection, MilterFailure, type Negotiated, socketName } from "./connection.ts";
import {
  Action,
  CHUNK_SIZE,
  Cmd,
  cstrings,
  encodeFrame,
  type Frame,
  Reply,
  splitStrings,
  Step,
} from "./protocol.ts";

/** A milter's answer to one stage. */
export type Answer =
  | { kind: "continue" }
  /** Accept: no more questions for the rest of the session (connect, helo) or the message. */
  | { kind: "accept" }
  | { kind: "reject"; reply: SmtpReply }
  | { kind: "tempfail"; reply: SmtpReply }
  | { kind: "discard" }
  /** During the body: send no more of it. */
  | { kind: "skip" };

/** One modification asked for at end of message. */
export type Change =
  | { kind: "add_header"; name: string; value: string }
  | { kind: "insert_header"; index: number; name: string; value: string }
  | { kind: "change_header"; index: number; name: string; value: string }
  | { kind: "add_rcpt"; address: string; args: string }
  | { kind: "del_rcpt"; address: string }
  | { kind: "change_from"; address: string; args: string }
  | { kind: "replace_body"; chunk: Uint8Array }
  | { kind: "quarantine"; reason: string };

/** What a milter said at end of message: its answer and its modifications, in the order sent. */
export interface EomAnswer {
  answer: Answer;
  changes: Change[];
  /** Modifications refused (malformed, or an action not negotiated), for the log. */
  refused: string[];
}

/** The largest body a milter may put in place (held in memory until it is written). */
export const MAX_REPLACED_BODY = 64 * 1024 * 1024;
const TOO_BIG = `replace body: over ${MAX_REPLACED_BODY / 1024 / 1024} MB, the body is kept`;

const REJECT = reply(550, "5.7.1", "Command rejected");
const TEMPFAIL = reply(451, "4.7.1", "Service unavailable - try again later");

/** The command of each stage, the step bit that leaves it out, and the one that makes it unanswered. */
const STAGES = {
  connect: [Cmd.connect, Step.noConnect, Step.noReplyConnect],
  helo: [Cmd.helo, Step.noHelo, Step.noReplyHelo],
  mail: [Cmd.mail, Step.noMail, Step.noReplyMail],
  rcpt: [Cmd.rcpt, Step.noRcpt, Step.noReplyRcpt],
  data: [Cmd.data, Step.noData, Step.noReplyData],
  header: [Cmd.header, Step.noHeaders, Step.noReplyHeader],
  eoh: [Cmd.eoh, Step.noEoh, Step.noReplyEoh],
  body: [Cmd.body, Step.noBody, Step.noReplyBody],
} as const;

export type Stage = keyof typeof STAGES;

export class Milter {
  readonly config: PolicyMilterConfig;
  readonly name: string;
  readonly #conn: MilterConnection;
  readonly #opts: Negotiated;

  private constructor(config: PolicyMilterConfig, conn: MilterConnection, opts: Negotiated) {
    this.config = config;
    this.name = socketName(config.socket);
    this.#conn = conn;
    this.#opts = opts;
  }

  /** Connects and negotiates; throws MilterFailure. */
  static async open(config: PolicyMilterConfig): Promise<Milter> {
    const conn = await MilterConnection.open(config.socket, config.timeout);
    try {
      return new Milter(config, conn, await conn.negotiate());
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** True when the milter asked for header values with their leading space. */
  get leadingSpace(): boolean {
    return (this.#opts.steps & Step.headerLeadingSpace) !== 0;
  }

  /** True when the milter wants the body. */
  get wantsBody(): boolean {
    return (this.#opts.steps & Step.noBody) === 0;
  }

  /** True when the milter asked to leave this stage out. */
  skips(stage: Stage): boolean {
    return (this.#opts.steps & STAGES[stage][1]) !== 0;
  }

  /** Sends a stage's macros and command, and reads the answer (continue if the milter does not answer). */
  async ask(stage: Stage, macros: Record<string, string>, ...data: (Uint8Array | string)[]): Promise<Answer> {
    const [cmd, skip, noReply] = STAGES[stage];
    if ((this.#opts.steps & skip) !== 0) return { kind: "continue" };
    await this.#macros(cmd, macros);
    await this.#conn.send(encodeFrame(cmd, ...data));
    if ((this.#opts.steps & noReply) !== 0) return { kind: "continue" };
    return this.#answer(stage, await this.#final());
  }

  /** Sends a body chunk (at most CHUNK_SIZE bytes). */
  body(chunk: Uint8Array): Promise<Answer> {
    if (chunk.length > CHUNK_SIZE) throw new RangeError(`Send milter body: chunk of ${chunk.length} bytes`);
    return this.ask("body", {}, chunk);
  }

  /** End of message: its macros, then the final answer with the modifications asked for. */
  async eom(macros: Record<string, string>): Promise<EomAnswer> {
    await this.#macros(Cmd.bodyEob, macros);
    await this.#conn.send(encodeFrame(Cmd.bodyEob));
    const changes: Change[] = [];
    const refused: string[] = [];
    const frame = await this.#final((f) => this.#change(f, changes, refused));
    return { answer: this.#answer("eom", frame), changes, refused };
  }

  /** The message is over without an end (RSET, a refused DATA, a lost client): no reply is expected. */
  abort(): Promise<void> {
    return this.#conn.send(encodeFrame(Cmd.abort)).catch(() => {});
  }

  /** Says goodbye and closes. */
  quit(): Promise<void> {
    return this.#conn.quit();
  }

  close(): void {
    this.#conn.close();
  }

  async #macros(cmd: string, macros: Record<string, string>): Promise<void> {
    const wanted = this.#opts.macros.get(cmd);
    const names = Object.keys(macros).filter((n) => !wanted || wanted.includes(n));
    if (names.length === 0) return;
    const pairs = names.flatMap((n) => [n.length > 1 ? `{${n}}` : n, macros[n].replaceAll("\0", "")]);
    await this.#conn.send(encodeFrame(Cmd.macro, cmd, cstrings(...pairs)));
  }

  /** Reads frames up to a final answer; progress restarts the timeout, `more` takes modifications. */
  async #final(more?: (f: Frame) => boolean): Promise<Frame> {
    for (;;) {
      const frame = await this.#conn.read();
      if (frame.code === Reply.progress) continue;
      if (more?.(frame)) continue;
      return frame;
    }
  }

  #answer(stage: string, frame: Frame): Answer {
    switch (frame.code) {
      case Reply.continue:
        return { kind: "continue" };
      case Reply.accept:
        return { kind: "accept" };
      case Reply.reject:
        return { kind: "reject", reply: REJECT };
      case Reply.tempfail:
        return { kind: "tempfail", reply: TEMPFAIL };
      case Reply.discard:
        return { kind: "discard" };
      case Reply.skip:
        if (stage === "body") return { kind: "skip" };
        break;
      case Reply.replyCode: {
        const r = parseReplyCode(frame.data);
        if (!r) break;
        return r.code >= 500 ? { kind: "reject", reply: r } : { kind: "tempfail", reply: r };
      }
    }
    this.#conn.close();
    throw new MilterFailure(`protocol error: ${describe(frame)}`, "garbage");
  }

  /** Takes a modification frame at end of message; false when the frame is no modification. */
  #change(f: Frame, changes: Change[], refused: string[]): boolean {
    const allowed = (bit: number, what: string) => {
      if ((this.#opts.actions & bit) !== 0) return true;
      refused.push(`${what}: not negotiated`);
      return false;
    };
    const strings = (what: string, data: Uint8Array, min: number): string[] | undefined => {
      try {
        const s = splitStrings(data, what);
        if (s.length >= min) return s;
      } catch {
        // Reported below.
      }
      refused.push(`${what}: malformed`);
      return undefined;
    };
    const indexed = (what: string): [number, string[]] | undefined => {
      if (f.data.length < 4) {
        refused.push(`${what}: malformed`);
        return undefined;
      }
      const index = new DataView(f.data.buffer, f.data.byteOffset).getUint32(0);
      const s = strings(what, f.data.subarray(4), 2);
      return s ? [index, s] : undefined;
    };
    switch (f.code) {
      case Reply.addHeader: {
        const s = allowed(Action.addHeaders, "add header") && strings("add header", f.data, 2);
        if (s) changes.push({ kind: "add_header", name: s[0], value: s[1] });
        return true;
      }
      case Reply.insHeader: {
        const s = allowed(Action.addHeaders, "insert header") && indexed("insert header");
        if (s) changes.push({ kind: "insert_header", index: s[0], name: s[1][0], value: s[1][1] });
        return true;
      }
      case Reply.chgHeader: {
        const s = allowed(Action.changeHeaders, "change header") && indexed("change header");
        if (s) changes.push({ kind: "change_header", index: s[0], name: s[1][0], value: s[1][1] });
        return true;
      }
      case Reply.addRcpt:
      case Reply.addRcptPar: {
        const par = f.code === Reply.addRcptPar;
        const s = allowed(par ? Action.addRcptPar : Action.addRcpt, "add recipient") &&
          strings("add recipient", f.data, 1);
        if (s) changes.push({ kind: "add_rcpt", address: s[0], args: par ? s[1] ?? "" : "" });
        return true;
      }
      case Reply.delRcpt: {
        const s = allowed(Action.delRcpt, "delete recipient") && strings("delete recipient", f.data, 1);
        if (s) changes.push({ kind: "del_rcpt", address: s[0] });
        return true;
      }
      case Reply.chgFrom: {
        const s = allowed(Action.changeFrom, "change sender") && strings("change sender", f.data, 1);
        if (s) changes.push({ kind: "change_from", address: s[0], args: s[1] ?? "" });
        return true;
      }
      case Reply.replBody: {
        if (!allowed(Action.changeBody, "replace body") || refused.includes(TOO_BIG)) return true;
        const soFar = changes.reduce((n, c) => n + (c.kind === "replace_body" ? c.chunk.length : 0), 0);
        if (soFar + f.data.length > MAX_REPLACED_BODY) {
          // The whole replacement is refused: a truncated body must never take the message's place.
          refused.push(TOO_BIG);
          changes.splice(0, changes.length, ...changes.filter((c) => c.kind !== "replace_body"));
          return true;
        }
        changes.push({ kind: "replace_body", chunk: f.data });
        return true;
      }
      case Reply.quarantine: {
        const s = allowed(Action.quarantine, "quarantine") && strings("quarantine", f.data, 1);
        if (s) changes.push({ kind: "quarantine", reason: s[0] });
        return true;
      }
      default:
        return false;
    }
  }
}

/** SMFIR_REPLYCODE's text: `4xx|5xx [x.y.z] text`, maybe several lines; undefined when malformed. */
export function parseReplyCode(data: Uint8Array): SmtpReply | undefined {
  let lines: string[];
  try {
    lines = splitStrings(data, "reply code")[0].split(/\r?\n/).filter((l) => l !== "");
  } catch {
    return undefined;
  }
  let code = 0;
  let status = "";
  const texts: string[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^([45]\d\d)(?:[ -](.*))?$/.exec(line);
    if (!m || (i > 0 && Number(m[1]) !== code)) return undefined;
    code = Number(m[1]);
    let text = m[2] ?? "";
    const s = /^([45]\.\d{1,3}\.\d{1,3})(?: (.*)|$)/.exec(text);
    if (s && isEnhancedStatus(s[1], code)) {
      if (i === 0) status = s[1];
      text = s[2] ?? "";
    }
    texts.push(text);
  }
  if (code === 0) return undefined;
  return reply(code, status || `${String(code)[0]}.7.1`, texts.join("\n") || "Command rejected");
}
