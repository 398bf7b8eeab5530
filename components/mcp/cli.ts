// The command line of the MTA (`deno task start [-f FILE] [-V] [-h]`): reads the configuration, checks
// that this process holds every permission the workers must be given (saying which are missing and the
// exact `deno run` line to use), starts the MTA, and stops it on SIGTERM/SIGINT. Returns the exit code
// (sysexits.h). Reads the configuration file, the mailertable and /etc/resolv.conf; opens nothing else.

import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConfigError, formatConfig, loadConfig } from "../../config/mod.ts";
import type { Config } from "../../config/types.ts";
import { log } from "../util/log.ts";
import { startMta } from "./mta.ts";
import {
  computePermissions,
  mainProcessFlags,
  missingPermissions,
  type PermissionSets,
  type Query,
} from "./permissions.ts";
import { EX_CONFIG, StartError } from "./supervisor.ts";

export const EX_USAGE = 64;
export const EX_CANTCREAT = 73;
export const EX_NOPERM = 77;

export const USAGE = `usage: deno task start [-f FILE] [-V] [-h]
  -f FILE  read the configuration from FILE (default: the built-in configuration)
  -V       print the configuration as the MTA understands it, then exit
  -h       print this help, then exit`;

export interface MainDeps {
  /** Where normal output goes (the -V and -h text). */
  out?: (text: string) => void;
  /** Where problems are reported. */
  err?: (text: string) => void;
  /** Permission lookup (tests make some permissions missing). */
  query?: Query;
  /** Where the system's nameservers are listed. */
  resolvConf?: string;
}

/** Runs the MTA as the command line `args` says; resolves with the process exit code. */
export async function runMain(args: string[], deps: MainDeps = {}): Promise<number> {
  const out = deps.out ?? ((t: string) => console.log(t));
  const err = deps.err ?? ((t: string) => console.error(t));
  // `deno task start -- -f FILE` hands the script a leading "--": accept it as well as `deno task start -f FILE`.
  if (args[0] === "--") args = args.slice(1);
  let opts;
  try {
    opts = parseArgs({
      args,
      options: {
        file: { type: "string", short: "f" },
        V: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    err(`smx: ${(e as Error).message}\n${USAGE}`);
    return EX_USAGE;
  }
  if (opts.help) {
    out(USAGE);
    return 0;
  }
  const configFile = opts.file;
  const query = deps.query ?? ((d: Deno.PermissionDescriptor) => Deno.permissions.querySync(d));
  if (configFile !== undefined && query({ name: "read", path: configFile }).state !== "granted") {
    err(`smx: Read the configuration: no read permission for ${configFile}: add --allow-read=${configFile}`);
    return EX_NOPERM;
  }
  let config: Config;
  try {
    config = await loadConfig(configFile);
  } catch (e) {
    err(`smx: ${e instanceof ConfigError ? e.message : `Read the configuration: ${(e as Error).message}`}`);
    return EX_CONFIG;
  }
  if (opts.V) {
    out(formatConfig(config));
    return 0;
  }

  // First the sets the configuration alone decides (no file is read without permission), then the full ones.
  const permOpts = { configFile, query };
  const sketch = await computePermissions(config, { readFiles: false, resolvConf: deps.resolvConf });
  let permissions: PermissionSets = sketch;
  let missing = missingPermissions(sketch, permOpts);
  if (missing.length === 0) {
    try {
      permissions = await computePermissions(config, { resolvConf: deps.resolvConf });
    } catch (e) {
      err(`smx: Compute the permissions: ${(e as Error).message}`);
      return EX_CONFIG;
    }
    missing = missingPermissions(permissions, permOpts);
  }
  if (missing.length) {
    err(`smx: Start the MTA: this process lacks permissions the components need: ${missing.join(", ")}`);
    err(`smx: run it as:\n  ${commandLine(permissions, configFile, args)}`);
    return EX_NOPERM;
  }

  return await run(config, permissions);
}

/** The `deno run` line that gives the main process exactly what it needs for this configuration. */
export function commandLine(perms: PermissionSets, configFile: string | undefined, args: string[]): string {
  const main = relative(Deno.cwd(), fileURLToPath(new URL("./main.ts", import.meta.url)));
  const words = ["deno", "run", ...mainProcessFlags(perms, { configFile }), main, ...args];
  return words.map(shellQuote).join(" ");
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

async function run(config: Config, permissions: PermissionSets): Promise<number> {
  log.info("mcp", `starting with ${config.source}`);
  let mta;
  try {
    mta = await startMta(config, { permissions });
  } catch (e) {
    log.error("mcp", (e as Error).message);
    return e instanceof StartError ? e.end.code : EX_CANTCREAT;
  }
  const stop = () => void mta.stop();
  const hup = () =>
    log.warn("mcp", "reload on SIGHUP is not supported yet: restart the MTA to apply changes");
  const signals: [Deno.Signal, () => void][] = [["SIGTERM", stop], ["SIGINT", stop], ["SIGHUP", hup]];
  for (const [sig, fn] of signals) Deno.addSignalListener(sig, fn);
  const end = await mta.done;
  for (const [sig, fn] of signals) Deno.removeSignalListener(sig, fn);
  if (end.code !== 0) log.error("mcp", `the MTA stopped: ${end.reason}`);
  return end.code;
}
