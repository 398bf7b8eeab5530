// Prints a Config back as smx.conf text with every option (defaults included): times with units
// (`5m`, `1h 30m`), sizes with the largest exact unit, strings quoted. parseConfig(formatConfig(c), s)
// gives back c (with source s) for any Config the parser can produce. Driven by config/schema.ts so a new
// option is printed without touching this file. Touches nothing.

import { type Kind, MCP, QMGR, type SectionSpec, SMAR, SMTPC, SMTPS } from "./schema.ts";
import type { Config, MapSpec } from "./types.ts";
import { formatSize, formatTime } from "./values.ts";

const BARE = /^[A-Za-z0-9._\-/:@+\[\]]+$/;

/** The effective configuration as smx.conf text. */
export function formatConfig(config: Config): string {
  const out: string[] = [
    `# Effective configuration from ${config.source.replace(/\n/g, " ")}: every option, defaults included.`,
    `hostname = ${quote(config.hostname)};`,
    `CDB_base_directory = ${quote(config.CDB_base_directory)};`,
  ];

  // Referenced maps are declared at the top; a second, different map of the same name is written inline.
  const declared = new Map<string, MapSpec>();
  const refs: string[] = [];
  const inline: [string, MapSpec][] = [];
  for (const option of ["mailertable", "access_map"] as const) {
    const spec = config.smar[option];
    if (!spec) continue;
    const same = declared.get(spec.name.toLowerCase());
    if (!same) declared.set(spec.name.toLowerCase(), spec);
    if (!same || (same.name === spec.name && same.type === spec.type && same.file === spec.file)) {
      refs.push(`${option} = ${word(spec.name)};`);
    } else {
      inline.push([option, spec]);
    }
  }
  for (const spec of declared.values()) {
    out.push("", `map ${word(spec.name)} { type = ${spec.type}; file = ${quote(spec.file)}; }`);
  }

  out.push("", ...section(MCP, config.mcp));
  out.push("", ...section(QMGR, config.qmgr));
  for (const server of config.smtps) {
    const sockets = server.listen_socket.map((socket) =>
      `  listen_socket { type = ${socket.type}; address = ${word(socket.address)}; port = ${socket.port}; }`
    );
    out.push("", ...section(SMTPS, server, server.name === "smtps" ? undefined : server.name, sockets));
  }
  const ports = [`  # ports (derived from the mailertable, not an option): ${config.smtpc.ports.join(", ")}`];
  out.push("", ...section(SMTPC, config.smtpc, undefined, ports));
  const maps = inline.map(([option, spec]) =>
    `  ${option} { type = ${spec.type}; file = ${quote(spec.file)}; }`
  );
  out.push("", ...section(SMAR, config.smar, undefined, [...refs.map((r) => `  ${r}`), ...maps]));
  return out.join("\n") + "\n";
}

/** A section with its options in schema order; subsections of the schema come from `values` too. */
function section(
  spec: SectionSpec,
  values: object,
  name?: string,
  extra: string[] = [],
  indent = "",
): string[] {
  const record = values as Record<string, unknown>;
  const lines = [`${indent}${spec.keyword}${name === undefined ? "" : ` ${word(name)}`} {`];
  for (const [option, kind] of Object.entries(spec.options)) {
    if (kind === "map_ref") continue; // written by formatConfig (declared maps)
    if (kind === "time_ms") lines.push(`${indent}  # A plain number here means milliseconds.`);
    lines.push(`${indent}  ${option} = ${format(kind, record[option])};`);
  }
  if (spec !== SMTPS && spec !== SMAR) {
    for (const sub of spec.sections) {
      lines.push(...section(sub, record[sub.keyword] as object, undefined, [], `${indent}  `));
    }
  }
  lines.push(...extra, `${indent}}`);
  return lines;
}

function format(kind: Kind, value: unknown): string {
  switch (kind) {
    case "time":
    case "time_ms":
      return formatTime(value as number);
    case "size":
      return formatSize(value as number);
    case "string":
      return quote(value as string);
    case "flags":
    case "nameservers": {
      const items = (value as string[]).map(word);
      return items.length > 0 ? `{ ${items.join(", ")} }` : "{ }";
    }
    default:
      return word(String(value));
  }
}

/** A bare word when the lexer reads it back as one, else a quoted string. */
function word(text: string): string {
  return BARE.test(text) ? text : quote(text);
}

function quote(text: string): string {
  const escaped = text.replace(
    /[\\"\n\t\r]/g,
    (c) => ({ "\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r" })[c]!,
  );
  return `"${escaped}"`;
}
