// One SMTP session on one accepted connection: admission (qmgr limits, smar connect checks), the greeting
// (refused to a client that talks first), then the command loop. Guards run before each command is read
// (session-ending limits, server stopping); commands go to the verb table (commands.ts). Replies are
// batched and flushed only when the client's input is drained or before a wait (RFC 2920 PIPELINING);
// with soft_bounce a 5yz refusal goes out as 4yz. After STARTTLS the session continues on the TLS socket
// with its protocol state reset; on an implicit-TLS listener (RFC 8314) the handshake precedes admission. Receives bytes from the socket, sends replies; talks to qmgr and smar through
// their client stubs. Touches nothing on disk itself (receive.ts and bdat.ts do).

import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { formatReply, replyText, type SmtpReply } from "../mail/reply.ts";
import type { PolicyState } from "../protocol/messages.ts";
import { connectionClosed } from "../qmgr/client.ts";
import { log } from "../util/log.ts";
import { admit } from "./admission.ts";
import { dispatch } from "./commands.ts";
import type { SessionEnv } from "./env.ts";
import { InputInterrupted, InputTimeout, SocketInput } from "../smtp_io/input.ts";
import { limitReached } from "./limits.ts";
import { checkContext } from "./policy.ts";
import { readLine } from "../smtp_io/line_reader.ts";
import { ReplyWriter } from "../smtp_io/reply_writer.ts";
import { R, softBounce } from "./replies.ts";
import { clientIp, endSocket } from "../smtp_io/socket.ts";
import { type TlsInfo, tlsInfo, upgrade } from "./tls.ts";
import type { Transaction } from "./transaction.ts";
import type { MilterChain } from "./milter/chain.ts";
import { milterAbort, milterClose, milterConnect } from "./milter/stages.ts";

/** The stages whose policy refusals are logged as Postfix's `reject:` lines. */
const POLICY_STAGES = new Set(["CONNECT", "MAIL", "RCPT", "DATA", "BDAT"]);

/** Where the session is in the dialogue; the transaction's content lives in `Session.transaction`. */
export type State =
  /** Connected, no HELO/EHLO yet (again after STARTTLS). */
  | "init"
  /** HELO/EHLO done, no transaction. */
  | "ready"
  /** MAIL accepted, no recipient yet. */
  | "mail"
  /** At least one recipient accepted. */
  | "rcpt";

/** A successful AUTH: who, how, and whether that lets the client relay (trusted_mechs). */
export interface AuthInfo {
  user: string;
  mechanism: string;
  trusted: boolean;
}

const COMPONENT = "smtps";

export class Session {
  readonly env: SessionEnv;
  input: SocketInput;
  readonly ip: string;
  readonly clientPort: number;
  /** Our end of the connection (the {daemon_addr} and {daemon_port} milters get). */
  readonly localAddress: string;
  readonly localPort: number;
  readonly host: string;
  /** RFC 5321 2.3.8 is enforced: a bare CR or LF ends the session (unless bare_newline_clients has us). */
  readonly strictNewlines: boolean;
  state: State = "init";
  helo = "";
  esmtp = false;
  transaction: Transaction | undefined;
  tls: TlsInfo | undefined;
  auth: AuthInfo | undefined;
  /** smar's state from check_connect, sent back with the next checks. */
  policyState: PolicyState | undefined;
  /** The session's policy milters (none configured: undefined). */
  milters: MilterChain | undefined;
  /** smar said `discard` for the client: every message is received, answered 250 and dropped. */
  discardAll = false;
  authFailures = 0;
  /** Counters for the session-wide limits. */
  recipientsInSession = 0;
  commands = 0;
  badCommands = 0;
  invalidAddresses = 0;
  /** NOOP/RSET/VRFY/HELP since the last transaction began (max_nop_commands_between_transactions). */
  nopCommands = 0;
  transactions = 0;
  /** The last command verb seen, for logs ("timeout after DATA"). */
  lastVerb = "CONNECT";
  /** True while a message is received or committed; a graceful stop lets it finish. */
  busy = false;
  #socket: Socket;
  readonly #replies: ReplyWriter;
  #quit = false;
  #stopping = false;
  #waitingForCommand = false;
  /** When the wait for the current command began (Date.now()), while waiting for one. */
  #commandSince = 0;
  /** Stress mode's cap on a wait for a command (ms), set by the section's slots (stress.ts). */
  #stressTimeout: number | undefined;
  #evicted = false;
  #done: Promise<void> | undefined;

  constructor(socket: Socket, env: SessionEnv) {
    this.#socket = socket;
    this.env = env;
    this.ip = clientIp(socket);
    this.clientPort = socket.remotePort ?? 0;
    this.localAddress = (socket.localAddress ?? "").replace(/^::ffff:(?=\d+\.)/, "");
    this.localPort = socket.localPort ?? 0;
    this.host = env.server.hostname;
    this.strictNewlines = !env.bareNewlineAllowed(this.ip);
    this.input = new SocketInput(socket);
    this.#replies = new ReplyWriter(socket, env.server.io_timeout);
    socket.setNoDelay(true);
  }

  /** The client may relay: AUTH with a trusted mechanism, or a verified certificate where that suffices. */
  get authorized(): boolean {
    return this.auth?.trusted === true ||
      (this.tls?.verified === true && this.env.tls?.relayIfVerified === true);
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

  /** How long the session has waited for its current command (ms), or -1 when it is not waiting. */
  idleFor(now: number): number {
    return this.#waitingForCommand ? now - this.#commandSince : -1;
  }

  /** Stress mode: every wait for a command lasts at most `timeout` ms (undefined: io_timeout alone). */
  stress(timeout: number | undefined): void {
    this.#stressTimeout = timeout;
    if (this.#waitingForCommand) this.#capCommandWait();
  }

  /** Gives up the slot under stress: a session waiting for a command ends as timed out. */
  evict(): boolean {
    if (!this.#waitingForCommand || this.#evicted) return false;
    this.#evicted = true;
    return this.input.interrupt("its slot went to a new client");
  }

  /** True once evict() ended the session. */
  get evicted(): boolean {
    return this.#evicted;
  }

  #capCommandWait(): void {
    const t = this.#stressTimeout;
    this.input.setCap(t === undefined ? Infinity : this.#commandSince + t);
  }

  /** Hard stop: drops the connection (a message in progress is discarded by its reader seeing EOF). */
  abort(): void {
    this.#socket.destroy();
  }

  /** Queues a reply; it goes out at the next flush. */
  reply(r: SmtpReply): void {
    this.#replies.push(formatReply(this.env.softBounce ? softBounce(r) : r));
  }

  /** The client as Postfix's logs name it: `name[address]`, `unknown[address]` without a confirmed name. */
  /** The section's name, and which smtps worker serves it when several do: `MTA (smtps@2)`. */
  get #serverLabel(): string {
    const { server, worker } = this.env;
    return worker ? `${server.name} (${worker})` : server.name;
  }

  get clientLabel(): string {
    return `${this.policyState?.clientName ?? "unknown"}[${this.ip}]`;
  }

  /**
   * Sends a refusal and logs it the way operators' tools read it. A policy refusal of a stage of the mail
   * dialogue (CONNECT, MAIL, RCPT, DATA, BDAT) is Postfix's `NOQUEUE: reject: RCPT from host[addr]:
   * REPLY; from=<..> to=<..> proto=ESMTP helo=<..>` (pflogsumm counts it, fail2ban bans on it); any
   * other refusal (a syntax error, a limit, a timeout, AUTH) is `STAGE [DETAIL] from host[addr]: REPLY`;
   * `quiet` refusals were logged by the caller.
   */
  refuse(stage: string, r: SmtpReply, detail = "", how: { policy?: boolean; quiet?: boolean } = {}): void {
    const sent = this.env.softBounce ? softBounce(r) : r;
    if (how.quiet) {
      // logged by the caller
    } else if (how.policy !== false && POLICY_STAGES.has(stage)) {
      this.env.counters.rejected(stage, sent.code, sent.status);
      const proto = `proto=${this.esmtp ? "ESMTP" : "SMTP"}${this.helo ? ` helo=<${this.helo}>` : ""}`;
      log.info(
        COMPONENT,
        `NOQUEUE: reject: ${stage} from ${this.clientLabel}: ${replyText(sent)}; ${
          detail ? `${detail} ` : ""
        }${proto}`,
      );
    } else {
      log.info(
        COMPONENT,
        `${stage}${detail ? ` ${detail}` : ""} from ${this.clientLabel}: ${replyText(sent)}`,
      );
    }
    this.reply(r);
    if (r.code === 421) this.#quit = true; // 421 closes the channel (RFC 5321 4.2.3), e.g. smar's greylisting
  }

  /** A syntax or sequence error: refused and counted against the bad-command limits. */
  badCommand(stage: string, r: SmtpReply): void {
    this.badCommands++;
    if (this.transaction) this.transaction.badCommands++;
    this.refuse(stage, r, "", { policy: false });
  }

  /** Counts an address refused for its syntax or by policy (max_invalid_addresses_*). */
  invalidAddress(): void {
    this.invalidAddresses++;
    if (this.transaction) this.transaction.invalidAddresses++;
  }

  /** Counts a command that moves no mail (NOOP, RSET, VRFY, HELP) against the max_nop_commands_* limits. */
  nop(): void {
    if (this.transaction) this.transaction.nopCommands++;
    else this.nopCommands++;
  }

  /** Ends the session after `r` (a 421 or a 554 for a protocol violation), logged as a refusal. */
  end(stage: string, r: SmtpReply, detail = "", how: { policy?: boolean; quiet?: boolean } = {}): void {
    this.refuse(stage, r, detail, how);
    this.#quit = true;
  }

  /** Ends the transaction (after a message, RSET, HELO/EHLO); the session and its HELO stay. */
  dropTransaction(): void {
    const chunks = this.transaction?.chunks;
    if (this.transaction && !this.transaction.filtered) milterAbort(this);
    if (chunks) {
      chunks.file.discard().catch((err) =>
        log.error(COMPONENT, `${chunks.id}: remove ${chunks.file.path} failed: ${err.message}`)
      );
    }
    this.transaction = undefined;
    this.state = this.helo ? "ready" : "init";
  }

  /** The client said QUIT: close after the replies queued so far. */
  quit(): void {
    this.#quit = true;
  }

  /** Writes the queued replies; waits for the socket to drain if the client does not read. */
  flush(): Promise<void> {
    return this.#replies.flush();
  }

  /**
   * STARTTLS after its 220 is queued: sends it, drops every plaintext byte the client sent after the
   * command (CVE-2011-0411), and continues on TLS with EHLO, AUTH and the transaction forgotten (RFC 3207
   * 4.2). Resolves false when the handshake failed: the connection is gone then.
   */
  async startTls(): Promise<boolean> {
    await this.flush();
    const dropped = this.input.detach();
    if (dropped > 0) {
      log.warn(COMPONENT, `dropped ${dropped} bytes sent with STARTTLS by ${this.clientLabel}`);
    }
    if (!await this.#handshake()) return false;
    this.helo = "";
    this.esmtp = false;
    this.auth = undefined;
    this.dropTransaction();
    return true;
  }

  /** The TLS handshake on the connection, and the session moved onto the TLS socket; false if it failed. */
  async #handshake(): Promise<boolean> {
    let secure: TLSSocket;
    try {
      secure = await upgrade(this.#socket, this.env.tls!, this.env.server.io_timeout);
    } catch (err) {
      log.info(COMPONENT, `SSL_accept error from ${this.clientLabel}: ${(err as Error).message}`);
      return false;
    }
    this.#socket = secure;
    this.#replies.socket = secure;
    this.input = new SocketInput(secure);
    this.tls = tlsInfo(secure, this.env.tls!);
    const t = this.tls;
    const trust = t.subject ? (t.verified ? "Trusted" : "Untrusted") : "Anonymous";
    this.env.counters.tls(trust, t.version, t.cipher);
    log.info(
      COMPONENT,
      `${trust} TLS connection established from ${this.clientLabel}: ${t.version} with cipher ${t.cipher}${
        t.subject ? `, client certificate ${t.subject}` : ""
      }`,
    );
    return true;
  }

  async #run(): Promise<void> {
    let qmgrAccepted = false;
    let connected = false;
    try {
      // Implicit TLS (RFC 8314): the handshake first; the greeting and everything after go over TLS.
      if (this.env.tls?.implicit) {
        this.input.detach();
        if (!await this.#handshake()) return;
      }
      const admission = await admit(this.env.endpoint, this.ip, this.host, checkContext(this));
      qmgrAccepted = admission.qmgrAccepted;
      this.policyState = admission.state;
      // Logged once the client's name is known (smar's connect checks look it up when the access map asks).
      log.info(COMPONENT, `connect from ${this.clientLabel} to ${this.#serverLabel}`);
      connected = true;
      this.discardAll = admission.discard === true;
      if (admission.refusal) {
        // Before the greeting only 421 and 554 are allowed (RFC 5321 3.1): soft_bounce makes it 421.
        const r = admission.refusal;
        this.refuse(
          "CONNECT",
          this.env.softBounce && r.code >= 500 ? R.unavailable(this.host) : r,
          admission.reason,
        );
        return;
      }
      if (this.input.hasBuffered) return this.end("CONNECT", R.earlyTalker(this.host));
      const milters = await milterConnect(this);
      if (milters?.kind === "refuse") {
        // Before the greeting only 421 and 554 are allowed (RFC 5321 3.1).
        const r = milters.reply.code >= 500
          ? { ...milters.reply, code: 554 }
          : { ...milters.reply, code: 421 };
        return this.refuse("CONNECT", r, `milter ${milters.milter}`);
      }
      this.reply(R.greeting(this.host));
      await this.#loop();
    } catch (err) {
      if (err instanceof InputTimeout) {
        this.refuse("timeout", R.timeout(this.host), `after ${this.lastVerb}`);
      } else if (err instanceof InputInterrupted && this.#evicted) {
        this.refuse("timeout", R.timeout(this.host), `after ${this.lastVerb} (stress mode, slot needed)`);
      } else if (err instanceof InputInterrupted) {
        this.reply(R.shuttingDown(this.host));
      } else {
        log.error(COMPONENT, `session with ${this.clientLabel} failed: ${(err as Error).stack ?? err}`);
        this.reply(R.unavailable(this.host));
      }
    } finally {
      if (this.transaction) this.dropTransaction();
      await milterClose(this);
      await this.#close();
      if (qmgrAccepted) connectionClosed(this.env.endpoint, this.ip);
      if (!connected) log.info(COMPONENT, `connect from ${this.clientLabel} to ${this.#serverLabel}`);
      log.info(COMPONENT, `disconnect from ${this.clientLabel} commands=${this.commands}`);
    }
  }

  async #loop(): Promise<void> {
    const io = this.env.server.io_timeout;
    while (!this.#quit) {
      const limit = limitReached(this);
      if (limit) return this.refuse("command", limit, `after ${this.lastVerb}`);
      if (this.#stopping) return this.reply(R.shuttingDown(this.host));
      // A client that pipelines without reading must not make us hold its replies unboundedly.
      if (!this.input.hasBuffered || this.#replies.full) {
        await this.flush();
        if (this.#stopping) continue; // a stop came while the replies drained
      }
      this.#waitingForCommand = true;
      this.#commandSince = Date.now();
      this.#capCommandWait();
      let line;
      try {
        line = await readLine(this.input, this.#commandSince + io, this.strictNewlines);
      } finally {
        this.#waitingForCommand = false;
        this.input.setCap(Infinity); // DATA and BDAT keep their io_timeout
      }
      this.commands++;
      switch (line.kind) {
        case "eof":
          this.commands--;
          log.info(COMPONENT, `lost connection after ${this.lastVerb} from ${this.clientLabel}`);
          return;
        case "too_long":
          this.badCommand("command", R.lineTooLong);
          break;
        case "bad_utf8":
          this.badCommand("command", R.badUtf8);
          break;
        case "bare_newline":
          return this.end("command", R.bareNewline(this.host), `after ${this.lastVerb}`);
        case "line":
          await dispatch(this, line.text);
      }
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
