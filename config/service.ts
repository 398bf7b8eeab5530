// The MCP's options for one component as the configuration gives them: its log level, its restart
// dependencies and its start action (sendmail X keeps them in each component's section), with the
// defaults filled in, and the file it logs to. smtps may have several sections: one worker serves them
// all, so it logs at the most verbose of their levels and restarts the union of their dependencies.
// Read by the MCP and by every worker (for its own log). Touches nothing.

import { join } from "node:path";
import { defaultService } from "./defaults.ts";
import type { Config, ServiceOptions } from "./types.ts";

/** A component's MCP options with defaults; `mcp` gives the MCP's own log level. */
export function serviceOptions(
  config: Config,
  name: string,
): Required<Pick<ServiceOptions, "log_level" | "restart_dependencies" | "start_action">> {
  const defaults = defaultService();
  if (name === "mcp") return { ...defaults, log_level: config.mcp.log_level ?? defaults.log_level };
  const value = (config as unknown as Record<string, unknown>)[name];
  const sections = (Array.isArray(value) ? value : value ? [value] : []) as ServiceOptions[];
  if (sections.length === 0) return defaults;
  return {
    log_level: Math.max(...sections.map((s) => s.log_level ?? defaults.log_level)),
    restart_dependencies: [...new Set(sections.flatMap((s) => s.restart_dependencies ?? []))]
      .filter((d) => d !== name),
    start_action: sections[0].start_action ?? defaults.start_action,
  };
}

/** The file `name` logs to (`<log directory>/<name>.log`), or undefined for stderr. */
export function logFile(config: Config, name: string): string | undefined {
  const dir = config.log?.directory;
  return dir === undefined ? undefined : join(dir, `${name}.log`);
}
