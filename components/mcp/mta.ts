// Starting the whole MTA in this process: creates the queue and content directories (the one write the
// main process does itself, before any worker runs; it holds write permission on them for the workers
// anyway), computes each component's permission set, and starts the supervisor. Used by main.ts, the
// end-to-end tests and the benchmark.

import type { Config } from "../../config/types.ts";
import { ensureCdbDirs } from "../mail/cdb.ts";
import { computePermissions, type PermissionSets } from "./permissions.ts";
import { Supervisor, type SupervisorEnd, type SupervisorOptions } from "./supervisor.ts";

export interface MtaOptions extends Omit<SupervisorOptions, "permissions"> {
  /** The sets to hand out; computed from the configuration when absent. */
  permissions?: PermissionSets;
}

export interface Mta {
  supervisor: Supervisor;
  permissions: PermissionSets;
  /** Resolves when the MTA has stopped, for whatever reason. */
  done: Promise<SupervisorEnd>;
  /** Stops every component gracefully (smtps first, qmgr last). */
  stop(): Promise<SupervisorEnd>;
}

/** Starts the MTA described by `config`; resolves once every component is ready. */
export async function startMta(config: Config, opts: MtaOptions = {}): Promise<Mta> {
  const permissions = opts.permissions ?? await computePermissions(config);
  await ensureCdbDirs(config.CDB_base_directory);
  await Deno.mkdir(config.qmgr.IBDB.base_directory, { recursive: true });
  await Deno.mkdir(config.qmgr.DEFEDB.base_directory, { recursive: true });
  const supervisor = new Supervisor(config, { ...opts, permissions });
  await supervisor.start();
  return { supervisor, permissions, done: supervisor.done, stop: () => supervisor.stop() };
}
