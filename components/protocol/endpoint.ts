// A worker's side of the peer channels: typed requests with ids and deadlines, responses and notices.
// Receives PeerFrames on the ports the MCP hands over; validates every incoming body before the handler
// sees it, and checks that its type is one its sender may send (the tag's prefix names the sender:
// `smtps.check_rcpt` only from smtps; `rpc.failure` from anyone), so no worker answers a peer posing as
// another. A request never throws: an unreachable peer, a deadline or a failing handler yields an
// `rpc.failure` body, so callers always have an answer to turn into a 4xx. A component may run as several
// workers (smtps with processes > 1): each is its own peer, `smtps@2` (peerId()), with its own port, so a
// request is answered on the port it came from and a restart of one fails only the requests to that one.

import {
  type Message,
  type PeerName,
  PROTOCOL_VERSION,
  type RpcFailure,
  type WorkerName,
} from "./messages.ts";
import type { PeerFrame } from "./frames.ts";
import { validateMessage } from "./validate.ts";
import { log } from "../util/log.ts";

/**
 * A peer's name on this side: the component's name, or `name@instance` for one of its several workers
 * (`smtps@2`). `from` is always the component's name; `peer` tells its workers apart.
 */
export type PeerId = string;

/** The peer id of `name`'s worker `instance` (just `name` when the component runs one worker). */
export function peerId(name: PeerName, instance?: number): PeerId {
  return instance === undefined ? name : `${name}@${instance}`;
}

export type Handler = (
  from: PeerName,
  body: Message,
  peer: PeerId,
) => Promise<Message | void> | Message | void;

interface Pending {
  peer: PeerId;
  resolve: (m: Message) => void;
  timer: ReturnType<typeof setTimeout>;
}

export const DEFAULT_REQUEST_TIMEOUT = 60_000;

export class Endpoint {
  readonly #ports = new Map<PeerId, { name: PeerName; port: MessagePort }>();
  readonly #pending = new Map<number, Pending>();
  readonly #peerListeners = new Set<(peer: PeerId, name: PeerName) => void>();
  #nextId = 1;
  #handler: Handler = () => {};

  constructor(readonly name: WorkerName) {}

  /** Installs the one handler for requests and notices from any peer. */
  handle(handler: Handler): void {
    this.#handler = handler;
  }

  /**
   * Uses `port` for `peer` (its worker `instance`, when it runs several) from now on; requests still
   * waiting on the old port fail at once, and onPeer listeners hear of the new port (a peer restarted).
   */
  setPeer(peer: PeerName, port: MessagePort, instance?: number): void {
    const id = peerId(peer, instance);
    const old = this.#ports.get(id);
    if (old) {
      old.port.onmessage = null;
      old.port.close();
    }
    this.#failPending(id, `${id} restarted`);
    this.#ports.set(id, { name: peer, port });
    port.onmessage = (e: MessageEvent) => this.#receive(peer, id, e.data);
    port.start();
    for (const listener of [...this.#peerListeners]) listener(id, peer);
  }

  /** Calls `listener` whenever a peer gets a new port (its worker started or restarted). */
  onPeer(listener: (peer: PeerId, name: PeerName) => void): void {
    this.#peerListeners.add(listener);
  }

  /** Whether a port to `peer` (a component: any of its workers) is installed; it may still be restarting. */
  hasPeer(peer: PeerName | PeerId): boolean {
    if (this.#ports.has(peer)) return true;
    for (const p of this.#ports.values()) if (p.name === peer) return true;
    return false;
  }

  /** Sends a request and resolves with the peer's answer, or with an rpc.failure body. */
  request(
    peer: PeerName | PeerId,
    body: Message,
    timeoutMs = DEFAULT_REQUEST_TIMEOUT,
  ): Promise<Message> {
    const port = this.#ports.get(peer)?.port;
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

  /** The peer ids of every worker of `name` wired now (`smtps`, or `smtps@1`, `smtps@2` ...). */
  peersOf(name: PeerName): PeerId[] {
    return [...this.#ports].filter(([, p]) => p.name === name).map(([id]) => id);
  }

  /** Sends a notice to every worker of component `name` (each smtps worker hears qmgr's disk state). */
  broadcast(name: PeerName, body: Message): void {
    const frame: PeerFrame = { v: PROTOCOL_VERSION, kind: "notify", body };
    let sent = 0;
    for (const p of this.#ports.values()) {
      if (p.name !== name) continue;
      p.port.postMessage(frame);
      sent++;
    }
    if (sent === 0) log.debug(this.name, `notice ${body.type} to ${name} dropped: not wired`);
  }

  /** Sends a notice that expects no answer; dropped (and logged) when the peer is not wired. */
  notify(peer: PeerName | PeerId, body: Message): void {
    const port = this.#ports.get(peer)?.port;
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
    for (const { port } of this.#ports.values()) {
      port.onmessage = null;
      port.close();
    }
    this.#ports.clear();
  }

  #failPending(peer: PeerId, reason: string): void {
    for (const [id, p] of this.#pending) {
      if (p.peer !== peer) continue;
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.resolve(failure(reason));
    }
  }

  #receive(peer: PeerName, id: PeerId, data: unknown): void {
    const frame = data as PeerFrame;
    if (typeof frame !== "object" || frame === null || frame.v !== PROTOCOL_VERSION) {
      log.error(this.name, `dropped a frame from ${id}: wrong protocol version or not a frame`);
      return;
    }
    const problem = validateMessage(frame.body);
    if (problem) {
      log.error(this.name, `dropped a ${frame.kind} from ${id}: ${problem}`);
      if (frame.kind === "request") this.#respond(id, frame.id, failure(`invalid request: ${problem}`));
      return;
    }
    const sender = senderOf(frame.body.type);
    if (sender !== "rpc" && sender !== peer) {
      log.error(
        this.name,
        `dropped a ${frame.kind} ${frame.body.type} from ${id}: only ${sender} sends it`,
      );
      if (frame.kind === "request") {
        this.#respond(id, frame.id, failure(`${peer} may not send ${frame.body.type}`));
      }
      return;
    }
    switch (frame.kind) {
      case "response": {
        const p = this.#pending.get(frame.id);
        if (!p || p.peer !== id) return; // late answer after a deadline or restart
        clearTimeout(p.timer);
        this.#pending.delete(frame.id);
        p.resolve(frame.body);
        return;
      }
      case "request":
        this.#dispatch(peer, id, frame.body).then((answer) => {
          this.#respond(id, frame.id, answer ?? failure(`${frame.body.type} has no answer`));
        });
        return;
      case "notify":
        this.#dispatch(peer, id, frame.body);
        return;
      default: {
        const never: never = frame;
        log.error(this.name, `dropped an unknown frame from ${id}: ${JSON.stringify(never).slice(0, 80)}`);
      }
    }
  }

  async #dispatch(peer: PeerName, id: PeerId, body: Message): Promise<Message | void> {
    try {
      return await this.#handler(peer, body, id);
    } catch (err) {
      log.error(this.name, `handling ${body.type} from ${id} failed: ${(err as Error).stack ?? err}`);
      return failure(`${this.name} failed on ${body.type}: ${(err as Error).message}`);
    }
  }

  #respond(peer: PeerId, id: number, body: Message): void {
    const frame: PeerFrame = { v: PROTOCOL_VERSION, kind: "response", id, body };
    this.#ports.get(peer)?.port.postMessage(frame);
  }
}

/** The component a message type belongs to (its sender): the tag's prefix, `rpc` for `rpc.failure`. */
export function senderOf(type: Message["type"]): string {
  return type.slice(0, type.indexOf("."));
}

export function failure(reason: string): RpcFailure {
  return { type: "rpc.failure", reason };
}
