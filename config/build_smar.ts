// Builds the smar section of the Config: its options, map references and map subsections (mailertable,
// access_map, aliases, local_user_map) in the README's forms (`mailertable { file = "mt"; }`, `{ name =
// NAME; }`, `aliases { file = ...; flags = { ... }; }`) and smx's (`{ type = hash; file = ...; }`), dnsbl
// sections, greylisting and protected_recipients. Map declarations inside smar are read with the top
// level's (config/build.ts). Touches nothing. Throws ConfigError through `fail`.

import { defaultGreylisting, defaultMtaSts } from "./defaults.ts";
import type { Pos } from "./error.ts";
import { buildMapSpec, type MapLookup } from "./maps.ts";
import { type Block, MapRef } from "./read.ts";
import { SMAR_MAP_FILES } from "./schema.ts";
import type { ComponentLogConfig, MapSpec, ProtectedRecipientsConfig, SmarConfig } from "./types.ts";

type Fail = (pos: Pos, detail: string) => never;
const MAP_OPTIONS = ["mailertable", "access_map", "aliases", "local_user_map"] as const;

/** Lays the smar section `block` over `smar` (which holds the defaults). */
export function buildSmar(
  smar: SmarConfig,
  block: Block,
  resolve: (ref: unknown, option: string) => MapSpec | undefined,
  lookup: MapLookup,
  fail: Fail,
): void {
  const { mailertable, access_map, aliases, local_user_map, ...rest } = block.values;
  Object.assign(smar, rest);
  const refs = { mailertable, access_map, aliases, local_user_map };
  for (const option of MAP_OPTIONS) {
    if (refs[option] !== undefined) smar[option] = resolve(refs[option], option);
  }
  const missing = (sub: Block, option: string): never =>
    fail(sub.node, `missing option ${option} in ${sub.label}, expected ${option} = value;`);
  for (const sub of block.blocks) {
    switch (sub.keyword) {
      case "map": // declared with the top level's maps
        break;
      case "log":
        smar.log = { ...smar.log, ...sub.values } as ComponentLogConfig;
        break;
      case "mailertable":
      case "access_map":
      case "aliases":
      case "local_user_map": {
        const { flags, ...map } = sub.values;
        smar[sub.keyword] = smarMap({ ...sub, values: map }, lookup, fail);
        if (sub.keyword === "aliases" && flags !== undefined) smar.alias_flags = flags as string[];
        if (sub.keyword === "local_user_map" && flags !== undefined) {
          smar.local_user_flags = flags as string[];
        }
        break;
      }
      case "dnsbl": {
        const domain = sub.values.domain as string | undefined;
        if (domain === undefined) missing(sub, "domain");
        (smar.dnsbl ??= []).push({ domain: domain!, tag: (sub.values.tag as string | undefined) ?? domain! });
        break;
      }
      case "greylisting":
        if (sub.values.main_DB_name === undefined) missing(sub, "main_DB_name");
        smar.greylisting = { ...defaultGreylisting(), ...sub.values } as SmarConfig["greylisting"];
        break;
      case "protected_recipients":
        smar.protected_recipients = protectionOf(sub);
        break;
      case "MTA_STS":
        smar.MTA_STS = { ...defaultMtaSts(), ...sub.values } as SmarConfig["MTA_STS"];
        break;
    }
  }
  if (smar.mailertable && smar.mailertable.type !== "hash") {
    fail(
      block.node,
      `mailertable ${smar.mailertable.name} is a ${smar.mailertable.type} map, expected a hash map`,
    );
  }
  if ([...smar.address_delimiter].length !== 1) {
    fail(
      block.node,
      `bad address_delimiter ${JSON.stringify(smar.address_delimiter)}, expected one character`,
    );
  }
}

/**
 * A map subsection of smar (and smtpc's authinfo): `name = NAME;` names a declared map; else a map of its own, of type hash
 * unless it says otherwise, whose file defaults to the README's name (`mt`, `access.db`, `aliases.db`).
 */
export function smarMap(block: Block, lookup: MapLookup, fail: Fail): MapSpec {
  const { name, ...own } = block.values;
  if (name instanceof MapRef) {
    const other = Object.keys(own)[0];
    if (other !== undefined) {
      fail(
        block.node,
        `both name and ${other} in ${block.label}, expected either name = MAP; or the map's own options`,
      );
    }
    return lookup(name, block.keyword);
  }
  const values = { ...own };
  if (values.type === undefined) values.type = "hash";
  if (values.type === "hash" && values.file === undefined) {
    const file = SMAR_MAP_FILES[block.keyword];
    if (file === undefined) {
      fail(
        block.node,
        `missing option file or name in ${block.label}, expected file = "..."; or name = MAP;`,
      );
    }
    values.file = file;
  }
  return buildMapSpec({ ...block, values }, block.keyword, fail, lookup);
}

/** protected_recipients as read, the 3.10.2 flag names (allow_by_sender ...) folded into the 3.10 ones. */
export function protectionOf(block: Block): ProtectedRecipientsConfig {
  const v = block.values as { allow_by?: string[]; match_type?: string[]; flags?: string[] };
  const flags = v.flags ?? [];
  const allowNamed = [...(v.allow_by ?? []), ...flags.filter((f) => f.startsWith("allow_by_"))];
  const allow = allowNamed.map((f) => f.replace(/^allow_by_/, ""));
  const match = [...(v.match_type ?? []), ...flags.filter((f) => !f.startsWith("allow_by_"))];
  return {
    allow_by: allowNamed.length === 0 ? ["sender", "client_ip"] : [...new Set(allow)],
    match_type: [...new Set(match)],
  };
}
