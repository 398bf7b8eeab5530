// The option reference (docs/options.md), generated: walks config/schema.ts (every section and option
// the parser accepts), takes each default from config/defaults.ts and each description from the one
// table config/option_docs.ts. `deno task docs` writes the file (scripts/docs.ts); tests/docs_test.ts
// fails when an option has no description, a description names no option, or the file is stale.
// Touches nothing.

import {
  defaultConfig,
  defaultGreylisting,
  defaultLda,
  defaultMetrics,
  defaultSmtps,
  defaultSmtpsAuth,
} from "../config/defaults.ts";
import { OPTION_DOCS, type OptionDoc, README_SECTIONS } from "../config/option_docs.ts";
import { formatValue } from "../config/print.ts";
import { type Kind, MAP_OPTIONS, type SectionSpec, TOP } from "../config/schema.ts";

/** One option as the reference lists it. */
export interface OptionRow {
  /** The section path, `smtps.tls` ("" for the top level). */
  section: string;
  option: string;
  kind: Kind;
  /** The key of config/option_docs.ts that describes it, when one does. */
  key?: string;
  doc?: OptionDoc;
  /** The built-in default: smx.conf text (`code`), or the table's words for a computed one (`words`). */
  default?: { code: string } | { words: string };
}

/** What each kind of value is, and how a plain number is read. */
const KINDS: Record<Kind, { type: string; unit?: string }> = {
  string: { type: "string" },
  count: { type: "integer ≥ 0" },
  positive: { type: "integer ≥ 1" },
  time: { type: "time > 0", unit: "s (w d h m s ms us)" },
  time0: { type: "time ≥ 0", unit: "s (w d h m s ms us)" },
  time_ms: { type: "time ≥ 0", unit: "ms (w d h m s ms us)" },
  time_us: { type: "time ≥ 0", unit: "µs (w d h m s ms us)" },
  size: { type: "size > 0", unit: "B (B KB MB GB)" },
  size_kb: { type: "size > 0", unit: "KB (B KB MB GB)" },
  size0_kb: { type: "size ≥ 0 (0: off)", unit: "KB (B KB MB GB)" },
  mode: { type: "octal mode" },
  log_facility: { type: "syslog facility" },
  log_options: { type: "list of openlog options" },
  protected_flags: { type: "list of flags" },
  local_user_flags: { type: "list of flags" },
  port: { type: "port 0-65535" },
  address: { type: "IP address" },
  socket_type: { type: "`inet` or `unix`" },
  filter_socket_type: { type: "`inet` or `unix`" },
  milter_action: { type: "`tempfail`, `accept` or `reject`" },
  map_type: { type: "`hash`, `sequence`, `socket` or `passwd`" },
  map_ref: { type: "map name or map section" },
  map_refs: { type: "list of map names" },
  alias_flags: { type: "list of flags" },
  allow_by: { type: "list of words" },
  match_type: { type: "list of words" },
  netmask: { type: "netmask (bits or dotted)" },
  flags: { type: "list of flags" },
  nameservers: { type: "list of ip[:port]" },
  components: { type: "list of components" },
  start_action: { type: "start action" },
  dsn_flags: { type: "list of flags" },
  security_level: { type: "`none`, `may`, `encrypt` or `verify`" },
  tls_flags: { type: "list of flags" },
  auth_flags: { type: "list of flags" },
  mailauth_flags: { type: "list of flags" },
  sasl_mechs: { type: "list of SASL mechanisms" },
  networks: { type: "list of addresses and CIDR nets" },
  milter_flags: { type: "list of flags" },
  smtpc_flags: { type: "list of flags" },
  policy_stages: { type: "list of stages" },
};

/** Where a section's defaults come from when the built-in Config does not hold it. */
function defaultRoots(): Record<string, unknown> {
  return {
    "": defaultConfig(),
    smtps: defaultSmtps(),
    "smtps.auth": defaultSmtpsAuth(""),
    "smar.greylisting": defaultGreylisting(),
    lda: defaultLda(),
    metrics: defaultMetrics(),
  };
}

/** Every option the parser accepts, in schema order, with its description and default. */
export function optionRows(): OptionRow[] {
  const roots = defaultRoots();
  const rows: OptionRow[] = [];
  const walk = (spec: SectionSpec, path: string, values: unknown) => {
    const record = values !== null && typeof values === "object" && !Array.isArray(values)
      ? values as Record<string, unknown>
      : undefined;
    const isMap = Object.keys(MAP_OPTIONS).every((o) => o in spec.options);
    for (const [option, kind] of Object.entries(spec.options)) {
      const key = docKey(path, option, isMap);
      const doc = key === undefined ? undefined : OPTION_DOCS[key];
      const value = record?.[option];
      const shown = doc?.[2] !== undefined
        ? { words: doc[2] }
        : value === undefined || value === ""
        ? undefined
        : { code: formatValue(kind, value) };
      rows.push({ section: path, option, kind, key, doc, default: shown });
    }
    for (const sub of spec.sections) {
      const subPath = path === "" ? sub.keyword : `${path}.${sub.keyword}`;
      walk(sub, subPath, subPath in roots ? roots[subPath] : record?.[sub.keyword]);
    }
  };
  walk(TOP, "", roots[""]);
  return rows;
}

/**
 * The key describing `option` of section `path`, in the order config/option_docs.ts explains: the exact
 * path, then `*.<section>.<option>` (a subsection several sections share), then `map.<option>` for the
 * options of every map section, then `*.<option>` (the MCP's options of every component).
 */
function docKey(path: string, option: string, isMap: boolean): string | undefined {
  const last = path.split(".").pop()!;
  const keys = [
    path === "" ? option : `${path}.${option}`,
    `*.${last}.${option}`,
    ...(isMap && option in MAP_OPTIONS ? [`map.${option}`] : []),
    `*.${option}`,
  ];
  return keys.find((k) => k in OPTION_DOCS);
}

/** The descriptions no option uses (a renamed or removed option's). */
export function unusedDocs(rows: OptionRow[] = optionRows()): string[] {
  const used = new Set(rows.map((r) => r.key));
  return Object.keys(OPTION_DOCS).filter((k) => !used.has(k));
}

/** docs/options.md. */
export function renderOptions(rows: OptionRow[] = optionRows()): string {
  const out = [
    "# smx configuration options",
    "",
    "<!-- Generated by `deno task docs` from config/schema.ts, config/defaults.ts and config/option_docs.ts:",
    "     edit those, not this file. -->",
    "",
    "Every option `smx.conf` accepts (the parser rejects any other), section by section. Names are",
    "case-insensitive. **Unit** is how a plain number is read and which units may be written; **README** is",
    "the section of the sendmail X README the option comes from (*smx* for smx's own). The language itself",
    "(sections, lists, strings, numbers, units) is described in the README, [Configuration](../README.md#configuration).",
    "",
  ];
  const sections = [...new Set(rows.map((r) => r.section))];
  out.push("Sections: " + sections.map((s) => `[${title(s)}](#${anchor(s)})`).join(", ") + ".", "");
  for (const section of sections) {
    out.push(`## ${title(section)}`, "");
    out.push("| option | type | unit | default | what it does | README |", "|---|---|---|---|---|---|");
    for (const row of rows.filter((r) => r.section === section)) {
      const kind = KINDS[row.kind];
      const readme = row.doc?.[0] ? readmeRef(row.doc[0]) : "*smx*";
      out.push(
        `| \`${row.option}\` | ${kind.type} | ${kind.unit ?? ""} | ${shownDefault(row)} | ${
          cell(row.doc?.[1] ?? "(undocumented)")
        } | ${readme} |`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

function shownDefault(row: OptionRow): string {
  if (row.default === undefined) return "—";
  return "code" in row.default ? `\`${cell(row.default.code)}\`` : cell(row.default.words);
}

function title(section: string): string {
  return section === "" ? "top level" : `\`${section}\``;
}

function anchor(section: string): string {
  return section === "" ? "top-level" : section.toLowerCase().replace(/\./g, "");
}

function readmeRef(section: string): string {
  const name = README_SECTIONS[section.split(" ")[0]];
  return name === undefined ? section : `${section} (${name})`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}
