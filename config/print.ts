// Prints a Config back as smx.conf text with every option (defaults included): times with units
// (`5m`, `1h 30m`), sizes with the largest exact unit, strings quoted. parseConfig(formatConfig(c), s)
// gives back c (with source s) for any Config the parser can produce. Driven by config/schema.ts so a new
// option is printed without touching this file. Touches nothing.

import { type Kind, LDA, LOG, MCP, QMGR, type SectionSpec, SMAR, SMTPC, SMTPS } from "./schema.ts";
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
  const ldaRefs: string[] = [];
  const ldaInline: [string, MapSpec][] = [];
  const uses = [
    ["mailertable", config.smar.mailertable, refs, inline],
    ["access_map", config.smar.access_map, refs, inline],
    ["local_user_map", config.lda?.local_user_map, ldaRefs, ldaInline],
  ] as const;
  for (const [option, spec, refsOf, inlineOf] of uses) {
    if (!spec) continue;
    const same = declared.get(spec.name.toLowerCase());
    if (!same) declared.set(spec.name.toLowerCase(), spec);
    if (!same || (same.name === spec.name && same.type === spec.type && same.file === spec.file)) {
      refsOf.push(`${option} = ${word(spec.name)};`);
    } else {
      inlineOf.push([option, spec]);
    }
  }
  for (const spec of declared.values()) {
    out.push("", `map ${word(spec.name)} { type = ${spec.type}; file = ${quote(spec.file)}; }`);
  }

  out.push("", ...section(MCP, config.mcp));
  const log = config.log ?? {};
  const stderr = log.directory === undefined ? ["  # no directory: every component logs to stderr"] : [];
  out.push("", ...section(LOG, log, undefined, stderr));
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
  if (config.lda) {
    const lines = [
      ...config.lda.listen_socket.map((socket) =>
        `  listen_socket { type = ${socket.type}; address = ${word(socket.address)}; port = ${socket.port}; }`
      ),
      ...ldaRefs.map((r) => `  ${r}`),
      ...ldaInline.map(([option, spec]) =>
        `  ${option} { type = ${spec.type}; file = ${quote(spec.file)}; }`
      ),
    ];
    out.push("", ...section(LDA, config.lda, undefined, lines));
  }
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
    if (record[option] === undefined) continue; // an optional option that is not set
    if (kind === "time_ms") lines.push(`${indent}  # A plain number here means milliseconds.`);
    lines.push(`${indent}  ${option} = ${format(kind, record[option])};`);
  }
  if (spec !== SMTPS && spec !== SMAR && spec !== LDA) {
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
    case "nameservers":
    case "components": {
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
