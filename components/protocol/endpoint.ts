// A worker's side of the peer channels: typed requests with ids and deadlines, responses and notices.
// Receives PeerFrames on the ports the MCP hands over; validates every incoming body before the handler
// sees it. A request never throws: an unreachable peer, a deadline or a failing handler yields an
// `rpc.failure` body, so callers always have an answer to turn into a 4xx.

import {
  type ComponentName,
  type Message,
  PROTOCOL_VERSION,
  type RpcFailure,
  type WorkerName,
} from "./messages.ts";
import type { PeerFrame } from "./frames.ts";
import { validateMessage } from "./validate.ts";
import { log } from "../util/log.ts";

export type Handler = (from: ComponentName, body: Message) => Promise<Message | void> | Message | void;

interface Pending {
  peer: ComponentName;
  resolve: (m: Message) => void;
  timer: ReturnType<typeof setTimeout>;
}

export const DEFAULT_REQUEST_TIMEOUT = 60_000;

export class Endpoint {
  readonly #ports = new Map<ComponentName, MessagePort>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #handler: Handler = () => {};

  constructor(readonly name: WorkerName) {}

  /** Installs the one handler for requests and notices from any peer. */
  handle(handler: Handler): void {
    this.#handler = handler;
  }

  /** Uses `port` for `peer` from now on; requests still waiting on the old port fail at once. */
  setPeer(peer: ComponentName, port: MessagePort): void {
    const old = this.#ports.get(peer);
    if (old) {
      old.onmessage = null;
      old.close();
    }
    this.#failPending(peer, `${peer} restarted`);
    this.#ports.set(peer, port);
    port.onmessage = (e: MessageEvent) => this.#receive(peer, e.data);
    port.start();
  }

  /** Whether a port to `peer` is installed (it may still be restarting behind it). */
  hasPeer(peer: ComponentName): boolean {
    return this.#ports.has(peer);
  }

  /** Sends a request and resolves with the peer's answer, or with an rpc.failure body. */
  request(peer: ComponentName, body: Message, timeoutMs = DEFAULT_REQUEST_TIMEOUT): Promise<Message> {
    const port = this.#ports.get(peer);
    if (!port) return Promise.resolve(failure(`${peer} is not available`));
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(failure(`${peer} did not answer ${body.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { peer, resolve, timer });
      const frame: PeerFrame = { v: PROTOCOL_VERSION, kind: "request", id, body };
      port.postMessage(frame);
    });
  }

  /** Sends a notice that expects no answer; dropped (and logged) when the peer is not wired. */
  notify(peer: ComponentName, body: Message): void {
    const port = this.#ports.get(peer);
    if (!port) {
      log.debug(this.name, `notice ${body.type} to ${peer} dropped: not wired`);
      return;
    }
    const frame: PeerFrame = { v: PROTOCOL_VERSION, kind: "notify", body };
    port.postMessage(frame);
  }

  /** Fails every pending request and closes all ports (worker shutdown). */
  close(): void {
    for (const peer of this.#ports.keys()) this.#failPending(peer, "endpoint closed");
    for (const port of this.#ports.values()) {
      port.onmessage = null;
      port.close();
    }
    this.#ports.clear();
  }

  #failPending(peer: ComponentName, reason: string): void {
    for (const [id, p] of this.#pending) {
      if (p.peer !== peer) continue;
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.resolve(failure(reason));
    }
  }

  #receive(peer: ComponentName, data: unknown): void {
    const frame = data as PeerFrame;
    if (typeof frame !== "object" || frame === null || frame.v !== PROTOCOL_VERSION) {
      log.error(this.name, `dropped a frame from ${peer}: wrong protocol version or not a frame`);
      return;
    }
    const problem = validateMessage(frame.body);
    if (problem) {
      log.error(this.name, `dropped a ${frame.kind} from ${peer}: ${problem}`);
      if (frame.kind === "request") this.#respond(peer, frame.id, failure(`invalid request: ${problem}`));
      return;
    }
    switch (frame.kind) {
      case "response": {
        const p = this.#pending.get(frame.id);
        if (!p || p.peer !== peer) return; // late answer after a deadline or restart
        clearTimeout(p.timer);
        this.#pending.delete(frame.id);
        p.resolve(frame.body);
        return;
      }
      case "request":
        this.#dispatch(peer, frame.body).then((answer) => {
          this.#respond(peer, frame.id, answer ?? failure(`${frame.body.type} has no answer`));
        });
        return;
      case "notify":
        this.#dispatch(peer, frame.body);
        return;
      default: {
        const never: never = frame;
        log.error(this.name, `dropped an unknown frame from ${peer}: ${JSON.stringify(never).slice(0, 80)}`);
      }
    }
  }

  async #dispatch(peer: ComponentName, body: Message): Promise<Message | void> {
    try {
      return await this.#handler(peer, body);
    } catch (err) {
      log.error(this.name, `handling ${body.type} from ${peer} failed: ${(err as Error).stack ?? err}`);
      return failure(`${this.name} failed on ${body.type}: ${(err as Error).message}`);
    }
  }

  #respond(peer: ComponentName, id: number, body: Message): void {
    const frame: PeerFrame = { v: PROTOCOL_VERSION, kind: "response", id, body };
    this.#ports.get(peer)?.postMessage(frame);
  }
}

export function failure(reason: string): RpcFailure {
  return { type: "rpc.failure", reason };
}
