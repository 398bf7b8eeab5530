// `-n` (as `postconf -n`): only what a configuration sets differently from the defaults, in configuration
// syntax. Compares the effective configuration (formatConfig) with the defaults' line by line within each
// section: an option line, a one-line subsection (`listen_socket { ... }`) or a map declaration is printed
// when the defaults' section of the same name (or, for a section the defaults lack, of the same keyword)
// does not hold it; a section is printed when it holds such a line, or when the defaults lack it and its
// presence means something (an `lda`, a named `smtps`). Parsing the output gives the same configuration.
// Pure; touches nothing.

import { parseConfig } from "./build.ts";
import { formatConfig } from "./print.ts";
import type { Config } from "./types.ts";

interface Node {
  header: string;
  lines: string[];
  children: Node[];
}

/** The formatted text as a tree of sections (a `... {` line opens one, `}` closes it); comments dropped. */
function tree(text: string): Node {
  const root: Node = { header: "", lines: [], children: [] };
  const stack = [root];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const top = stack[stack.length - 1];
    if (line.endsWith("{")) {
      const node: Node = { header: line, lines: [], children: [] };
      top.children.push(node);
      stack.push(node);
    } else if (line === "}") {
      stack.pop();
    } else {
      top.lines.push(line);
    }
  }
  return root;
}

const keyword = (header: string) => header.split(/\s+/)[0].toLowerCase();

/** The lines of `node` that `base` lacks, indented at `depth`. */
function changed(node: Node, base: Node | undefined, depth: number, always: boolean): string[] {
  const pad = "  ".repeat(depth);
  const inner = "  ".repeat(depth + 1);
  const known = new Set(base?.lines ?? []);
  const body = node.lines.filter((l) => !known.has(l)).map((l) => `${inner}${l}`);
  for (const child of node.children) {
    const same = base?.children.find((c) => c.header === child.header);
    const like = same ?? base?.children.find((c) => keyword(c.header) === keyword(child.header));
    body.push(...changed(child, like, depth + 1, same === undefined));
  }
  if (body.length === 0 && !always) return [];
  return [`${pad}${node.header}`, ...body, `${pad}}`];
}

/** What `config` sets differently from the defaults, as smx.conf text. */
export function formatChanged(config: Config): string {
  // The defaults with an lda section, so that an lda's options are compared with the lda's defaults.
  const defaults = tree(formatConfig(parseConfig("lda { }", "<defaults>")));
  const effective = tree(formatConfig(config));
  const out: string[] = [`# What ${config.source.replace(/\n/g, " ")} sets differently from the defaults.`];
  const known = new Set(defaults.lines);
  for (const line of effective.lines) if (!known.has(line)) out.push(line);
  for (const child of effective.children) {
    const same = defaults.children.find((c) => c.header === child.header);
    const like = same ?? defaults.children.find((c) => keyword(c.header) === keyword(child.header));
    // The lda runs only when its section exists: it is printed even when every option is a default.
    const always = same === undefined || (keyword(child.header) === "lda" && config.lda !== undefined);
    const lines = changed(child, like, 0, always);
    if (lines.length > 0) out.push("", ...lines);
  }
  return out.join("\n");
}
