// Prints a Config back as smx.conf text with every option (defaults included): times with units
// (`5m`, `1h 30m`), sizes with the largest exact unit, strings quoted. parseConfig(formatConfig(c), s)
// gives back c (with source s) for any Config the parser can produce. Driven by config/schema.ts so a new
// option is printed without touching this file. Touches nothing.

import {
  type Kind,
  LDA,
  LOG,
  MCP,
  METRICS,
  POLICY_MILTER,
  POLICY_SERVICE,
  QMGR,
  type SectionSpec,
  SMAR,
  SMTPC,
  SMTPS,
} from "./schema.ts";
import type { Config, ListenSocket, MapSpec } from "./types.ts";
import { formatSize, formatTime } from "./values.ts";

const BARE = /^[A-Za-z0-9._\-/:@+\[\]]+$/;

/** The effective configuration as smx.conf text. */
export function formatConfig(config: Config): string {
  const out: string[] = [
    `# Effective configuration from ${config.source.replace(/\n/g, " ")}: every option, defaults included.`,
    ...warningLines(config),
    `hostname = ${quote(config.hostname)};`,
    `CDB_base_directory = ${quote(config.CDB_base_directory)};`,
  ];

  // Referenced maps are declared at the top; a second, different map of the same name is written inline.
  const declared = new Map<string, MapSpec>();
  const refs: string[] = [];
  const inline: [string, MapSpec][] = [];
  const ldaRefs: string[] = [];
  const ldaInline: [string, MapSpec][] = [];
  // qmgr's conf has no inline form: it comes first, so its name is always the declared one.
  const qmgrRefs: string[] = [];
  const uses = [
    ["conf", config.qmgr.conf, qmgrRefs, [] as [string, MapSpec][]],
    ["mailertable", config.smar.mailertable, refs, inline],
    ["access_map", config.smar.access_map, refs, inline],
    ["aliases", config.smar.aliases, refs, inline],
    ["local_user_map", config.smar.local_user_map, refs, inline],
    ["local_user_map", config.lda?.local_user_map, ldaRefs, ldaInline],
  ] as const;
  const declare = (spec: MapSpec) => {
    for (const member of spec.maps ?? []) declare(member);
    if (!declared.has(spec.name.toLowerCase())) declared.set(spec.name.toLowerCase(), spec);
  };
  // Key maps of dkim_signing and arc_seal are always referenced by name (declared at the top).
  for (const server of config.smtps) {
    for (const spec of [server.dkim_signing?.map, server.authentication?.arc_seal?.map]) {
      if (spec && !declared.has(spec.name.toLowerCase())) declare(spec);
    }
  }
  for (const [option, spec, refsOf, inlineOf] of uses) {
    if (!spec) continue;
    const same = declared.get(spec.name.toLowerCase());
    if (!same) declare(spec);
    if (!same || JSON.stringify(same) === JSON.stringify(spec)) {
      refsOf.push(`${option} = ${word(spec.name)};`);
    } else {
      inlineOf.push([option, spec]);
    }
  }
  for (const spec of declared.values()) {
    out.push("", `map ${word(spec.name)} ${mapBody(spec)}`);
  }

  out.push("", ...section(MCP, config.mcp));
  const log = config.log ?? {};
  const stderr = log.directory === undefined ? ["  # no directory: every component logs to stderr"] : [];
  out.push("", ...section(LOG, log, undefined, stderr));
  out.push("", ...section(QMGR, config.qmgr, undefined, qmgrRefs.map((r) => `  ${r}`)));
  for (const server of config.smtps) {
    const sockets = server.listen_socket.map(listenSocket);
    for (const sub of SMTPS.sections) { // log { }, protected_recipients { }, tls { } and auth { }, when configured
      const values = ({
        log: server.log,
        protected_recipients: server.protected_recipients,
        tls: server.tls,
        auth: server.auth,
      } as Record<string, object | undefined>)[sub.keyword];
      if (values) sockets.push(...section(sub, values, undefined, [], "  "));
    }
    for (const filter of [...server.policy_milter ?? [], ...server.policy_service ?? []]) {
      const spec = "stages" in filter ? POLICY_SERVICE : POLICY_MILTER;
      const s = filter.socket;
      const where = s.type === "unix"
        ? `path = ${quote(s.path)};`
        : `address = ${word(s.address)}; port = ${s.port};`;
      sockets.push(...section(spec, filter, undefined, [`    socket { type = ${s.type}; ${where} }`], "  "));
    }
    const a = server.authentication;
    if (a) {
      const seal = a.arc_seal ? [`    arc_seal { map = ${word(a.arc_seal.map.name)}; }`] : [];
      sockets.push(
        "  authentication {",
        `    flags = ${formatValue("mailauth_flags", a.flags)};`,
        `    authserv_id = ${quote(a.authserv_id)};`,
        ...seal,
        "  }",
      );
    }
    if (server.dkim_signing) sockets.push(`  dkim_signing { map = ${word(server.dkim_signing.map.name)}; }`);
    out.push("", ...section(SMTPS, server, server.name === "smtps" ? undefined : server.name, sockets));
  }
  const ports = [`  # ports (derived from the mailertable, not an option): ${config.smtpc.ports.join(", ")}`];
  out.push("", ...section(SMTPC, config.smtpc, undefined, ports));
  const maps = inline.map(([option, spec]) => `  ${option} ${mapBody(spec)}`);
  out.push(
    "",
    ...section(SMAR, config.smar, undefined, [
      ...refs.map((r) => `  ${r}`),
      ...maps,
      ...smarSections(config),
    ]),
  );
  if (config.lda) {
    const lines = [
      ...config.lda.listen_socket.map(listenSocket),
      ...ldaRefs.map((r) => `  ${r}`),
      ...ldaInline.map(([option, spec]) => `  ${option} ${mapBody(spec)}`),
    ];
    out.push("", ...section(LDA, config.lda, undefined, lines));
  }
  if (config.metrics) {
    out.push(
      "",
      ...section(METRICS, config.metrics, undefined, config.metrics.listen_socket.map(listenSocket)),
    );
  }
  return out.join("\n") + "\n";
}

/**
 * The configuration's notes and warnings (config/seed_options.ts) as comments: sendmail X options that
 * smx maps to something else or ignores, and plain numbers read in an implausible unit.
 */
function warningLines(config: Config): string[] {
  const all = config.warnings ?? [];
  if (all.length === 0) return [];
  return [
    "# As smx reads it (a warning is also logged once at start):",
    ...all.map((w) => `#   ${w.level}: ${w.message.replace(/\n/g, " ")}`),
  ];
}

/** A listen_socket line. */
function listenSocket(socket: ListenSocket): string {
  if (socket.type === "inet") {
    return `  listen_socket { type = inet; address = ${word(socket.address)}; port = ${socket.port}; }`;
  }
  const owner = [
    socket.user === undefined ? "" : ` user = ${word(socket.user)};`,
    socket.group === undefined ? "" : ` group = ${word(socket.group)};`,
  ].join("");
  return `  listen_socket { type = unix; path = ${quote(socket.path)}; umask = 0${
    socket.umask.toString(8)
  };${owner} }`;
}

/** A map's braces: its type and the options that type takes. */
function mapBody(spec: MapSpec): string {
  const parts = [`type = ${spec.type};`];
  if (spec.type === "hash" || spec.type === "passwd") parts.push(`file = ${quote(spec.file)};`);
  if (spec.maps) parts.push(`maps = { ${spec.maps.map((m) => word(m.name)).join(", ")} };`);
  if (spec.address !== undefined) parts.push(`address = ${word(spec.address)};`, `port = ${spec.port};`);
  if (spec.path !== undefined) parts.push(`path = ${quote(spec.path)};`);
  if (spec.mapname !== undefined) parts.push(`mapname = ${quote(spec.mapname)};`);
  if (spec.timeout !== undefined) parts.push(`timeout = ${formatTime(spec.timeout)};`);
  return `{ ${parts.join(" ")} }`;
}

/** smar's dnsbl, greylisting and protected_recipients sections, when configured. */
function smarSections(config: Config): string[] {
  const smar = config.smar;
  const subs = new Map(SMAR.sections.map((s) => [s.keyword, s]));
  const lines: string[] = [];
  for (const bl of smar.dnsbl ?? []) lines.push(...section(subs.get("dnsbl")!, bl, undefined, [], "  "));
  if (smar.greylisting) {
    lines.push(...section(subs.get("greylisting")!, smar.greylisting, undefined, [], "  "));
  }
  if (smar.MTA_STS) lines.push(...section(subs.get("MTA_STS")!, smar.MTA_STS, undefined, [], "  "));
  if (smar.protected_recipients) {
    lines.push(...section(subs.get("protected_recipients")!, smar.protected_recipients, undefined, [], "  "));
  }
  return lines;
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
    if (kind === "map_ref" || kind === "map_refs") continue; // written by formatConfig (declared maps)
    if (record[option] === undefined) continue; // an optional option that is not set
    if (kind === "string" && record[option] === "") continue; // none (an auth section without map_file)
    if (kind === "time_ms") lines.push(`${indent}  # A plain number here means milliseconds.`);
    if (kind === "time_us") lines.push(`${indent}  # A plain number here means microseconds.`);
    if (kind === "size_kb" || kind === "size0_kb") lines.push(`${indent}  # A plain number here means KB.`);
    lines.push(`${indent}  ${option} = ${formatValue(kind, record[option])};`);
  }
  for (const sub of spec.sections) {
    // smtps, smar and lda write their subsections themselves, except their log { }; so do the filters.
    if ((spec === SMTPS || spec === SMAR || spec === LDA || spec === METRICS) && sub.keyword !== "log") {
      continue;
    }
    if (spec === SMTPS && sub.keyword === "log") continue; // with the server's other subsections
    if (spec === POLICY_MILTER || spec === POLICY_SERVICE) continue;
    if (record[sub.keyword] === undefined) continue; // an optional section that is not there (log { })
    lines.push(...section(sub, record[sub.keyword] as object, undefined, [], `${indent}  `));
  }
  lines.push(...extra, `${indent}}`);
  return lines;
}

/** A value of the given kind as smx.conf text (scripts/docs_options.ts shows defaults with it). */
export function formatValue(kind: Kind, value: unknown): string {
  switch (kind) {
    case "time":
    case "time0":
    case "time_ms":
    case "time_us":
      return formatTime(value as number);
    case "size":
    case "size_kb":
    case "size0_kb":
      return formatSize(value as number);
    case "mode":
      return `0${(value as number).toString(8)}`;
    case "dsn_flags": {
      const on = Object.entries(value as Record<string, boolean>).filter(([, v]) => v).map(([f]) => f);
      return on.length > 0 ? `{ ${on.join(", ")} }` : "{ }";
    }
    case "string":
      return quote(value as string);
    case "flags":
    case "nameservers":
    case "components":
    case "alias_flags":
    case "allow_by":
    case "match_type":
    case "tls_flags":
    case "auth_flags":
    case "mailauth_flags":
    case "sasl_mechs":
    case "milter_flags":
    case "smtpc_flags":
    case "policy_stages":
    case "log_options":
    case "protected_flags":
    case "local_user_flags":
    case "networks": {
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
