// Sending log lines to a syslog server: RFC 3164 messages (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: TEXT`)
// over UDP (one datagram each, node:dgram) or TCP (one line each, LF-terminated: RFC 6587's
// non-transparent framing, which rsyslog and syslog-ng accept). Logging never waits for the network and
// never fails the caller: lines wait in a bounded queue while a TCP connection is (re)made, the oldest are
// dropped beyond it, and the count dropped is reported in the next line that gets through.
// Why not /dev/log: Deno 2.9.6 has unix datagram sockets only behind --unstable-net, and only from a bound
// socket path of our own; a syslog daemon's UDP or TCP input on loopback does the same job.
// Touches: the one server address it is given (connect; UDP also binds an ephemeral local port).

import dgram from "node:dgram";
import type { SyslogTarget } from "../../config/log_settings.ts";

/** Lines kept while the server cannot be reached. */
const MAX_QUEUED = 1000;
/** Waits between TCP connection attempts (ms), doubling up to the last. */
const RECONNECT_MS = [100, 200, 500, 1000, 2000, 5000];

const encoder = new TextEncoder();

export class SyslogTransport {
  readonly target: SyslogTarget;
  #queue: string[] = [];
  #dropped = 0;
  #closed = false;
  #udp: dgram.Socket | undefined;
  #conn: Deno.Conn | undefined;
  #pump: Promise<void> | undefined;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;

  constructor(target: SyslogTarget) {
    this.target = target;
  }

  sameAs(t: SyslogTarget): boolean {
    return t.transport === this.target.transport && t.host === this.target.host &&
      t.port === this.target.port;
  }

  /** Queues one message (without its line end). */
  send(message: string): void {
    if (this.#closed) return;
    if (this.#queue.length >= MAX_QUEUED) {
      this.#queue.shift();
      this.#dropped++;
    }
    this.#queue.push(message);
    this.#pump ??= this.#run().finally(() => this.#pump = undefined);
  }

  /** Resolves once the queue is empty (or the transport closed). */
  async flush(): Promise<void> {
    while (this.#pump && !this.#closed) await this.#pump;
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
    clearTimeout(this.#timer);
    this.#wake?.();
    try {
      this.#udp?.close();
    } catch { /* already closed */ }
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#udp = undefined;
    this.#conn = undefined;
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0 && !this.#closed) {
      let message = this.#queue[0];
      if (this.#dropped > 0) message += ` (smx: ${this.#dropped} earlier log lines dropped)`;
      try {
        if (this.target.transport === "udp") await this.#sendUdp(message);
        else await this.#sendTcp(message);
        this.#queue.shift();
        this.#dropped = 0;
        this.#attempt = 0;
      } catch {
        if (this.#closed) return;
        try {
          this.#conn?.close();
        } catch { /* gone */ }
        this.#conn = undefined;
        const wait = RECONNECT_MS[Math.min(this.#attempt++, RECONNECT_MS.length - 1)];
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          this.#timer = setTimeout(resolve, wait);
        });
      }
    }
  }

  #sendUdp(message: string): Promise<void> {
    this.#udp ??= dgram.createSocket(this.target.host.includes(":") ? "udp6" : "udp4");
    const socket = this.#udp;
    return new Promise((resolve, reject) => {
      socket.send(message, this.target.port, this.target.host, (err) => err ? reject(err) : resolve());
    });
  }

  async #sendTcp(message: string): Promise<void> {
    this.#conn ??= await Deno.connect({ hostname: this.target.host, port: this.target.port });
    const bytes = encoder.encode(`${message}\n`);
    for (let done = 0; done < bytes.length;) done += await this.#conn.write(bytes.subarray(done));
  }
}
