// The permission manifest (`deno task start -- --print-permissions`): each worker's permission set for a
// configuration, and the `deno run` and `deno compile` command lines that give the main process exactly
// the union it must hold. Also the list of worker modules a compiled binary must include: each is found
// from spawn.ts's import.meta.url, as the supervisor finds it. Touches nothing.

import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { COMPONENTS, SERVICES, type WorkerName } from "../protocol/messages.ts";
import { mainProcessFlags, type PermissionSets } from "./permissions.ts";
import { type WorkerPermissions, workerUrl } from "./spawn.ts";

export interface CommandOptions {
  /** The configuration file (`-f`); none for the built-in configuration. */
  configFile?: string;
  /** The log directory of the configuration, if any. */
  logDirectory?: string;
}

/** Every worker module, as a path relative to the working directory (the repository root for the tasks). */
export function workerModules(): string[] {
  return ([...COMPONENTS, ...SERVICES] as WorkerName[]).map((name) => cwdPath(workerUrl(name)));
}

/** The main module, relative to the working directory. */
export function mainModule(): string {
  return cwdPath(new URL("./main.ts", import.meta.url));
}

/** `deno run` with the flags the main process needs for these sets. */
export function runCommand(perms: PermissionSets, opts: CommandOptions = {}, args: string[] = []): string[] {
  const flags = mainProcessFlags(perms, { ...opts, standalone: false });
  return ["deno", "run", ...flags, mainModule(), ...args];
}

/**
 * `deno compile` of a binary that holds exactly these permissions (its modules are embedded, so it reads
 * no source directory), includes every worker module, and reads `configFile` unless told another.
 */
export function compileCommand(perms: PermissionSets, opts: CommandOptions = {}, output = "smx"): string[] {
  const flags = mainProcessFlags(perms, { ...opts, standalone: true });
  const includes = workerModules().flatMap((m) => ["--include", m]);
  const args = opts.configFile ? ["-f", opts.configFile] : [];
  return ["deno", "compile", ...flags, ...includes, "--output", output, mainModule(), ...args];
}

/** The manifest text for a configuration whose worker sets are `perms`. */
export function formatManifest(source: string, perms: PermissionSets, opts: CommandOptions = {}): string {
  const lines = [
    `# Permission sets for the configuration ${source}.`,
    "# Each worker gets exactly its set; env, run, ffi and import are denied to all of them.",
  ];
  for (const [name, set] of Object.entries(perms) as [WorkerName, WorkerPermissions][]) {
    lines.push(`${name}:`);
    for (const key of ["read", "write", "net", "sys"] as const) lines.push(`  ${key}: ${list(set[key])}`);
  }
  const args = opts.configFile ? ["-f", opts.configFile] : [];
  lines.push(
    "# The main process holds their union, plus reading its configuration (and its modules when run from source):",
    shellWords(runCommand(perms, opts, args)),
    "# A single binary for this configuration (the runtime is downloaded by deno compile):",
    shellWords(compileCommand(perms, opts)),
  );
  return lines.join("\n");
}

function list(entries: string[] | boolean): string {
  if (entries === true) return "any (unrestricted)";
  return entries && entries.length > 0 ? entries.join(", ") : "none";
}

/** The words as a shell command line, quoting what the shell would split or expand. */
export function shellWords(words: string[]): string {
  return words.map(shellQuote).join(" ");
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function cwdPath(url: URL): string {
  return relative(Deno.cwd(), fileURLToPath(url));
}
