// Builds the smar section of the Config: its options, map references and inline maps (mailertable,
// access_map, aliases, local_user_map), dnsbl sections, greylisting and protected_recipients. Touches
// nothing. Throws ConfigError through `fail`.

import { defaultGreylisting } from "./defaults.ts";
import type { Pos } from "./error.ts";
import { buildMapSpec, type MapLookup } from "./maps.ts";
import type { Block } from "./read.ts";
import type { MapSpec, SmarConfig } from "./types.ts";

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
      case "mailertable":
      case "access_map":
      case "aliases":
      case "local_user_map":
        smar[sub.keyword] = buildMapSpec(sub, sub.keyword, fail, lookup);
        break;
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
        smar.protected_recipients = { allow_by: ["sender", "client_ip"], match_type: [], ...sub.values };
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
