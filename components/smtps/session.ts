// One SMTP session on one accepted connection: admission (qmgr limits, smar connect checks), the greeting,
// then the command loop. Guards run before each command is read (too many bad commands, server stopping);
// commands go to the verb table (commands.ts). Replies are batched and flushed only when the client's
// input is drained or before a wait (RFC 2920 PIPELINING). Receives bytes from the socket, sends replies;
// talks to qmgr and smar through their client stubs. Touches nothing on disk itself (receive.ts does).

import type { Socket } from "node:net";
import type { SmtpsConfig } from "../../config/types.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { connectionClosed } from "../qmgr/client.ts";
import { formatReply, replyText, type SmtpReply } from "../mail/reply.ts";
import { log } from "../util/log.ts";
import { admit } from "./admission.ts";
import { dispatch } from "./commands.ts";
import { InputInterrupted, InputTimeout, SocketInput } from "./input.ts";
import { readLine } from "./line_reader.ts";
import { R } from "./replies.ts";
import type { Transaction } from "./transaction.ts";

/** Where the session is in the dialogue; the transaction's content lives in `Session.transaction`. */
export type State =
  /** Connected, no HELO/EHLO yet. */
  | "init"
  /** HELO/EHLO done, no transaction. */
  | "ready"
  /** MAIL accepted, no recipient yet. */
  | "mail"
  /** At least one recipient accepted. */
  | "rcpt";

export interface SessionEnv {
  server: SmtpsConfig;
  endpoint: Endpoint;
  cdbBase: string;
  now: () => Date;
}

const COMPONENT = "smtps";
/** How long a closing socket may wait for the client's FIN before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;
/** Replies held back for batching are flushed at this size even while pipelined input keeps coming. */
const MAX_BATCHED_REPLIES = 8 * 1024;

/**
 * Sends `text` (if any) and half-closes; resolves once our side is written out. The socket is destroyed if
 * the peer has not closed its side within a grace time, so a silent client cannot keep it open.
 */
export function endSocket(socket: Socket, text?: string): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("finish", () => resolve());
    socket.on("error", () => {});
    if (text && socket.writable) socket.write(text);
    socket.end();
  });
}

/** The client address as logs and headers show it (IPv4-mapped IPv6 addresses unwrapped). */
export function clientIp(socket: Socket): string {
  const a = socket.remoteAddress ?? "unknown";
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

export class Session {
  readonly env: SessionEnv;
  readonly input: SocketInput;
  readonly ip: string;
  readonly host: string;
  state: State = "init";
  helo = "";
  esmtp = false;
  transaction: Transaction | undefined;
  /** Recipients accepted over the whole session (max_recipients_per_session). */
  recipientsInSession = 0;
  commands = 0;
  badCommands = 0;
  /** The last command verb seen, for logs ("timeout after DATA"). */
  lastVerb = "CONNECT";
  /** True while a message is received or committed; a graceful stop lets it finish. */
  busy = false;
  readonly #socket: Socket;
  #out: string[] = [];
  #outLength = 0;
  #quit = false;
  #stopping = false;
  #waitingForCommand = false;
  #done: Promise<void> | undefined;

  constructor(socket: Socket, env: SessionEnv) {
    this.#socket = socket;
    this.env = env;
    this.ip = clientIp(socket);
    this.host = env.server.hostname;
    this.input = new SocketInput(socket);
    socket.setNoDelay(true);
  }

  /** Runs the session to its end; the same promise on every call. */
  run(): Promise<void> {
    this.#done ??= this.#run();
    return this.#done;
  }

  /** Graceful stop: an idle session gets 421 at once, a busy one after its current message. */
  requestStop(): void {
    this.#stopping = true;
    if (this.#waitingForCommand) this.input.interrupt();
  }

  /** Hard stop: drops the connection (a message in progress is discarded by its reader seeing EOF). */
  abort(): void {
    this.#socket.destroy();
  }

  /** Queues a reply; it goes out at the next flush. */
  reply(r: SmtpReply): void {
    const text = formatReply(r);
    this.#out.push(text);
    this.#outLength += text.length;
  }

  /** Sends a refusal and logs it the way operators grep for it. */
  refuse(stage: string, r: SmtpReply, detail = ""): void {
    log.info(COMPONENT, `reject: ${stage} from [${this.ip}]: ${replyText(r)}${detail ? `; ${detail}` : ""}`);
    this.reply(r);
  }

  /** A syntax or sequence error: refused and counted against max_bad_commands_per_session. */
  badCommand(stage: string, r: SmtpReply): void {
    this.badCommands++;
    this.refuse(stage, r);
  }

  /** Ends the transaction (after DATA, RSET, HELO/EHLO); the session and its HELO stay. */
  dropTransaction(): void {
    this.transaction = undefined;
    this.state = this.helo ? "ready" : "init";
  }

  /** The client said QUIT: close after the replies queued so far. */
  quit(): void {
    this.#quit = true;
  }

  /** Writes the queued replies; waits for the socket to drain if the client does not read. */
  async flush(): Promise<void> {
    if (this.#out.length === 0) return;
    const text = this.#out.join("");
    this.#out = [];
    this.#outLength = 0;
    if (!this.#socket.writable) return;
    if (this.#socket.write(text)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#socket.off("drain", onDrain);
        reject(new InputTimeout("Write reply: client does not read"));
      }, this.env.server.io_timeout);
      const onDrain = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#socket.once("drain", onDrain);
    });
  }

  async #run(): Promise<void> {
    log.info(COMPONENT, `connect from [${this.ip}]`);
    let qmgrAccepted = false;
    try {
      const admission = await admit(this.env.endpoint, this.ip, this.host);
      qmgrAccepted = admission.qmgrAccepted;
      if (admission.refusal) {
        this.refuse("CONNECT", admission.refusal, admission.reason);
        return;
      }
      this.reply(R.greeting(this.host));
      await this.#loop();
    } catch (err) {
      if (err instanceof InputTimeout) {
        this.refuse("timeout", R.timeout(this.host), `after ${this.lastVerb}`);
      } else if (err instanceof InputInterrupted) {
        this.reply(R.shuttingDown(this.host));
      } else {
        log.error(COMPONENT, `session with [${this.ip}] failed: ${(err as Error).stack ?? err}`);
        this.reply(R.unavailable(this.host));
      }
    } finally {
      await this.#close();
      if (qmgrAccepted) connectionClosed(this.env.endpoint, this.ip);
      log.info(COMPONENT, `disconnect from [${this.ip}] commands=${this.commands}`);
    }
  }

  async #loop(): Promise<void> {
    const { io_timeout, max_bad_commands_per_session: maxBad } = this.env.server;
    while (!this.#quit) {
      if (maxBad > 0 && this.badCommands >= maxBad) return this.refuse("command", R.tooManyErrors(this.host));
      if (this.#stopping) return this.reply(R.shuttingDown(this.host));
      // A client that pipelines without reading must not make us hold its replies unboundedly.
      if (!this.input.hasBuffered || this.#outLength > MAX_BATCHED_REPLIES) {
        await this.flush();
        if (this.#stopping) continue; // a stop came while the replies drained
      }
      this.#waitingForCommand = true;
      let line;
      try {
        line = await readLine(this.input, Date.now() + io_timeout);
      } finally {
        this.#waitingForCommand = false;
      }
      if (line.kind === "eof") {
        log.info(COMPONENT, `lost connection after ${this.lastVerb} from [${this.ip}]`);
        return;
      }
      this.commands++;
      if (line.kind === "too_long") this.badCommand("command", R.lineTooLong);
      else await dispatch(this, line.text);
    }
  }

  async #close(): Promise<void> {
    try {
      await this.flush();
    } catch {
      // The client stopped reading; nothing more to tell it.
    }
    await endSocket(this.#socket);
  }
}
