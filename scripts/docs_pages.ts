// The generated parts of the component pages (docs/<component>.md): between
// `<!-- BEGIN GENERATED: what -->` and `<!-- END GENERATED -->`, each page gets its permission set as
// the MCP computes it for the built-in configuration (components/mcp/permissions.ts) and the list of its
// options (linking docs/options.md). The prose around them is written by hand. `deno task docs` fills
// them in (scripts/docs.ts); tests/docs_test.ts fails when a page is stale. Reads the built-in
// configuration's mailertable; touches nothing else.

import { fileURLToPath } from "node:url";
import { DEFAULT_CONF, parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import type { WorkerPermissions } from "../components/mcp/spawn.ts";
import { optionRows } from "./docs_options.ts";

/** The components with a page, and the option sections each page lists. */
export const PAGES: Record<string, string[]> = {
  mcp: ["", "map", "mcp", "log"],
  qmgr: ["qmgr"],
  smtps: ["smtps"],
  smtpc: ["smtpc"],
  smar: ["smar"],
  lda: ["lda"],
  metrics: ["metrics"],
};

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The nameservers are those of /etc/resolv.conf; the page shows a resolv.conf naming none (127.0.0.1). */
const NO_NAMESERVERS = "/dev/null";

/** The page of `component` with its generated parts brought up to date. */
export async function renderPage(component: string, page: string): Promise<string> {
  const parts: Record<string, string> = {
    permissions: await permissionsBlock(component),
    options: optionsBlock(component),
  };
  return page.replace(
    /(<!-- BEGIN GENERATED: (\w+) -->\n)[\s\S]*?(<!-- END GENERATED -->)/g,
    (whole, begin: string, what: string, end: string) =>
      parts[what] === undefined ? whole : `${begin}${parts[what]}${end}`,
  );
}

async function permissionsBlock(component: string): Promise<string> {
  const setOf = async (text: string) => {
    const sets = await computePermissions(parseConfig(text, "<built-in>"), { resolvConf: NO_NAMESERVERS });
    return (sets as unknown as Record<string, WorkerPermissions | undefined>)[component];
  };
  // An optional service the built-in configuration leaves out (metrics) is shown with its section's defaults.
  let set = await setOf(DEFAULT_CONF);
  const added = set === undefined && component !== "mcp";
  if (added) set = await setOf(`${DEFAULT_CONF}\n${component} { }\n`);
  const show = (v: string[] | boolean) =>
    v === true
      ? "any (unrestricted)"
      : v === false || v.length === 0
      ? "none"
      : v.map((p) => `\`${shown(p)}\``).join(", ");
  if (component === "mcp") {
    return [
      "The MCP holds the union of the workers' sets (a worker's set must be a subset of its parent's), plus",
      "reading its configuration and the `components` and `config` directories (Deno checks the parent's",
      "read permission when a worker loads its modules); it does no mail work itself.",
      "",
    ].join("\n");
  }
  if (!set) return "No set: the component is not configured.\n";
  const rows = [
    added
      ? `With the built-in configuration and \`${component} { }\` (\`deno task start -- --print-permissions\` prints them for any):`
      : "With the built-in configuration (`deno task start -- --print-permissions` prints them for any):",
    "",
    "| permission | granted |",
    "|---|---|",
    `| read | ${show(set.read)} |`,
    `| write | ${show(set.write)} |`,
    `| net | ${show(set.net)} |`,
    `| sys | ${show(set.sys)} |`,
    "| env, run, ffi, import | none |",
    "",
  ];
  return rows.join("\n");
}

/** A path as the page shows it: relative to the checkout, /etc/resolv.conf for the nameservers' file. */
function shown(p: string): string {
  if (p === NO_NAMESERVERS) return "/etc/resolv.conf";
  for (const base of [ROOT, `${Deno.cwd()}/`]) {
    if (p.startsWith(base)) return p.slice(base.length);
    if (p.startsWith(`unix:${base}`)) return `unix:./${p.slice(base.length + 5)}`;
  }
  return p;
}

/**
 * The text with `deno fmt`'s layout taken out (line breaks, table padding), so a page formatted after
 * generation still counts as current.
 */
export function normalized(text: string): string {
  return text.replace(/-{3,}/g, "---").replace(/ *\| */g, "|").replace(/\s+/g, " ").trim();
}

function optionsBlock(component: string): string {
  const sections = PAGES[component];
  const rows = optionRows().filter((r) =>
    sections.some((s) => s === "" ? r.section === "" : r.section === s || r.section.startsWith(`${s}.`))
  );
  const bySection = new Map<string, string[]>();
  for (const r of rows) bySection.set(r.section, [...bySection.get(r.section) ?? [], r.option]);
  const lines: string[] = [];
  for (const [section, options] of bySection) {
    const name = section === "" ? "top level" : `\`${section}\``;
    const anchor = section === "" ? "top-level" : section.toLowerCase().replace(/\./g, "");
    lines.push(`- [${name}](options.md#${anchor}): ${options.map((o) => `\`${o}\``).join(", ")}`);
  }
  return lines.join("\n") + "\n";
}
