// Starting the whole MTA in this process: creates the queue and content directories (the one write the
// main process does itself, before any worker runs; it holds write permission on them for the workers
// anyway), computes each component's permission set, and starts the supervisor. With a log directory it
// creates that too and logs the MCP's own lines to `<directory>/mcp.log` until the MTA stops. Used by
// main.ts, the end-to-end tests and the benchmark.

import type { Config } from "../../config/types.ts";
import { logFile, serviceOptions } from "../../config/service.ts";
import { log, logIdentity } from "../util/log.ts";
import { ensurePrivateDir } from "../util/private_files.ts";
import { reloadConfiguration, type ReloadResult } from "./reload.ts";
import { ensureCdbDirs } from "../mail/cdb.ts";
import { computePermissions, type PermissionSets, smtpcPorts } from "./permissions.ts";
import { Supervisor, type SupervisorEnd, type SupervisorOptions } from "./supervisor.ts";

export interface MtaOptions extends Omit<SupervisorOptions, "permissions"> {
  /** The sets to hand out; computed from the configuration when absent. */
  permissions?: PermissionSets;
  /** How reload() reads the configuration again (default: the file the configuration came from). */
  load?: (source: string) => Promise<Config>;
  /** Where the system's nameservers are listed (for the permission check of a reload). */
  resolvConf?: string;
}

export interface Mta {
  supervisor: Supervisor;
  permissions: PermissionSets;
  /** Resolves when the MTA has stopped, for whatever reason. */
  done: Promise<SupervisorEnd>;
  /** Stops every component gracefully (smtps first, qmgr last). */
  stop(): Promise<SupervisorEnd>;
  /** Reads the configuration again and applies it live, or refuses it and keeps the running one (SIGHUP). */
  reload(): Promise<ReloadResult>;
}

/**
 * The sets without `sys` entries this process does not hold. Only qmgr's disk guard asks for one
 * ("statfs"); the command line (main.ts) insists on it, but tests and the benchmark run the MTA in a
 * process started without it: there the disk guard stays off (qmgr logs so) instead of the start failing.
 */
function withoutUnheldSys(sets: PermissionSets): PermissionSets {
  for (const [name, set] of Object.entries(sets)) {
    if (!set || !set.sys) continue;
    const held = set.sys.filter((kind) =>
      Deno.permissions.querySync({ name: "sys", kind: kind as Deno.SysPermissionDescriptor["kind"] })
        .state ===
        "granted"
    );
    if (held.length < set.sys.length) {
      log.warn(
        "mcp",
        `${name} runs without sys ${set.sys.filter((k) => !held.includes(k)).join(", ")}: not held`,
      );
    }
    set.sys = held.length > 0 ? held : false;
  }
  return sets;
}

/** Starts the MTA described by `config`; resolves once every component is ready. */
export async function startMta(config: Config, opts: MtaOptions = {}): Promise<Mta> {
  const permissions = opts.permissions ?? withoutUnheldSys(await computePermissions(config));
  await ensureCdbDirs(config.CDB_base_directory);
  await ensurePrivateDir(config.qmgr.IBDB.base_directory);
  await ensurePrivateDir(config.qmgr.DEFEDB.base_directory);
  // smtpc's ports are 25, its own and the mailertable's: the ones its permission set names (it logs them,
  // and with the ipv6 flag, whose permission names no port, refuses a route to any other).
  config = { ...config, smtpc: { ...config.smtpc, ports: await smtpcPorts(config) } };
  const restoreLog = await mcpLog(config);
  // Once at start: what the configuration says that has no effect here, or reads oddly (seed_options.ts).
  for (const w of config.warnings ?? []) if (w.level === "warning") log.warn("mcp", w.message);
  const supervisor = new Supervisor(config, {
    ...opts,
    permissions,
    onReloadRequest: async (): Promise<{ ok: boolean; reason?: string }> => {
      const r: ReloadResult = await reload();
      return r.ok ? { ok: true } : { ok: false, reason: r.reason };
    },
  });
  supervisor.done.then(restoreLog);
  await supervisor.start();
  let reloading = Promise.resolve<unknown>(undefined);
  const reload = () => {
    const deps = { supervisor, permissions, load: opts.load, resolvConf: opts.resolvConf };
    const result = reloading.then(() => reloadConfiguration(deps));
    reloading = result;
    return result;
  };
  return { supervisor, permissions, done: supervisor.done, stop: () => supervisor.stop(), reload };
}

/** Sets the MCP's log level and file from the configuration; returns how to put back what was before. */
async function mcpLog(config: Config): Promise<() => void> {
  const before = { level: log.level, file: log.file };
  const path = logFile(config, "mcp");
  if (config.log?.directory !== undefined) await Deno.mkdir(config.log.directory, { recursive: true });
  log.setLevel(serviceOptions(config, "mcp").log_level);
  log.setIdentity(logIdentity(config));
  if (path !== undefined) log.toFile(path);
  return () => {
    log.setLevel(before.level);
    if (path !== undefined) log.toFile(before.file);
  };
}
