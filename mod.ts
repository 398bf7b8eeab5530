// The MTA's public entry points: start it from a Config (and stop or reload it: Mta.stop(), Mta.reload(),
// or handleSignal() as the signal listeners do), and read a Config from smx.conf text or a file.
// Re-exports only. Run it with `deno task start`.

export {
  handleSignal,
  type Mta,
  type MtaOptions,
  type ReloadResult,
  startMta,
} from "./components/mcp/mod.ts";
export { ConfigError, formatConfig, loadConfig, parseConfig } from "./config/mod.ts";
export type { Config } from "./config/types.ts";
