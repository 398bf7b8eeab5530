// Maps (sendmail X `map NAME { type = hash; file = ...; }`): key/value lookups loaded from either a plain
// text file (`LHS<whitespace>RHS` per line, `#` comments, blank lines ignored) or a SQLite map built by
// `deno task createmap` (table `map(key TEXT PRIMARY KEY, value TEXT)`), told apart by the SQLite file
// header. Keys are case-insensitive (stored and looked up in lower case). Reads only the map's file.

import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { MapSpec } from "../../config/types.ts";

export interface MapLookup {
  readonly name: string;
  readonly file: string;
  /** The value for `key` (looked up in lower case), or undefined. */
  lookup(key: string): string | undefined;
  /** Every entry (for checks at load time; a SQLite map streams them). */
  entries(): Iterable<[string, string]>;
  close(): void;
}

export interface MapParse {
  entries: Map<string, string>;
  /** `file:line: problem` for each bad line. */
  errors: string[];
}

const SQLITE_HEADER = "SQLite format 3\0";

/** Parses the text map format; bad lines are reported, not thrown. */
export function parseMapText(text: string, file: string): MapParse {
  const entries = new Map<string, string>();
  const errors: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const m = /^(\S+)\s+(.*\S)\s*$/.exec(trimmed);
    const where = `${file}:${i + 1}`;
    if (!m) {
      errors.push(`${where}: missing value for key ${JSON.stringify(trimmed)}`);
      continue;
    }
    const key = m[1].toLowerCase();
    if (entries.has(key)) {
      errors.push(`${where}: duplicate key ${JSON.stringify(m[1])}`);
      continue;
    }
    entries.set(key, m[2]);
  }
  return { entries, errors };
}

/** Whether `bytes` start with the SQLite database header. */
export function isSqliteHeader(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, 16)) === SQLITE_HEADER;
}

/** Loads the map `spec` names; throws an Error naming the file on a missing, unreadable or bad map. */
export async function loadMap(spec: MapSpec): Promise<MapLookup> {
  if (spec.type !== "hash") throw new Error(`Load map ${spec.name}: unsupported type ${spec.type}`);
  let head: Uint8Array;
  try {
    using f = await Deno.open(spec.file, { read: true });
    head = new Uint8Array(16);
    let got = 0;
    while (got < 16) {
      const n = await f.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
    head = head.subarray(0, got);
  } catch (err) {
    throw new Error(`Load map ${spec.name}: cannot read ${spec.file}: ${(err as Error).message}`);
  }
  return isSqliteHeader(head) ? openSqliteMap(spec) : await loadTextMap(spec);
}

async function loadTextMap(spec: MapSpec): Promise<MapLookup> {
  let text: string;
  try {
    text = await Deno.readTextFile(spec.file);
  } catch (err) {
    throw new Error(`Load map ${spec.name}: cannot read ${spec.file}: ${(err as Error).message}`);
  }
  const { entries, errors } = parseMapText(text, spec.file);
  if (errors.length > 0) {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    throw new Error(`Load map ${spec.name}: ${errors[0]}${more}`);
  }
  return {
    name: spec.name,
    file: spec.file,
    lookup: (key) => entries.get(key.toLowerCase()),
    entries: () => entries.entries(),
    close: () => {},
  };
}

function openSqliteMap(spec: MapSpec): MapLookup {
  let db: DatabaseSync;
  let get: StatementSync;
  let all: StatementSync;
  try {
    db = new DatabaseSync(spec.file, { readOnly: true });
    get = db.prepare("SELECT value FROM map WHERE key = ?");
    all = db.prepare("SELECT key, value FROM map");
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
    close: () => db.close(),
  };
}
