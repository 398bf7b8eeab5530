// The queue store's tables, indexes and states, and the upgrade of a database written by an older qmgr
// (columns added since are appended with ALTER TABLE, so old and new files have the same column order).
// - messages: one row per envelope (`held` set by qmgrctl hold or a milter's quarantine, with
//   `hold_reason` for a quarantine; `tls_flags`: REQUIRETLS and TLS-Required: No, RFC 8689);
// - recipients: one row per recipient with its delivery state, tries, next retry, last reply and relay,
//   `notice`: the DSNs it still owes (bits below), and `errors_to`: its list owner (RecipientSpec);
// - history: one row per delivery attempt of a recipient (qmgrctl show), deleted with its message.
// May touch: the database it is given.

import type { DatabaseSync } from "node:sqlite";

/** Recipient states. WAITING rows are due at next_try; ACTIVE ones are in the active queue; HELD wait for
 * qmgrctl release. SENT and FAILED are final. */
export const WAITING = 0;
export const ACTIVE = 1;
export const SENT = 2;
export const FAILED = 3;
export const HELD = 4;
export type DoneState = typeof SENT | typeof FAILED;

/** Notice bits of a recipient: DSNs still to send (PENDING), and what was already decided. */
export const NOTICE_FAILED = 1;
export const NOTICE_DELAYED = 2;
export const NOTICE_SUCCESS = 4;
export const PENDING = NOTICE_FAILED | NOTICE_DELAYED | NOTICE_SUCCESS;
/** The delay notice was sent (at most one per recipient). */
export const DELAY_SENT = 8;
/** The success was a final delivery (LMTP), not a relay to a host without DSN support. */
export const DELIVERED = 16;

const TABLES = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  cdb_path TEXT NOT NULL,
  size INTEGER NOT NULL,
  arrival INTEGER NOT NULL,
  sender TEXT NOT NULL,
  client_ip TEXT NOT NULL,
  client_helo TEXT NOT NULL,
  body_type TEXT,
  smtputf8 INTEGER NOT NULL,
  envid TEXT,
  ret TEXT,
  held INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recipients (
  message_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  address TEXT NOT NULL,
  notify TEXT,
  orcpt TEXT,
  state INTEGER NOT NULL,
  tries INTEGER NOT NULL DEFAULT 0,
  next_try INTEGER NOT NULL,
  last_reply TEXT,
  notice INTEGER NOT NULL DEFAULT 0,
  last_relay TEXT,
  errors_to TEXT,
  last_result TEXT,
  PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
  message_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  at INTEGER NOT NULL,
  status TEXT NOT NULL,
  relay TEXT,
  reply TEXT NOT NULL
);
`;

const INDEXES = `
CREATE INDEX IF NOT EXISTS recipients_due ON recipients (state, next_try);
CREATE INDEX IF NOT EXISTS recipients_notice ON recipients (message_id) WHERE (notice & ${PENDING}) != 0;
CREATE INDEX IF NOT EXISTS history_message ON history (message_id);
`;

/** Columns added after the first release, in the order they were added: [table, column, definition]. */
const ADDED: [string, string, string][] = [
  ["messages", "held", "INTEGER NOT NULL DEFAULT 0"],
  ["recipients", "notice", "INTEGER NOT NULL DEFAULT 0"],
  ["recipients", "last_relay", "TEXT"],
  ["recipients", "errors_to", "TEXT"],
  ["recipients", "last_result", "TEXT"],
  ["messages", "hold_reason", "TEXT"],
  // RFC 8689: TLS_REQUIRE (REQUIRETLS) and TLS_NOT_REQUIRED (TLS-Required: No) bits.
  ["messages", "tls_flags", "INTEGER NOT NULL DEFAULT 0"],
];

/** messages.tls_flags bits. */
export const TLS_REQUIRE = 1;
export const TLS_NOT_REQUIRED = 2;

/** Creates what is missing: tables, columns of older versions, indexes. */
export function applySchema(db: DatabaseSync): void {
  db.exec(TABLES);
  for (const [table, column, definition] of ADDED) {
    const columns = db.prepare(`PRAGMA table_info(${table})`).all().map((r) => r.name);
    if (!columns.includes(column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
  }
  db.exec(INDEXES);
}
