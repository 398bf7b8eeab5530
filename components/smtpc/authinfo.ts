// The authinfo map (sendmail 8's FEATURE(`authinfo'), Postfix's smtp_sasl_password_maps): which next hops
// smtpc must authenticate to, as whom. A hash map (text, or SQLite built by `deno task createmap`) whose
// keys are the next hop as the route names it, or the recipients' domain, and whose values are
//   USER SECRET_FILE     the secret is the first line of SECRET_FILE (absolute, or relative to the
//                        map's directory); the map itself may be readable by others;
//   USER:SECRET          Postfix's form, the secret inline (everything after the first colon): the map
//                        must then be readable by its owner only (mode 0600), else those entries are
//                        refused (and said so loudly at start and with every deferral).
// Keys are tried most specific first: for the host being connected to, `[name]:port`, `[name]`, `name`
// (a mailertable host `[192.0.2.1]` is named by its address, a mailertable or MX host name by that
// name), the same for its address, then the recipients' domain and its parents (`.example.org`). A hop
// the map names gets the credentials only over TLS, and mail to it is never sent without them
// (hello.ts). Reads the map file and the secret files it names; never logs a secret.

import { dirname, isAbsolute, join } from "node:path";
import type { MapSpec } from "../../config/types.ts";
import { loadMap, type MapLookup } from "../maps/load.ts";
import type { Credentials } from "./auth.ts";

export type AuthinfoValue =
  | { kind: "inline"; user: string; secret: string }
  | { kind: "file"; user: string; file: string };

/** What the map says for a hop: the credentials' source, or why the entry cannot be used. */
export type AuthinfoEntry =
  | { key: string; user: string; value: AuthinfoValue; problem?: undefined }
  | { key: string; user: string; problem: string };

/** Parses a map value; `mapFile` places a relative SECRET_FILE. Returns a problem text for a bad one. */
export function parseAuthinfoValue(value: string, mapFile: string): AuthinfoValue | string {
  const text = value.trim();
  const first = text.split(/\s+/)[0] ?? "";
  const colon = first.indexOf(":");
  if (colon >= 0) {
    const user = text.slice(0, colon);
    const secret = text.slice(colon + 1);
    if (user === "") return "no user before the colon, expected USER:SECRET or USER SECRET_FILE";
    if (secret === "") return "empty secret after the colon, expected USER:SECRET";
    return { kind: "inline", user, secret };
  }
  const words = text.split(/\s+/);
  if (words.length !== 2) return "expected USER SECRET_FILE or USER:SECRET";
  const [user, file] = words;
  return { kind: "file", user, file: isAbsolute(file) ? file : join(dirname(mapFile), file) };
}

/** The keys tried for `host` on `port` and recipients at `domain`, most specific first (lower case). */
export function authinfoKeys(
  host: { name: string; address: string },
  port: number,
  domain?: string,
): string[] {
  const keys: string[] = [];
  const add = (k: string) => {
    if (k !== "" && !keys.includes(k)) keys.push(k);
  };
  for (const n of [host.name, host.address]) {
    const name = n.toLowerCase().replace(/\.$/, "");
    add(`[${name}]:${port}`);
    add(`[${name}]`);
    add(name);
  }
  if (domain) {
    const labels = domain.toLowerCase().replace(/\.$/, "").split(".");
    add(labels.join("."));
    for (let i = 1; i < labels.length; i++) add(`.${labels.slice(i).join(".")}`);
  }
  return keys;
}

/** The secret files an authinfo map names (for smtpc's read permission); throws when it cannot be read. */
export async function authinfoSecretFiles(spec: MapSpec): Promise<string[]> {
  const map = await loadMap(spec);
  try {
    const files = new Set<string>();
    for (const [, value] of map.entries()) {
      const v = parseAuthinfoValue(value, spec.file);
      if (typeof v !== "string" && v.kind === "file") files.add(v.file);
    }
    return [...files].sort();
  } finally {
    map.close();
  }
}

/** Permission bits for group and others: a file holding secrets must have none. */
const OTHERS = 0o077;

const modeText = (mode: number) => `0${(mode & 0o777).toString(8)}`;

export class Authinfo {
  private constructor(
    readonly map: MapLookup,
    readonly file: string,
    /** Set when the map holds inline secrets but others may read it: those entries are refused. */
    readonly inlineRefused: string | undefined,
  ) {}

  /**
   * Loads the map and checks it: every value must parse, inline secrets need a 0600 map, secret files
   * should exist and be private. Problems are returned, one line each, for the log (`error` ones make
   * entries unusable, `warn` ones do not); a map that cannot be read throws.
   */
  static async load(spec: MapSpec): Promise<{ authinfo: Authinfo; errors: string[]; warnings: string[] }> {
    const map = await loadMap(spec);
    const errors: string[] = [];
    const warnings: string[] = [];
    let mode = 0;
    try {
      mode = (await Deno.stat(spec.file)).mode ?? 0;
    } catch (err) {
      map.close();
      throw new Error(`Load authinfo map ${spec.file}: ${(err as Error).message}`);
    }
    let inline = 0;
    const files = new Set<string>();
    for (const [key, value] of map.entries()) {
      const v = parseAuthinfoValue(value, spec.file);
      if (typeof v === "string") errors.push(`authinfo map ${spec.file}: ${key}: ${v}; entry not used`);
      else if (v.kind === "inline") inline++;
      else files.add(v.file);
    }
    let inlineRefused: string | undefined;
    if (inline > 0 && (mode & OTHERS) !== 0) {
      inlineRefused = `authinfo map ${spec.file} holds secrets but others may read it (mode ${
        modeText(mode)
      }): its inline secrets are not used; chmod 600 ${spec.file}`;
      errors.push(inlineRefused);
    }
    for (const file of files) {
      try {
        const st = await Deno.stat(file);
        if (((st.mode ?? 0) & OTHERS) !== 0) {
          warnings.push(
            `authinfo secret file ${file} can be read by others (mode ${
              modeText(st.mode ?? 0)
            }): chmod 600 ${file}`,
          );
        }
      } catch (err) {
        warnings.push(`authinfo secret file ${file} cannot be read: ${(err as Error).message}`);
      }
    }
    return { authinfo: new Authinfo(map, spec.file, inlineRefused), errors, warnings };
  }

  /** The entry for `host` on `port` and recipients at `domain`, or undefined when AUTH is not asked for. */
  find(host: { name: string; address: string }, port: number, domain?: string): AuthinfoEntry | undefined {
    for (const key of authinfoKeys(host, port, domain)) {
      const value = this.map.lookup(key);
      if (value === undefined) continue;
      const v = parseAuthinfoValue(value, this.file);
      if (typeof v === "string") {
        return { key, user: "", problem: `authinfo entry ${key} is malformed: ${v}` };
      }
      if (v.kind === "inline" && this.inlineRefused) {
        return { key, user: v.user, problem: this.inlineRefused };
      }
      return { key, user: v.user, value: v };
    }
    return undefined;
  }

  /** The credentials of a usable entry; throws an Error (no secret in it) when a secret file fails. */
  async credentials(entry: Extract<AuthinfoEntry, { problem?: undefined }>): Promise<Credentials> {
    const v = entry.value;
    if (v.kind === "inline") return { user: v.user, secret: v.secret, key: entry.key };
    let text: string;
    try {
      text = await Deno.readTextFile(v.file);
    } catch (err) {
      throw new Error(`read authinfo secret file ${v.file} (${entry.key}): ${(err as Error).message}`);
    }
    const secret = text.split(/\r?\n/)[0];
    if (secret === "") throw new Error(`authinfo secret file ${v.file} (${entry.key}) is empty`);
    return { user: v.user, secret, key: entry.key };
  }

  close(): void {
    this.map.close();
  }
}
