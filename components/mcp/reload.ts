// Reloading the configuration of a running MTA (SIGHUP, or any caller of Mta.reload()): reads the
// configuration file again and refuses it, keeping the running one, when it does not parse (the reason
// names file:line:col) or when it needs other permissions than the process was started with (new listen
// sockets, paths, map files, nameservers, log directory: Deno permissions are fixed at start, so those
// changes need a restart), or another number of smtps workers (processes). Otherwise every worker gets the new configuration and applies what it can live
// (its log level and log file, maps, limits); if one cannot, all go back to the running configuration.
// Reads the configuration file and what computePermissions reads; writes nothing.

import { loadConfig } from "../../config/mod.ts";
import { serviceOptions } from "../../config/service.ts";
import { smtpsInstances } from "../../config/processes.ts";
import type { Config } from "../../config/types.ts";
import type { WorkerName } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { computePermissions, type PermissionSets } from "./permissions.ts";
import type { Supervisor } from "./supervisor.ts";
import type { WorkerPermissions } from "./spawn.ts";

export type ReloadResult =
  | { ok: true; config: Config }
  | { ok: false; reason: string };

export interface ReloadDeps {
  supervisor: Supervisor;
  /** The sets the workers hold (fixed at start). */
  permissions: PermissionSets;
  /** Reads the configuration again (default: loadConfig of the running configuration's source). */
  load?: (source: string) => Promise<Config>;
  resolvConf?: string;
}

/** Reloads once; callers serialize (Mta.reload() does). */
export async function reloadConfiguration(deps: ReloadDeps): Promise<ReloadResult> {
  const running = deps.supervisor.config;
  const load = deps.load ?? ((source: string) => loadConfig(source === "<built-in>" ? undefined : source));
  const refuse = (reason: string): ReloadResult => {
    log.error("mcp", `reload refused, keeping the running configuration: ${reason}`);
    return { ok: false, reason };
  };
  log.info("mcp", `reloading the configuration from ${running.source}`);
  let next: Config;
  let sets: PermissionSets;
  try {
    next = await load(running.source);
    sets = await computePermissions(next, { resolvConf: deps.resolvConf });
  } catch (err) {
    return refuse((err as Error).message);
  }
  const changes = permissionChanges(deps.permissions, sets);
  if (next.log?.directory !== running.log?.directory) {
    changes.push(
      `log directory ${running.log?.directory ?? "(stderr)"} -> ${next.log?.directory ?? "(stderr)"}`,
    );
  }
  if (changes.length > 0) {
    return refuse(
      `it needs other permissions than the MTA was started with (${
        changes.join("; ")
      }): restart the MTA to apply it`,
    );
  }
  const [was, now] = [smtpsInstances(running), smtpsInstances(next)];
  if (now !== was) {
    return refuse(
      `it asks for ${now} smtps workers instead of ${was} (processes): restart the MTA to apply it`,
    );
  }
  const failed = await apply(deps.supervisor, next);
  if (failed.length > 0) {
    await apply(deps.supervisor, running);
    return refuse(failed.join("; "));
  }
  log.info("mcp", `configuration reloaded from ${next.source}`);
  return { ok: true, config: next };
}

/** Hands `config` to every worker and the MCP's own log; returns `name: reason` for each worker that failed. */
async function apply(supervisor: Supervisor, config: Config): Promise<string[]> {
  log.setLevel(serviceOptions(config, "mcp").log_level);
  const answers = await supervisor.reload(config);
  return [...answers].filter(([, error]) => error !== undefined).map(([name, error]) => `${name}: ${error}`);
}

/** What differs between two permission sets, as `smtps net +127.0.0.1:2526` entries. */
export function permissionChanges(before: PermissionSets, after: PermissionSets): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]) as Set<WorkerName>;
  const changes: string[] = [];
  for (const name of names) {
    const a = before[name];
    const b = after[name];
    if (!a || !b) {
      changes.push(`${name} ${a ? "removed" : "added"}`);
      continue;
    }
    for (const key of ["read", "write", "net"] as const) {
      const was = entries(a, key);
      const now = entries(b, key);
      const diff = [
        ...now.filter((x) => !was.includes(x)).map((x) => `+${x}`),
        ...was.filter((x) => !now.includes(x)).map((x) => `-${x}`),
      ];
      if (diff.length > 0) changes.push(`${name} ${key} ${diff.join(" ")}`);
    }
  }
  return changes;
}

function entries(set: WorkerPermissions, key: "read" | "write" | "net"): string[] {
  const value = set[key];
  return value === true ? ["(any)"] : value || [];
}
