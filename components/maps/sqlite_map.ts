// The SQLite form of a map, as `deno task createmap` builds it (table `map(key, value)`, keys in lower
// case): telling it apart from a text map by the SQLite file header, and opening one for lookups through
// prepared statements. Reads only the map's file.

import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { MapSpec } from "../../config/types.ts";
import type { MapLookup } from "./load.ts";

const SQLITE_HEADER = "SQLite format 3\0";

/** Whether `bytes` start with the SQLite database header. */
export function isSqliteHeader(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, 16)) === SQLITE_HEADER;
}

/** Whether the file at `path` is a SQLite database (reads its first 16 bytes); throws when unreadable. */
export async function isSqliteFile(path: string): Promise<boolean> {
  using f = await Deno.open(path, { read: true });
  const head = new Uint8Array(16);
  let got = 0;
  while (got < head.length) {
    const n = await f.read(head.subarray(got));
    if (n === null) break;
    got += n;
  }
  return isSqliteHeader(head.subarray(0, got));
}

/** Opens a SQLite map read-only; throws an Error naming the map when it cannot. */
export function openSqliteMap(spec: MapSpec): MapLookup {
  let db: DatabaseSync;
  let get: StatementSync;
  let all: StatementSync;
  let range: StatementSync;
  try {
    db = new DatabaseSync(spec.file, { readOnly: true });
    get = db.prepare("SELECT value FROM map WHERE key = ?");
    all = db.prepare("SELECT key, value FROM map");
    range = db.prepare("SELECT 1 AS found FROM map WHERE key >= ? AND key < ? LIMIT 1");
  } catch (err) {
    throw new Error(`Load map ${spec.name}: cannot open SQLite map ${spec.file}: ${(err as Error).message}`);
  }
  return {
    name: spec.name,
    file: spec.file,
    lookup: (key) => {
      const row = get.get(key.toLowerCase()) as { value?: unknown } | undefined;
      return typeof row?.value === "string" ? row.value : undefined;
    },
    *entries() {
      for (const row of all.iterate() as Iterable<{ key: unknown; value: unknown }>) {
        if (typeof row.key === "string" && typeof row.value === "string") yield [row.key, row.value];
      }
    },
    hasPrefix: (prefix) => range.get(prefix, prefix + "\uffff") !== undefined,
    close: () => db.close(),
  };
}
