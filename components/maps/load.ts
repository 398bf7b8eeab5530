// Loading the maps whose every lookup is answered from memory or SQLite, without other I/O: `hash` (a
// plain text file held in memory, or a SQLite map built by `deno task createmap`, told apart by the
// SQLite file header) and `passwd` (local accounts from a passwd-format file). smar builds its policy
// maps on them (smar/maps.ts adds sequences and socket maps); qmgr reads its qmgr_conf map with them.
// Keys are case-insensitive. Reads only the map's file.

import type { MapSpec } from "../../config/types.ts";
import { type MapTextOptions, parseMapText } from "./map_text.ts";
import { isSqliteFile, openSqliteMap } from "./sqlite_map.ts";

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

/** Loads a hash or passwd map (their lookups need no I/O beyond SQLite); throws naming the map. */
export async function loadMap(spec: MapSpec, opts: MapTextOptions = {}): Promise<MapLookup> {
  if (spec.type === "passwd") return await loadPasswdMap(spec);
  if (spec.type !== "hash") throw new Error(`Load map ${spec.name}: a ${spec.type} map cannot be used here`);
  return await loadHashMap(spec, opts);
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

async function loadHashMap(spec: MapSpec, opts: MapTextOptions): Promise<MapLookup> {
  let sqlite: boolean;
  try {
    sqlite = await isSqliteFile(spec.file);
  } catch (err) {
    throw new Error(`Load map ${spec.name}: cannot read ${spec.file}: ${(err as Error).message}`);
  }
  if (sqlite) return openSqliteMap(spec);
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
