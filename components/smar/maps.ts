// Maps (sendmail X `map NAME { type = ...; }`): key/value lookups behind one interface, whatever their
// type. `hash` is a plain text file held in memory or a SQLite map built by `deno task createmap` (told
// apart by the SQLite file header, looked up through a prepared statement); `sequence` asks its maps in
// order; `socket` asks a socketmap server (map_socket.ts); `passwd` reads local accounts from a
// passwd-format file. Keys are case-insensitive. Nothing is read per lookup except through SQLite and
// socket maps. Reads only the map's file (or talks to its socket).

import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { MapSpec } from "../../config/types.ts";
import { type MapTextOptions, parseMapText } from "../maps/map_text.ts";
import { openSocketMap } from "./map_socket.ts";

/** A map whose every lookup is answered synchronously from memory or SQLite (`hash`, `passwd`). */
export interface MapLookup {
  readonly name: string;
  /** The file it reads. */
  readonly file: string;
  /** The value for `key` (looked up in lower case), or undefined. */
  lookup(key: string): string | undefined;
  /** Every entry (for checks at load time; a SQLite map streams them). */
  entries(): Iterable<[string, string]>;
  /** Whether some key starts with `prefix` (lower case). */
  hasPrefix?(prefix: string): boolean;
  close(): void;
}

/** Any map smar uses for policy: hash and passwd maps, sequences, socket maps. */
export interface SmarMap {
  readonly name: string;
  /** What the map reads, for messages: its file, its socket, or its members. */
  readonly source: string;
  /** The value for `key` (case-insensitive) or undefined; rejects with MapTempError when it cannot tell. */
  get(key: string): Promise<string | undefined>;
  /** The same, synchronously, when the map needs no I/O to answer (hash, passwd, sequences of them). */
  getSync?(key: string): string | undefined;
  /** Whether some key starts with `prefix` (lower case); undefined when the map cannot tell (socket). */
  hasPrefix(prefix: string): boolean | undefined;
  close(): void;
}

/** A lookup that could not be answered now (socket map down, timed out): try again later. */
export class MapTempError extends Error {
  override name = "MapTempError";
}

const SQLITE_HEADER = "SQLite format 3\0";

/** Whether `bytes` start with the SQLite database header. */
export function isSqliteHeader(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, 16)) === SQLITE_HEADER;
}

/** Opens any map for smar's policy lookups; throws an Error naming the map and what is wrong with it. */
export async function openMap(spec: MapSpec, opts: MapTextOptions = {}): Promise<SmarMap> {
  switch (spec.type) {
    case "hash":
    case "passwd":
      return syncMap(await loadMap(spec, opts));
    case "socket":
      return openSocketMap(spec);
    case "sequence":
      return await openSequence(spec, opts);
    default: {
      const never: never = spec.type;
      throw new Error(`Load map ${spec.name}: unsupported type ${never}`);
    }
  }
}

/** Loads a hash or passwd map (their lookups need no I/O beyond SQLite); throws naming the map. */
export async function loadMap(spec: MapSpec, opts: MapTextOptions = {}): Promise<MapLookup> {
  if (spec.type === "passwd") return await loadPasswdMap(spec);
  if (spec.type !== "hash") throw new Error(`Load map ${spec.name}: a ${spec.type} map cannot be used here`);
  return await loadHashMap(spec, opts);
}

/** A synchronous map seen through the SmarMap interface. */
export function syncMap(map: MapLookup): SmarMap {
  const prefixes = new Map<string, boolean>();
  return {
    name: map.name,
    source: map.file,
    get: (key) => Promise.resolve(map.lookup(key)),
    getSync: (key) => map.lookup(key),
    hasPrefix(prefix) {
      if (map.hasPrefix) return map.hasPrefix(prefix);
      let known = prefixes.get(prefix);
      if (known === undefined) {
        known = false;
        for (const [key] of map.entries()) {
          if (key.startsWith(prefix)) {
            known = true;
            break;
          }
        }
        prefixes.set(prefix, known);
      }
      return known;
    },
    close: () => map.close(),
  };
}

async function loadHashMap(spec: MapSpec, opts: MapTextOptions): Promise<MapLookup> {
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
  if (isSqliteHeader(head)) return openSqliteMap(spec);
  let text: string;
  try {
    text = await Deno.readTextFile(spec.file);
  } catch (err) {
    throw new Error(`Load map ${spec.name}: cannot read ${spec.file}: ${(err as Error).message}`);
  }
  const { entries, errors } = parseMapText(text, spec.file, opts);
  if (errors.length > 0) {
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
    throw new Error(`Load map ${spec.name}: ${errors[0]}${more}`);
  }
  return memoryMap(spec.name, spec.file, entries);
}

/** A map held in memory. */
export function memoryMap(name: string, file: string, entries: Map<string, string>): MapLookup {
  return {
    name,
    file,
    lookup: (key) => entries.get(key.toLowerCase()),
    entries: () => entries.entries(),
    close: () => {},
  };
}

function openSqliteMap(spec: MapSpec): MapLookup {
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

/** Local accounts: `name:password:uid:gid:gecos:home:shell` lines; the value is the home directory. */
async function loadPasswdMap(spec: MapSpec): Promise<MapLookup> {
  let text: string;
  try {
    text = await Deno.readTextFile(spec.file);
  } catch (err) {
    throw new Error(`Load map ${spec.name}: cannot read ${spec.file}: ${(err as Error).message}`);
  }
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const fields = line.replace(/\r$/, "").split(":");
    if (fields.length < 7 || fields[0] === "") continue;
    const key = fields[0].toLowerCase();
    if (!entries.has(key)) entries.set(key, fields[5]);
  }
  return memoryMap(spec.name, spec.file, entries);
}

async function openSequence(spec: MapSpec, opts: MapTextOptions): Promise<SmarMap> {
  const members: SmarMap[] = [];
  try {
    for (const m of spec.maps ?? []) members.push(await openMap(m, opts));
  } catch (err) {
    for (const m of members) m.close();
    throw err;
  }
  const getSync = (key: string) => {
    for (const m of members) {
      const v = m.getSync!(key);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  return {
    name: spec.name,
    source: `sequence of ${members.map((m) => m.name).join(", ")}`,
    async get(key) {
      for (const m of members) {
        const v = m.getSync ? m.getSync(key) : await m.get(key);
        if (v !== undefined) return v;
      }
      return undefined;
    },
    getSync: members.every((m) => m.getSync) ? getSync : undefined,
    hasPrefix(prefix) {
      let unknown = false;
      for (const m of members) {
        const has = m.hasPrefix(prefix);
        if (has) return true;
        if (has === undefined) unknown = true;
      }
      return unknown ? undefined : false;
    },
    close: () => members.forEach((m) => m.close()),
  };
}
