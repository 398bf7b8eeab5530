// The AUTH credentials map of an smtps section: `user secret [secret ...]` entries (the secret forms of
// sasl_secrets.ts: a PBKDF2 hash, SCRAM keys, CRAM-MD5's HMAC states), either a SQLite map built by
// `deno task createmap auth` or the same text format, told apart by the SQLite header. User names are case-insensitive (looked up in lower case, as every map key). The file is
// read at each check, so a rebuilt map takes effect without a restart; AUTH is rare enough for that.
// Touches: the map file, read-only.

import { DatabaseSync } from "node:sqlite";
import { isSqliteFile } from "../maps/sqlite_map.ts";
import { DEFAULT_ITERATIONS, dummyVerify } from "./password_hash.ts";
import { mechanismsServed, parseSecrets, type Secret, verifyPlain } from "./sasl_secrets.ts";

/** Checks user names and passwords against one credentials map file. */
export class CredentialsMap {
  constructor(readonly file: string) {}

  /** Reads the map once to prove it is there and readable; throws an Error naming the file otherwise. */
  async check(): Promise<void> {
    await this.#lookup("");
  }

  /** True when `password` matches a secret stored for `user`; an unknown user costs as much time. */
  async verify(user: string, password: string): Promise<boolean> {
    const secrets = await this.secrets(user);
    if (secrets === undefined || secrets.length === 0) {
      await dummyVerify(password, DEFAULT_ITERATIONS);
      return false;
    }
    return await verifyPlain(password, secrets);
  }

  /** The secrets stored for `user`, or undefined for an unknown user. */
  async secrets(user: string): Promise<Secret[] | undefined> {
    const stored = await this.#lookup(user.toLowerCase());
    return stored === undefined ? undefined : parseSecrets(stored);
  }

  /** The mechanisms every user of the map can use (PLAIN and LOGIN for an empty map). */
  async servedByAll(): Promise<Set<string>> {
    let all: Set<string> | undefined;
    for (const value of await this.#values()) {
      const m = mechanismsServed(parseSecrets(value));
      all = all ? new Set([...all].filter((x) => m.has(x))) : m;
    }
    return all ?? new Set(["PLAIN", "LOGIN"]);
  }

  async #values(): Promise<string[]> {
    try {
      if (await isSqliteFile(this.file)) {
        const db = new DatabaseSync(this.file, { readOnly: true });
        try {
          return (db.prepare("SELECT value FROM map").all() as { value?: unknown }[])
            .flatMap((r) => typeof r.value === "string" ? [r.value] : []);
        } finally {
          db.close();
        }
      }
      return [
        ...(await Deno.readTextFile(this.file)).split("\n").flatMap((raw) => {
          const m = /^(\S+)\s+(.+)$/.exec(raw.trim());
          return m && !raw.trim().startsWith("#") ? [m[2]] : [];
        }),
      ];
    } catch (err) {
      throw new Error(`Read credentials map ${this.file}: ${(err as Error).message}`);
    }
  }

  async #lookup(key: string): Promise<string | undefined> {
    let text: string;
    try {
      if (await isSqliteFile(this.file)) return this.#sqlite(key);
      text = await Deno.readTextFile(this.file);
    } catch (err) {
      const message = (err as Error).message;
      throw message.startsWith("Read credentials map")
        ? err
        : new Error(`Read credentials map ${this.file}: ${message}`);
    }
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      const m = /^(\S+)\s+(.+)$/.exec(line);
      if (m && m[1].toLowerCase() === key) return m[2];
    }
    return undefined;
  }

  #sqlite(key: string): string | undefined {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(this.file, { readOnly: true });
      const row = db.prepare("SELECT value FROM map WHERE key = ?").get(key) as
        | { value?: unknown }
        | undefined;
      return typeof row?.value === "string" ? row.value : undefined;
    } catch (err) {
      throw new Error(`Read credentials map ${this.file}: ${(err as Error).message}`);
    } finally {
      db?.close();
    }
  }
}
