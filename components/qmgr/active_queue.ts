// The active queue (AQ): the recipients qmgr is working on right now (being routed, waiting for a
// connection slot, or being delivered), bounded by AQ_max_entries. Everything else waits in the store
// until there is room. Slots can be reserved before a commit so that a freshly committed message goes
// straight into the AQ without a second trip through the database. The messages of active recipients are
// kept once each (reference counted), not per recipient.
// Pure memory; touches nothing.

import type { RecipientSpec } from "../protocol/messages.ts";
import type { StoredMessage } from "./store_rows.ts";

export interface AqEntry extends RecipientSpec {
  messageId: string;
  index: number;
  /** Delivery attempts before this one. */
  tries: number;
}

const key = (messageId: string, index: number) => `${messageId}/${index}`;

export class ActiveQueue {
  readonly max: number;
  readonly #entries = new Map<string, AqEntry>();
  readonly #messages = new Map<string, { message: StoredMessage; refs: number }>();
  #reserved = 0;

  constructor(max: number) {
    this.max = Math.max(1, max);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Free slots: neither taken by an entry nor reserved. */
  get room(): number {
    return Math.max(0, this.max - this.#entries.size - this.#reserved);
  }

  /** Reserves up to `n` slots; returns how many were granted. */
  reserve(n: number): number {
    const granted = Math.min(n, this.room);
    this.#reserved += granted;
    return granted;
  }

  /** Gives back reserved slots that will not be used. */
  release(n: number): void {
    this.#reserved = Math.max(0, this.#reserved - n);
  }

  /** Adds entries of one message; `reserved` says they fill slots reserved earlier. */
  add(message: StoredMessage, entries: AqEntry[], reserved = false): void {
    if (reserved) this.release(entries.length);
    let m = this.#messages.get(message.id);
    if (!m) {
      m = { message, refs: 0 };
      this.#messages.set(message.id, m);
    }
    for (const e of entries) {
      const k = key(e.messageId, e.index);
      if (this.#entries.has(k)) continue;
      this.#entries.set(k, e);
      m.refs++;
    }
    if (m.refs === 0) this.#messages.delete(message.id);
  }

  has(messageId: string, index: number): boolean {
    return this.#entries.has(key(messageId, index));
  }

  get(messageId: string, index: number): AqEntry | undefined {
    return this.#entries.get(key(messageId, index));
  }

  message(id: string): StoredMessage | undefined {
    return this.#messages.get(id)?.message;
  }

  /** Removes an entry (its attempt is over); drops the message when no entry refers to it. */
  remove(messageId: string, index: number): AqEntry | undefined {
    const k = key(messageId, index);
    const e = this.#entries.get(k);
    if (!e) return undefined;
    this.#entries.delete(k);
    const m = this.#messages.get(messageId);
    if (m && --m.refs <= 0) this.#messages.delete(messageId);
    return e;
  }

  /** Empties the queue (stop). */
  clear(): void {
    this.#entries.clear();
    this.#messages.clear();
    this.#reserved = 0;
  }
}
