// One LMTP session (RFC 2033) on one accepted connection: the greeting, then the command loop; the verbs
// themselves are in commands.ts. Replies are batched while pipelined input is waiting (LMTP servers must
// support PIPELINING) and flushed before every wait. A graceful stop answers 421 to an idle session at
// once and lets one in DATA finish its deliveries first. Receives bytes from the socket, sends replies;
// touches the mail store only through delivery.ts.

import type { Socket } from "node:net";
import { formatReply, reply, replyText, type SmtpReply } from "../mail/reply.ts";
import { InputInterrupted, InputTimeout, SocketInput } from "../smtp_io/input.ts";
import { readLine } from "../smtp_io/line_reader.ts";
import { ReplyWriter } from "../smtp_io/reply_writer.ts";
import { clientIp, endSocket } from "../smtp_io/socket.ts";
import { log } from "../util/log.ts";
import { dispatch } from "./commands.ts";
import type { Accepted, MailStore } from "./delivery.ts";

const COMPONENT = "lda";
/** Longest command line read (RFC 5321 allows 512; room for long addresses with parameters). */
const MAX_LINE = 2048;

export type State = "init" | "ready" | "mail" | "rcpt";

export const SR = {
  greeting: (host: string) => reply(220, "", `${host} LMTP ready`),
  shuttingDown: (host: string) => reply(421, "4.3.2", `${host} Service shutting down`),
  timeout: (host: string) => reply(421, "4.4.2", `${host} Error: timeout exceeded`),
  tooManyErrors: (host: string) => reply(421, "4.7.0", `${host} Too many errors`),
  unavailable: (host: string) => reply(421, "4.3.0", `${host} Service temporarily unavailable`),
  lineTooLong: reply(500, "5.5.2", "Line too long"),
  badLine: reply(500, "5.5.2", "Command line is not valid UTF-8"),
};

/** The transaction between MAIL and the end of DATA. */
export interface Transaction {
  sender: string;
  /** SIZE declared with MAIL, 0 when none. */
  size: number;
  rcpts: Accepted[];
}

export class LmtpSession {
  readonly ip: string;
  readonly input: SocketInput;
  state: State = "init";
  transaction: Transaction | undefined;
  commands = 0;
  badCommands = 0;
  lastVerb = "CONNECT";
  readonly #socket: Socket;
  readonly #replies: ReplyWriter;
  #quit = false;
  #stopping = false;
  #waitingForCommand = false;
  #done: Promise<void> | undefined;

  constructor(
    socket: Socket,
    readonly store: MailStore,
    readonly host: string,
    readonly ioTimeout: number,
    /** The client's address when `socket` is a TLS socket over the accepted one (implicit TLS). */
    ip?: string,
  ) {
    this.#socket = socket;
    this.ip = ip ?? clientIp(socket);
    this.input = new SocketInput(socket);
    this.#replies = new ReplyWriter(socket, ioTimeout);
    socket.setNoDelay(true);
  }

  run(): Promise<void> {
    this.#done ??= this.#run();
    return this.#done;
  }

  /** Graceful stop: an idle session gets 421 at once, a busy one after its current transaction. */
  requestStop(): void {
    this.#stopping = true;
    if (this.#waitingForCommand) this.input.interrupt();
  }

  /** Hard stop: drops the connection (content in progress is discarded, nothing reaches new/). */
  abort(): void {
    this.#socket.destroy();
  }

  reply(r: SmtpReply): void {
    this.#replies.push(formatReply(r));
  }

  /** A syntax or sequence error: replied, logged, counted (too many end the session). */
  badCommand(verb: string, r: SmtpReply): void {
    this.badCommands++;
    log.info(COMPONENT, `${verb} from unknown[${this.ip}]: ${replyText(r)}`);
    this.reply(r);
  }

  quit(): void {
    this.#quit = true;
  }

  dropTransaction(): void {
    this.transaction = undefined;
    this.state = this.state === "init" ? "init" : "ready";
  }

  flush(): Promise<void> {
    return this.#replies.flush();
  }

  async #run(): Promise<void> {
    log.info(COMPONENT, `connect from unknown[${this.ip}]`);
    try {
      this.reply(SR.greeting(this.host));
      await this.#loop();
    } catch (err) {
      if (err instanceof InputTimeout) {
        log.info(COMPONENT, `timeout after ${this.lastVerb} from unknown[${this.ip}]`);
        this.reply(SR.timeout(this.host));
      } else if (err instanceof InputInterrupted) {
        this.reply(SR.shuttingDown(this.host));
      } else {
        log.error(COMPONENT, `session with unknown[${this.ip}] failed: ${(err as Error).stack ?? err}`);
        this.reply(SR.unavailable(this.host));
      }
    } finally {
      try {
        await this.flush();
      } catch {
        // The client stopped reading; nothing more to tell it.
      }
      await endSocket(this.#socket);
      log.info(COMPONENT, `disconnect from unknown[${this.ip}] commands=${this.commands}`);
    }
  }

  async #loop(): Promise<void> {
    while (!this.#quit) {
      if (this.badCommands >= 20) return this.reply(SR.tooManyErrors(this.host));
      if (this.#stopping) return this.reply(SR.shuttingDown(this.host));
      if (!this.input.hasBuffered || this.#replies.full) {
        await this.flush();
        if (this.#stopping) continue;
      }
      this.#waitingForCommand = true;
      let line;
      try {
        line = await readLine(this.input, Date.now() + this.ioTimeout, false, MAX_LINE);
      } finally {
        this.#waitingForCommand = false;
      }
      if (line.kind === "eof") return;
      this.commands++;
      if (line.kind === "line") await dispatch(this, line.text);
      else this.badCommand("command", line.kind === "too_long" ? SR.lineTooLong : SR.badLine);
    }
  }
}
