// The qmgr_conf map (sendmail X README 3.8.1, the `conf` option of qmgr): limits per IP address or net.
// Keys are `tag:address`, `tag:net` (leading octets, `10.1` for 10.1.0.0/16) or `tag:` alone (the map's
// default for every address); the most specific entry wins, then the option that sets the binary default:
//   oci:  initial outgoing connections to a destination IP (qmgr.smtpc.initial_connections)
//   ocm:  most outgoing connections to a destination IP (qmgr.smtpc.max_connections)
//   octo: how long the outgoing connection cache keeps a host that is down (retry_min_delay)
//   icr:  incoming connections per 60 s from a client IP (qmgr.smtps.max_connection_rate; 0: no limit)
//   icm:  concurrent incoming sessions from a client IP (qmgr.smtps.max_connections)
// Loaded once at start (a text or SQLite map, by the loader smar's maps use too); a bad entry stops the
// MTA (fatal).
// May touch: read the map file.

import type { MapSpec, QmgrConfig } from "../../config/types.ts";
import { parseNumber, parseTime } from "../../config/values.ts";
import { loadMap, type MapLookup } from "../maps/load.ts";

export type ConfTag = "oci" | "ocm" | "octo" | "icr" | "icm";
export const CONF_TAGS: readonly ConfTag[] = ["oci", "ocm", "octo", "icr", "icm"];

/** A value of a tag, as a number: a count, or (octo) a time in ms. */
function parseValue(tag: ConfTag, text: string): number | undefined {
  const n = tag === "octo" ? parseTime(text.replace(/\s+/g, "")) : parseNumber(text);
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The keys to try for `ip`, most specific first: the address, its nets, then the bare tag. */
export function lookupKeys(tag: ConfTag, ip: string): string[] {
  const address = ip.toLowerCase().replace(/^::ffff:(?=\d+\.)/, "");
  const sep = address.includes(":") ? ":" : ".";
  const parts = address.split(sep);
  const keys: string[] = [];
  for (let n = parts.length; n > 0; n--) keys.push(`${tag}:${parts.slice(0, n).join(sep)}`);
  keys.push(`${tag}:`);
  return keys;
}

export class QmgrConf {
  readonly #map: MapLookup | undefined;
  readonly #defaults: Record<ConfTag, number>;

  constructor(map: MapLookup | undefined, q: QmgrConfig) {
    this.#map = map;
    this.#defaults = {
      oci: q.smtpc.initial_connections,
      ocm: q.smtpc.max_connections,
      octo: q.retry_min_delay,
      icr: q.smtps.max_connection_rate,
      icm: q.smtps.max_connections,
    };
  }

  /** Loads the map `spec` names (none: the options alone); throws naming the first bad entry. */
  static async load(spec: MapSpec | undefined, q: QmgrConfig): Promise<QmgrConf> {
    if (!spec) return new QmgrConf(undefined, q);
    const map = await loadMap(spec);
    try {
      for (const [key, value] of map.entries()) {
        const problem = checkEntry(key, value);
        if (problem) throw new Error(`Load the qmgr_conf map ${spec.name} (${spec.file}): ${problem}`);
      }
    } catch (err) {
      map.close();
      throw err;
    }
    return new QmgrConf(map, q);
  }

  /** The value of `tag` for `ip`: the most specific map entry, else the option's value. */
  get(tag: ConfTag, ip: string): number {
    if (this.#map) {
      for (const key of lookupKeys(tag, ip)) {
        const text = this.#map.lookup(key);
        const value = text === undefined ? undefined : parseValue(tag, text);
        if (value !== undefined) return value;
      }
    }
    return this.#defaults[tag];
  }

  close(): void {
    this.#map?.close();
  }
}

/** What is wrong with one map entry, or undefined. */
export function checkEntry(key: string, value: string): string | undefined {
  const colon = key.indexOf(":");
  const tag = (colon < 0 ? key : key.slice(0, colon)).toLowerCase() as ConfTag;
  if (colon < 0 || !CONF_TAGS.includes(tag)) {
    return `key ${JSON.stringify(key)} has no known tag, expected one of ${CONF_TAGS.join(": ")}:`;
  }
  const where = key.slice(colon + 1);
  if (where !== "" && !/^[0-9a-f.:]+$/i.test(where)) {
    return `key ${
      JSON.stringify(key)
    } names no IP address or net, expected e.g. ${tag}:192.0.2.1 or ${tag}:10.1`;
  }
  if (parseValue(tag, value) === undefined) {
    const want = tag === "octo" ? "a time like 10m" : "a number of 0 or more";
    return `value ${JSON.stringify(value)} of ${key} is bad, expected ${want}`;
  }
  return undefined;
}
