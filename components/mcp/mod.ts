// The MCP (main control program): starting, supervising and stopping the MTA. Re-exports only.

export { type Mta, type MtaOptions, startMta } from "./mta.ts";
export {
  EX_CONFIG,
  EX_SOFTWARE,
  StartError,
  Supervisor,
  type SupervisorEnd,
  type SupervisorEvent,
} from "./supervisor.ts";
export {
  computePermissions,
  mainProcessFlags,
  missingPermissions,
  type PermissionSets,
} from "./permissions.ts";
export { runMain } from "./cli.ts";
