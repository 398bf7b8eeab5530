// Map declarations of smx.conf: builds a MapSpec from `map NAME { ... }` or an inline map section
// (`access_map { type = hash; file = "..."; }`), checking that the options given fit the map's type, and
// resolves references by name (`access_map = NAME;`, a sequence's `maps = { a, b };`), refusing a
// sequence that contains itself. Touches nothing. Throws ConfigError through `fail`.

import type { Pos } from "./error.ts";
import { type Block, MapRef } from "./read.ts";
import type { MapSpec } from "./types.ts";

type Fail = (pos: Pos, detail: string) => never;
/** Finds a declared map by reference; fails when there is none. */
export type MapLookup = (ref: MapRef, option: string) => MapSpec;

/** The options each map type takes; `type` goes with all of them. */
const OPTIONS: Record<MapSpec["type"], string[]> = {
  hash: ["file"],
  passwd: ["file"],
  socket: ["address", "port", "path", "mapname", "timeout"],
  sequence: ["maps"],
};

/** Where `option` is written in `block` (for messages), else the block itself. */
function where(block: Block, option: string): Pos {
  return block.node.entries.find((e) =>
    e.kind === "option" && e.name.toLowerCase() === option.toLowerCase()
  ) ??
    block.node;
}

/** Builds one map from its section; a sequence's members are found with `lookup` (declared maps). */
export function buildMapSpec(block: Block, name: string, fail: Fail, lookup?: MapLookup): MapSpec {
  const v = block.values;
  if (v.type === undefined) fail(block.node, `missing option type in ${block.label}, expected type = value;`);
  const type = v.type as MapSpec["type"];
  for (const option of Object.keys(v)) {
    if (option !== "type" && !OPTIONS[type].includes(option)) {
      fail(
        where(block, option),
        `option ${option} does not apply to a ${type} map in ${block.label}, expected ${
          OPTIONS[type].join(" or ")
        }`,
      );
    }
  }
  const need = (option: string) => {
    if (v[option] === undefined) {
      fail(block.node, `missing option ${option} in ${block.label}, expected ${option} = value;`);
    }
  };
  switch (type) {
    case "hash":
      need("file");
      return { name, type, file: v.file as string };
    case "passwd":
      return { name, type, file: (v.file as string | undefined) ?? "/etc/passwd" };
    case "socket": {
      const inet = v.address !== undefined || v.port !== undefined;
      if (inet && v.path !== undefined) {
        fail(where(block, "path"), `both path and address in ${block.label}, expected one of them`);
      }
      if (inet) {
        need("address");
        need("port");
      } else if (v.path === undefined) {
        fail(
          block.node,
          `missing option path or address in ${block.label}, expected where the server listens`,
        );
      }
      const spec: MapSpec = { name, type, file: "", mapname: (v.mapname as string | undefined) ?? name };
      if (inet) Object.assign(spec, { address: v.address, port: v.port });
      else spec.path = v.path as string;
      if (v.timeout !== undefined) spec.timeout = v.timeout as number;
      return spec;
    }
    case "sequence": {
      need("maps");
      if (!lookup) {
        fail(where(block, "maps"), `sequence in ${block.label}, expected it declared as map NAME { ... }`);
      }
      const maps = (v.maps as MapRef[]).map((ref) => lookup!(ref, `maps of ${name}`));
      return { name, type, file: "", maps };
    }
    default: {
      const never: never = type;
      throw new TypeError(`Build map: unknown type ${never}`);
    }
  }
}

/**
 * The declared maps (`map NAME { ... }` blocks), each checked once, and a function resolving a reference
 * to a copy of the map it names (undefined for an absent option).
 */
export function declareMaps(blocks: Block[], fail: Fail): {
  resolve(ref: unknown, option: string): MapSpec | undefined;
  lookup: MapLookup;
} {
  const byName = new Map<string, Block>();
  for (const block of blocks) {
    const key = block.name!.toLowerCase();
    if (byName.has(key)) {
      fail(block.node.name!, `duplicate map ${block.name}, expected each map declared once`);
    }
    byName.set(key, block);
  }
  const built = new Map<string, MapSpec>();
  const building = new Set<string>();
  const lookup: MapLookup = (ref, option) => {
    const key = ref.name.toLowerCase();
    const block = byName.get(key);
    if (!block) {
      fail(
        ref.pos,
        `undeclared map ${ref.name} for ${option}, expected a map declared as map ${ref.name} { ... }`,
      );
    }
    const done = built.get(key);
    if (done) return structuredClone(done);
    if (building.has(key)) {
      fail(ref.pos, `map ${ref.name} contains itself, expected a sequence of other maps`);
    }
    building.add(key);
    const spec = buildMapSpec(block!, block!.name!, fail, lookup);
    building.delete(key);
    built.set(key, spec);
    return structuredClone(spec);
  };
  for (const block of byName.values()) lookup(new MapRef(block.name!, block.node), "map");
  return {
    resolve: (ref, option) => ref instanceof MapRef ? lookup(ref, option) : ref as MapSpec | undefined,
    lookup,
  };
}
