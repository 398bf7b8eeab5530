// The command line of the MTA (`deno task start [-f FILE] [-V...] [--print-permissions] [-h]`): reads
// the configuration, prints it (-V, more Vs for more detail) or the permission manifest, or checks that
// this process holds every permission the workers must be given (saying which are missing and the exact
// `deno run` line to use), starts the MTA, and acts on signals (signals.ts). Returns the exit code
// (sysexits.h). Reads the configuration file, the mailertable and /etc/resolv.conf; opens nothing else.

import { parseArgs } from "node:util";
import { ConfigError, DEFAULT_CONF, formatConfig, loadConfig, parseConfig } from "../../config/mod.ts";
import { formatChanged } from "../../config/print_changed.ts";
import { checkConfiguration } from "./check.ts";
import { socketLabel } from "../../config/listen.ts";
import type { Config } from "../../config/types.ts";
import { log } from "../util/log.ts";
import { mailertablePorts } from "../smar/mailertable.ts";
import { syslogTarget } from "../../config/log_settings.ts";
import { describeDerived } from "./describe.ts";
import { formatManifest, runCommand, shellWords } from "./manifest.ts";
import { startMta } from "./mta.ts";
import { computePermissions, missingPermissions, type PermissionSets, type Query } from "./permissions.ts";
import { listenForSignals } from "./signals.ts";
import { EX_CONFIG, EX_NOPERM, EX_USAGE, StartError } from "./supervisor.ts";

export { EX_NOPERM, EX_USAGE };
export const EX_CANTCREAT = 73;

/** The usage text, with the defaults of the built-in configuration. */
export async function usage(): Promise<string> {
  const c = await loadConfig();
  const listen = c.smtps.flatMap((s) => s.listen_socket.map(socketLabel)).join(", ");
  const queue = [c.CDB_base_directory, c.qmgr.IBDB.base_directory, c.qmgr.DEFEDB.base_directory].join(", ");
  return `usage: deno task start [-f FILE] [-V[V[V]] | -n | --check] [--print-permissions] [--print-command] [-h]
  -f FILE              read the configuration from FILE (default: the built-in configuration: smtps on
                       ${listen}, queue in ${queue}, logs to stderr)
  -V                   print the effective configuration (every option, defaults included), then exit;
                       -VV adds what the MCP derives from it, -VVV each worker's permission set too
  -n                   print only what the configuration sets differently from the defaults, then exit
  --check              load every map, key, certificate and file the configuration names and report
                       each problem with its file and line, then exit (78 when there is one)
  --print-permissions  print each worker's permission set and the deno run / deno compile command lines
                       that give the main process what it needs, then exit
  --print-command      print only that deno run line (what deno task start runs), then exit
  -h, --help           print this help, then exit
signals: SIGTERM or SIGINT stop gracefully (a second one stops at once), SIGHUP reloads the configuration
exit codes: 0 stopped, 64 usage, 70 a component keeps failing, 73 cannot create a queue directory,
            77 missing permissions, 78 configuration error`;
}

export interface MainDeps {
  /** Where normal output goes (the -V, -h and --print-permissions text). */
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
        V: { type: "boolean", multiple: true },
        "print-permissions": { type: "boolean" },
        "print-command": { type: "boolean" },
        check: { type: "boolean" },
        n: { type: "boolean", short: "n" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    err(`smx: ${(e as Error).message}\n${await usage()}`);
    return EX_USAGE;
  }
  if (opts.help) {
    out(await usage());
    return 0;
  }
  const configFile = opts.file;
  const query = deps.query ?? ((d: Deno.PermissionDescriptor) => Deno.permissions.querySync(d));
  if (configFile !== undefined && query({ name: "read", path: configFile }).state !== "granted") {
    err(`smx: Read the configuration: no read permission for ${configFile}: add --allow-read=${configFile}`);
    return EX_NOPERM;
  }
  if (opts.check) return await runCheck(configFile, out, err);
  let config: Config;
  try {
    if (opts.n) {
      // -n prints the paths as written (loadConfig would make them absolute).
      const text = configFile === undefined ? DEFAULT_CONF : await Deno.readTextFile(configFile);
      out(formatChanged(parseConfig(text, configFile ?? "<built-in>")));
      return 0;
    }
    config = await loadConfig(configFile);
  } catch (e) {
    err(`smx: ${e instanceof ConfigError ? e.message : `Read the configuration: ${(e as Error).message}`}`);
    return EX_CONFIG;
  }
  const verbosity = opts.V?.length ?? 0;
  const cmdOpts = { configFile, logDirectory: config.log?.directory };
  if (verbosity > 0 || opts["print-permissions"]) {
    const parts: string[] = [];
    if (verbosity > 0) {
      // The ports smtpc may reach are derived: 25, smtpc's own and every port the mailertable names.
      const ports = new Set([25, ...config.smtpc.ports]);
      if (config.smar.mailertable) {
        for (const p of await mailertablePorts(config.smar.mailertable).catch(() => [])) ports.add(p);
      }
      const shown = { ...config, smtpc: { ...config.smtpc, ports: [...ports].sort((a, b) => a - b) } };
      parts.push(formatConfig(shown).trimEnd());
    }
    if (verbosity > 1) parts.push(await describeDerived(config, deps.resolvConf));
    if (verbosity > 2 || opts["print-permissions"]) {
      const { sets, note } = await bestPermissions(config, deps.resolvConf);
      parts.push(formatManifest(config.source, sets, cmdOpts) + (note ? `\n${note}` : ""));
    }
    out(parts.join("\n\n"));
    return 0;
  }

  if (opts["print-command"]) {
    // The launcher (scripts/start.sh, `deno task start`) runs this line: exactly what this configuration needs.
    const { sets, note } = await bestPermissions(config, deps.resolvConf);
    if (note) {
      err(`smx: ${note.replace(/^# /, "")}`);
      return EX_CONFIG;
    }
    out(shellWords(runCommand(sets, cmdOpts, args.filter((a) => a !== "--print-command"))));
    return 0;
  }

  // First the sets the configuration alone decides (no file is read without permission), then the full ones.
  const permOpts = { ...cmdOpts, query };
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
    err(`smx: run it as:\n  ${shellWords(runCommand(permissions, cmdOpts, args))}`);
    return EX_NOPERM;
  }

  return await run(config, permissions, deps.resolvConf);
}

/**
 * `--check`: every map, key, certificate and file the configuration names loaded as the components load
 * them; each problem on stderr with its place; 78 (EX_CONFIG) when there is one.
 */
async function runCheck(
  configFile: string | undefined,
  out: (t: string) => void,
  err: (t: string) => void,
): Promise<number> {
  if (configFile === undefined) {
    err("smx: --check needs -f FILE (the built-in configuration is checked by the tests)");
    return EX_USAGE;
  }
  const { problems, warnings } = await checkConfiguration(configFile);
  for (const w of warnings) err(`smx: warning: ${w}`);
  for (const p of problems) err(`smx: ${p}`);
  if (problems.length > 0) {
    err(`smx: ${configFile}: ${problems.length} problem${problems.length === 1 ? "" : "s"} found`);
    return EX_CONFIG;
  }
  out(`smx: ${configFile}: every map, key, certificate and file it names loads`);
  return 0;
}

/** The full permission sets, or (when the files they depend on cannot be read) those the configuration alone gives. */
async function bestPermissions(config: Config, resolvConf?: string) {
  try {
    return { sets: await computePermissions(config, { resolvConf }) };
  } catch (e) {
    const sets = await computePermissions(config, { readFiles: false, resolvConf });
    const note = `# Incomplete: ${
      (e as Error).message
    } (smtpc's ports and smar's nameservers may be missing)`;
    return { sets, note };
  }
}

async function run(config: Config, permissions: PermissionSets, resolvConf?: string): Promise<number> {
  log.toSyslog(syslogTarget(config));
  try {
    return await runMta(config, permissions, resolvConf);
  } finally {
    await log.flushSyslog();
    log.toSyslog(undefined);
  }
}

async function runMta(config: Config, permissions: PermissionSets, resolvConf?: string): Promise<number> {
  log.info("mcp", `starting with ${config.source}`);
  let mta;
  try {
    mta = await startMta(config, { permissions, resolvConf });
  } catch (e) {
    log.error("mcp", (e as Error).message);
    return e instanceof StartError ? e.end.code : EX_CANTCREAT;
  }
  const unlisten = listenForSignals(mta);
  const end = await mta.done;
  unlisten();
  if (end.code !== 0) log.error("mcp", `the MTA stopped: ${end.reason}`);
  return end.code;
}
