// The MCP (main control program): starting, supervising, reloading and stopping the MTA. Re-exports only.

export { type Mta, type MtaOptions, startMta } from "./mta.ts";
export {
  EX_CONFIG,
  EX_NOPERM,
  EX_SOFTWARE,
  EX_USAGE,
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
export { type ReloadResult } from "./reload.ts";
export { handleSignal, listenForSignals, type MtaSignal } from "./signals.ts";
export { compileCommand, formatManifest, runCommand } from "./manifest.ts";
export { runMain } from "./cli.ts";
