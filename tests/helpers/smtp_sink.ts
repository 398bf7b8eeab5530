// An SMTP/LMTP server for tests and the benchmark: listens on 127.0.0.1 (or on a unix socket), accepts
// every message (or what the options' reply functions decide) and keeps what it received. Pipelining-aware
// (replies to a batch of commands leave in one write), only CRLF.CRLF ends DATA, content is dot-unstuffed;
// fast enough for hundreds of messages per second. With `tls` it offers STARTTLS (node:tls over the
// Deno.Conn) and can inject bytes after its 220, as a hostile server would. Each connection is a
// SinkSession (smtp_sink_session.ts), its content read by a DataReader (smtp_sink_data.ts). Touches only
// its listening socket.

import { closeQuietly, type SinkHost, SinkSession } from "./smtp_sink_session.ts";

export interface SinkMessage {
  sender: string;
  recipients: string[];
  /** Content as received, dot-unstuffed, up to and excluding the final ".\r\n" (empty if not kept). */
  data: Uint8Array;
  helo: string;
  /** The message came over TLS. */
  tls: boolean;
}

export interface SinkOptions {
  /** Default 0 (random). */
  port?: number;
  /** Default 127.0.0.1; any 127.x.y.z address works on Linux (a second "host" on the same port). */
  hostname?: string;
  /** Listen on this unix socket instead of 127.0.0.1 (`port` is then 0). */
  path?: string;
  /** Offer STARTTLS with this certificate (PEM). */
  tls?: {
    key: string;
    cert: string;
    /** Sent in the same write as the 220 to STARTTLS, before the handshake (a client-side injection). */
    inject?: string;
    /** Ask for a client certificate (kept in `clientCertificates`). */
    requestCert?: boolean;
  };
  /** Speak LMTP (LHLO, one reply per recipient after DATA). */
  lmtp?: boolean;
  /** EHLO keywords, default ["PIPELINING", "8BITMIME", "SIZE 104857600", "ENHANCEDSTATUSCODES"]. */
  extensions?: string[];
  /** Default "220 sink.test ESMTP"; null: say nothing at all (a server that never greets). */
  greeting?: string | null;
  /** Replaces the reply to EHLO/LHLO (e.g. "421 4.3.2 Shutting down"; a 421 closes the connection). */
  ehloReply?: string;
  /** Default "250 2.1.5 Ok". */
  rcptReply?: (rcpt: string) => string;
  /** Default "250 2.0.0 Ok: queued"; LMTP: one per recipient (a single string answers for all). */
  dataReply?: (msg: SinkMessage) => string | string[];
  /** Default true; false for the benchmark (only count). */
  keepMessages?: boolean;
  /** Recipients accepted per transaction; more get "452 4.5.3 Too many recipients". */
  maxRcpts?: number;
}

export interface Sink {
  port: number;
  messages: SinkMessage[];
  /** Messages accepted so far (at least one recipient got 2xx after DATA). */
  count: number;
  /** Connections accepted so far. */
  connections: number;
  /** Highest number of simultaneous connections seen. */
  maxConcurrent: number;
  /** Subjects (CN) of the client certificates presented, one per TLS session that had one. */
  clientCertificates: string[];
  /** Command lines received, over all connections, in order (kept unless keepMessages is false). */
  commands: string[];
  /** Connections open now. */
  readonly openConnections: number;
  /** Closes every open connection, first sending `text` (e.g. a 421) when given: a server gone while idle. */
  dropConnections(text?: string): Promise<void>;
  /** Resolves once count >= n; rejects after timeoutMs (default 10 s). */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  /** Closes the listener and every open connection. */
  close(): Promise<void>;
}

interface Waiter {
  n: number;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

class SinkServer implements Sink, SinkHost {
  port: number;
  messages: SinkMessage[] = [];
  count = 0;
  connections = 0;
  maxConcurrent = 0;
  clientCertificates: string[] = [];
  commands: string[] = [];
  readonly open = new Set<SinkSession>();
  readonly sessions = new Set<Promise<void>>();
  readonly #waiters = new Set<Waiter>();
  #acceptLoop: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(readonly listener: Deno.Listener, readonly opts: SinkOptions) {
    this.port = listener.addr.transport === "unix" ? 0 : (listener.addr as Deno.NetAddr).port;
  }

  start(): void {
    this.#acceptLoop = (async () => {
      try {
        for await (const conn of this.listener) {
          this.connections++;
          const session = new SinkSession(this, conn);
          this.open.add(session);
          if (this.opts.path === undefined) (conn as Deno.TcpConn).setNoDelay(true);
          this.maxConcurrent = Math.max(this.maxConcurrent, this.open.size);
          const s = session.run().finally(() => {
            this.open.delete(session);
            this.sessions.delete(s);
          });
          this.sessions.add(s);
        }
      } catch {
        // listener closed
      }
    })();
  }

  get openConnections(): number {
    return this.open.size;
  }

  accepted(msg: SinkMessage): void {
    this.count++;
    if (this.opts.keepMessages !== false) this.messages.push(msg);
    for (const w of this.#waiters) {
      if (this.count >= w.n) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.count >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        n,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(new Error(`wait for ${n} messages: only ${this.count} after ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.listener.close();
    } catch {
      // already closed
    }
    for (const session of this.open) closeQuietly(session.stream);
    await this.#acceptLoop;
    await Promise.allSettled([...this.sessions]);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`wait for ${w.n} messages: sink closed with ${this.count}`));
    }
    this.#waiters.clear();
  }

  async dropConnections(text?: string): Promise<void> {
    const sessions = [...this.open];
    for (const session of sessions) {
      if (text !== undefined) await session.send(text + "\r\n").catch(() => {});
      closeQuietly(session.stream);
    }
    await Promise.allSettled([...this.sessions]);
  }
}

/** Starts a sink on 127.0.0.1 (port 0 = any free port). */
export function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const listener = opts.path !== undefined
    ? Deno.listen({ transport: "unix", path: opts.path })
    : Deno.listen({ hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 0 });
  const server = new SinkServer(listener, opts);
  server.start();
  return Promise.resolve(server);
}
