// smar's maps (sendmail X `map NAME { type = ...; }`): key/value lookups behind one interface, whatever
// their type. `hash` and `passwd` maps are loaded by components/maps/load.ts (in memory, or a SQLite map
// looked up through a prepared statement); `sequence` asks its maps in order; `socket` asks a socketmap
// server (map_socket.ts). Keys are case-insensitive. Nothing is read per lookup except through SQLite and
// socket maps. Reads only the map's file (or talks to its socket).

import type { MapSpec } from "../../config/types.ts";
import { loadMap, type MapLookup } from "../maps/load.ts";
import type { MapTextOptions } from "../maps/map_text.ts";
import { openSocketMap } from "./map_socket.ts";

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
