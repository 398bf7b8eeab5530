// The local users of the delivery agent and how a recipient's local part names one: the local_user_map
// (sendmail X map text, `user [quota]` per line, the quota a size such as 100MB, absent or 0 for none;
// or a SQLite map built by `deno task createmap`), else every `<mail_root>/<user>/Maildir` directory that
// exists. `user+detail` names user's Maildir folder `.detail`; `postmaster` may stand for a configured
// user. Reads the map file (once, at start) and, without a map, stats directories under the mail root.

import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { LdaConfig, MapSpec } from "../../config/types.ts";
import { parseSize } from "../../config/values.ts";
import { isSqliteHeader } from "../maps/sqlite_map.ts";

export interface LocalUser {
  /** The user's name: the directory under the mail root (lower case). */
  name: string;
  /** Bytes the user's Maildir may hold; 0 for no limit. */
  quota: number;
}

/** A recipient's local part resolved to a user, with the folder asked for by `+detail` (if any). */
export interface LocalTarget {
  user: LocalUser;
  detail?: string;
}

/**
 * A name safe as one directory under the mail root: letters, digits, `.`, `_`, `-`, not starting with a
 * dot (no `..`, no hidden names) and without `+` (the detail separator).
 */
export function isUserName(name: string): boolean {
  return /^[a-z0-9_-][a-z0-9._-]{0,63}$/i.test(name);
}

/** A `+detail` usable as the Maildir++ folder `.detail`: no slash, no control byte, not `.` (that is `..`). */
export function isFolderDetail(detail: string): boolean {
  // deno-lint-ignore no-control-regex
  return detail !== "" && detail !== "." && detail.length <= 200 && !/[/\\\x00-\x1f\x7f]/.test(detail);
}

/** Parses a quota value: a size (`100MB`, `65536`), `0`, `-` or `none` for no limit; undefined if bad. */
export function parseQuota(text: string | undefined): number | undefined {
  if (text === undefined) return 0;
  const t = text.trim();
  if (t === "" || t === "-" || t.toLowerCase() === "none") return 0;
  const n = parseSize(t);
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** Parses the users map text; throws an Error naming the first bad line (`file:line: problem`). */
export function parseUsersText(text: string, file: string): Map<string, LocalUser> {
  const users = new Map<string, LocalUser>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const [name, quotaText, ...extra] = line.split(/\s+/);
    const where = `${file}:${i + 1}`;
    users.set(...checkEntry(where, name, quotaText, extra.length > 0, users));
  }
  return users;
}

function checkEntry(
  where: string,
  name: string,
  quotaText: string | undefined,
  extra: boolean,
  users: Map<string, LocalUser>,
): [string, LocalUser] {
  const key = name.toLowerCase();
  if (!isUserName(name)) {
    throw new Error(`${where}: bad user name ${JSON.stringify(name)}, expected letters, digits, . _ -`);
  }
  if (users.has(key)) throw new Error(`${where}: duplicate user ${JSON.stringify(name)}`);
  const quota = parseQuota(quotaText);
  if (quota === undefined || extra) {
    throw new Error(`${where}: bad quota for ${name}, expected a size like 100MB, or 0 for none`);
  }
  return [key, { name: key, quota }];
}

export class LocalUsers {
  constructor(
    /** The users the map names; undefined when there is no map (users are the Maildirs that exist). */
    readonly listed: ReadonlyMap<string, LocalUser> | undefined,
    readonly mailRoot: string,
    readonly postmaster?: string,
  ) {}

  /** The user named `name` (any case), or undefined. */
  async find(name: string): Promise<LocalUser | undefined> {
    const key = name.toLowerCase();
    if (!isUserName(key)) return undefined;
    if (this.listed) return this.listed.get(key);
    try {
      const st = await Deno.stat(join(this.mailRoot, key, "Maildir"));
      return st.isDirectory ? { name: key, quota: 0 } : undefined;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  /**
   * Resolves a local part: the whole of it if that is a user, else `user+detail`; `postmaster` (any case)
   * goes to the configured postmaster user when it is not a user itself. Undefined for an unknown user.
   */
  async resolve(local: string): Promise<LocalTarget | undefined> {
    const whole = await this.find(local);
    if (whole) return { user: whole };
    const plus = local.indexOf("+");
    if (plus > 0) {
      const user = await this.find(local.slice(0, plus));
      if (user) return { user, detail: local.slice(plus + 1) };
    }
    if (local.toLowerCase() === "postmaster" && this.postmaster) {
      const user = await this.find(this.postmaster);
      if (user) return { user };
    }
    return undefined;
  }
}

/** Loads the users of an lda section; throws an Error saying what is wrong with the map. */
export async function loadUsers(lda: LdaConfig): Promise<LocalUsers> {
  const spec = lda.local_user_map;
  const listed = spec ? await readUsersMap(spec) : undefined;
  if (lda.postmaster !== undefined && !isUserName(lda.postmaster)) {
    throw new Error(`Load local users: bad postmaster user ${JSON.stringify(lda.postmaster)}`);
  }
  return new LocalUsers(listed, lda.mail_root, lda.postmaster?.toLowerCase());
}

async function readUsersMap(spec: MapSpec): Promise<Map<string, LocalUser>> {
  if (spec.type !== "hash") {
    throw new Error(`Load local users map ${spec.name}: the lda reads hash maps only, not ${spec.type}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(spec.file);
  } catch (err) {
    throw new Error(`Load local users map ${spec.name}: cannot read ${spec.file}: ${(err as Error).message}`);
  }
  try {
    if (!isSqliteHeader(bytes)) {
      return parseUsersText(new TextDecoder().decode(bytes), spec.file);
    }
    return readSqliteUsers(spec.file);
  } catch (err) {
    throw new Error(`Load local users map ${spec.name}: ${(err as Error).message}`);
  }
}

/** A map compiled by `deno task createmap` (table `map(key, value)`), read once at start. */
function readSqliteUsers(file: string): Map<string, LocalUser> {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const users = new Map<string, LocalUser>();
    const rows = db.prepare("SELECT key, value FROM map").all() as { key: unknown; value: unknown }[];
    for (const { key, value } of rows) {
      users.set(...checkEntry(file, String(key), value === null ? undefined : String(value), false, users));
    }
    return users;
  } finally {
    db.close();
  }
}
