// The records of the queue store (store.ts) as qmgr sees them: a message, a recipient, a recipient with
// its whole state, the end of an attempt, a due recipient; and their conversion from the SQLite rows of
// store_schema.ts's tables (and from a committed envelope). Pure; touches nothing.

import type { SQLInputValue } from "node:sqlite";
import type { Envelope, RecipientSpec } from "../protocol/messages.ts";
import { TLS_NOT_REQUIRED, TLS_REQUIRE } from "./store_schema.ts";

/** The message-level part of an envelope, as stored. */
export interface StoredMessage {
  id: string;
  cdbPath: string;
  size: number;
  arrival: number;
  sender: string;
  clientIp: string;
  clientHelo: string;
  bodyType?: Envelope["bodyType"];
  smtputf8: boolean;
  envid?: string;
  ret?: Envelope["ret"];
  /** REQUIRETLS (RFC 8689). */
  requireTls?: boolean;
  /** TLS-Required: No (RFC 8689 section 5). */
  tlsRequiredNo?: boolean;
}

/** One recipient row. */
export interface StoredRecipient extends RecipientSpec {
  messageId: string;
  index: number;
  tries: number;
}

/** A recipient row with its whole state (notices, the control socket). */
export interface RecipientRow extends StoredRecipient {
  state: number;
  nextTry: number;
  lastReply?: string;
  lastRelay?: string;
  /** The last result as reported (JSON, results.ts StoredResult). */
  lastResult?: string;
  notice: number;
}

/** The end of one delivery attempt, as recorded. */
export interface AttemptEnd {
  tries: number;
  reply: string;
  relay?: string;
  /** The structured result (JSON, results.ts storedResult()). */
  result?: string;
  /** Notice bits to add (NOTICE_*, DELAY_SENT, DELIVERED). */
  notice: number;
  /** Deferrals: bits to add only when no delay notice was decided yet (DELAY_SENT not set). */
  delayNotice?: number;
}

/** A due recipient with its message (what a scheduling round loads). */
export interface DueRecipient {
  message: StoredMessage;
  recipient: StoredRecipient;
}

/** The message-level part of an envelope, as the store keeps it. */
export function messageOf(env: Envelope): StoredMessage {
  return {
    id: env.id,
    cdbPath: env.cdbPath,
    size: env.size,
    arrival: env.arrival,
    sender: env.sender,
    clientIp: env.client.ip,
    clientHelo: env.client.helo,
    bodyType: env.bodyType,
    smtputf8: env.smtputf8 === true,
    envid: env.envid,
    ret: env.ret,
    ...(env.requireTls ? { requireTls: true } : {}),
    ...(env.tlsRequiredNo ? { tlsRequiredNo: true } : {}),
  };
}

/** A row as node:sqlite returns it. */
export type Row = Record<string, SQLInputValue>;

const opt = <T>(v: unknown): T | undefined => v === null || v === undefined ? undefined : v as T;

/** A messages row as a StoredMessage. */
export function toMessage(r: Row): StoredMessage {
  return {
    id: r.id as string,
    cdbPath: r.cdb_path as string,
    size: Number(r.size),
    arrival: Number(r.arrival),
    sender: r.sender as string,
    clientIp: r.client_ip as string,
    clientHelo: r.client_helo as string,
    bodyType: opt(r.body_type),
    smtputf8: Number(r.smtputf8) === 1,
    envid: opt(r.envid),
    ret: opt(r.ret),
    ...((Number(r.tls_flags ?? 0) & TLS_REQUIRE) !== 0 ? { requireTls: true } : {}),
    ...((Number(r.tls_flags ?? 0) & TLS_NOT_REQUIRED) !== 0 ? { tlsRequiredNo: true } : {}),
  };
}

/** A recipients row (or the recipient part of a joined row) as a StoredRecipient. */
export function toRecipient(r: Row): StoredRecipient {
  const notify = opt<string>(r.notify);
  return {
    messageId: r.message_id as string,
    index: Number(r.idx),
    address: r.address as string,
    notify: notify === undefined ? undefined : notify.split(","),
    orcpt: opt(r.orcpt),
    ...(r.errors_to !== null && r.errors_to !== undefined ? { errorsTo: r.errors_to as string } : {}),
    tries: Number(r.tries),
  };
}

/** A recipients row with its whole state. */
export function toRow(r: Row): RecipientRow {
  return {
    ...toRecipient(r),
    state: Number(r.state),
    nextTry: Number(r.next_try),
    lastReply: opt(r.last_reply),
    lastRelay: opt(r.last_relay),
    lastResult: opt(r.last_result),
    notice: Number(r.notice),
  };
}
