// The configuration module: reads smx.conf text (or the built-in default) into the typed Config every
// component receives, and prints a Config back. Re-exports only.

export { ConfigError } from "./error.ts";
export { loadConfig, parseConfig } from "./build.ts";
export { formatConfig } from "./print.ts";
export { defaultConfig, defaultSmtps } from "./defaults.ts";
export { DEFAULT_CONF } from "./default_conf.ts";
export type * from "./types.ts";
