// The sendmail X text map formats, read by the map loader (load.ts) and by `deno task createmap`:
// - plain: `LHS<whitespace>RHS` per line;
// - aliases: `alias: RHS` (the colon may be left out), a line starting with whitespace continuing the
//   previous RHS, as in /etc/aliases.
// `#` starts a comment line, blank lines are ignored, keys are case-insensitive (kept in lower case).
// Bad lines are reported as `file:line: problem`, never thrown. Pure functions; touches nothing.

export type MapFormat = "plain" | "aliases";

export interface MapTextOptions {
  format?: MapFormat;
  /** Accept a key without a value (its value is ""), as a list of local users needs. */
  emptyValues?: boolean;
}

export interface MapParse {
  entries: Map<string, string>;
  /** `file:line: problem` for each bad line. */
  errors: string[];
}

/** Parses a text map; bad lines are reported, not thrown. */
export function parseMapText(text: string, file: string, opts: MapTextOptions = {}): MapParse {
  const aliases = opts.format === "aliases";
  const entries = new Map<string, string>();
  const errors: string[] = [];
  const lines = text.split("\n");
  let last: { key: string; line: number } | undefined;
  const lineOf = new Map<string, number>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, "");
    const trimmed = line.trim();
    const where = `${file}:${i + 1}`;
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x08\x0b-\x1f\x7f]/.test(line)) {
      errors.push(`${where}: control character in line`);
      last = undefined;
      continue;
    }
    if (aliases && /^\s/.test(line)) {
      if (!last) {
        errors.push(`${where}: continuation line without an alias before it`);
        continue;
      }
      entries.set(last.key, `${entries.get(last.key)} ${trimmed}`.trim());
      continue;
    }
    last = undefined;
    const m = aliases
      ? /^([^\s:]+):?(?:\s+(.*\S))?\s*$/.exec(trimmed)
      : /^(\S+)(?:\s+(.*\S))?\s*$/.exec(trimmed);
    if (!m) {
      errors.push(`${where}: malformed line ${JSON.stringify(trimmed)}`);
      continue;
    }
    const key = m[1].toLowerCase();
    const value = m[2] ?? "";
    if (value === "" && !opts.emptyValues && !aliases) {
      errors.push(`${where}: missing value for key ${JSON.stringify(m[1])}`);
      continue;
    }
    if (entries.has(key)) {
      errors.push(`${where}: duplicate key ${JSON.stringify(m[1])}`);
      continue;
    }
    entries.set(key, value);
    if (aliases) {
      last = { key, line: i + 1 };
      lineOf.set(key, i + 1);
    }
  }
  if (aliases && !opts.emptyValues) {
    for (const [key, value] of entries) {
      if (value === "") {
        errors.push(`${file}:${lineOf.get(key)}: missing value for alias ${JSON.stringify(key)}`);
      }
    }
  }
  return { entries, errors };
}
