// What a component's log lines say about their origin and where they go besides the file or stderr:
// the HOST field (the configuration's `hostname`), the syslog facility and server (`log { facility;
// syslog_server; }`), and each component's ident (its section's `log { ident }` when the configuration
// has one, else `smx/<component>`, see components/util/log.ts). Read by every worker and the MCP.
// Touches nothing.

import type { Config } from "./types.ts";

/** syslog(3) facilities by name (RFC 5424 6.2.1). */
export const FACILITIES: Record<string, number> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

export interface SyslogTarget {
  transport: "udp" | "tcp";
  host: string;
  port: number;
}

/**
 * Reads `udp:HOST:PORT`, `tcp:HOST:PORT` (`[v6]` in brackets; PORT defaults to 514) as a target; throws a
 * RangeError naming what is wrong.
 */
export function parseSyslogTarget(text: string): SyslogTarget {
  const m = /^(udp|tcp):(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new RangeError(`syslog server must be udp:HOST[:PORT] or tcp:HOST[:PORT]: ${text}`);
  const port = m[4] === undefined ? 514 : Number(m[4]);
  if (port < 1 || port > 65535) throw new RangeError(`syslog server port out of range: ${text}`);
  return { transport: m[1] as "udp" | "tcp", host: m[2] ?? m[3], port };
}

/** The net permissions a component needs to send to `t` (UDP binds an ephemeral local port first). */
export function syslogNetPermissions(t: SyslogTarget): string[] {
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  const own = t.transport === "udp" ? [t.host.includes(":") ? "[::]:0" : "0.0.0.0:0"] : [];
  return [`${host}:${t.port}`, ...own];
}

/** The syslog server of `config`, if it names one. */
export function syslogTarget(config: Config): SyslogTarget | undefined {
  const s = config.log?.syslog_server;
  return s === undefined ? undefined : parseSyslogTarget(s);
}

/** Each component's sections (smtps may have several), for their `log { }` subsections. */
function componentSections(config: Config, name: string): { log?: Record<string, unknown> }[] {
  const value = (config as unknown as Record<string, unknown>)[name];
  return (Array.isArray(value) ? value : value ? [value] : []) as { log?: Record<string, unknown> }[];
}

const COMPONENTS = ["qmgr", "smtps", "smtpc", "smar", "lda"];

/**
 * The syslog facility of each component whose section's `log { facility }` names one (sendmail X README
 * 3.4: `qmgr { log { facility = daemon; } }`); the others use the top-level log section's (default mail).
 */
export function logFacilities(config: Config): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of COMPONENTS) {
    const f = componentSections(config, name).map((s) => s.log?.facility).find((x) => typeof x === "string");
    if (typeof f === "string") out[name] = f.toLowerCase();
  }
  return out;
}

/**
 * The openlog(3) options in force for each component (its section's `log { options }`, else the top-level
 * log section's); a component absent from the answer has none set (smx's default: as if `pid`).
 */
export function logOptions(config: Config): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const top = config.log?.options;
  if (top) out.mcp = top;
  for (const name of COMPONENTS) {
    const own = componentSections(config, name).map((s) => s.log?.options).find(Array.isArray);
    const options = (own as string[] | undefined) ?? top;
    if (options) out[name] = options.map((o) => o.toLowerCase());
  }
  return out;
}

/**
 * The `log { ident }` of each component section that has one (the seed's per-component log section);
 * smtps, one worker for every smtps section, takes the first section's that sets one; the MCP takes the
 * top-level log section's.
 */
export function logIdents(config: Config): Record<string, string> {
  const out: Record<string, string> = {};
  if (config.log?.ident) out.mcp = config.log.ident;
  for (const name of ["qmgr", "smtps", "smtpc", "smar", "lda"]) {
    const value = (config as unknown as Record<string, unknown>)[name];
    const sections = (Array.isArray(value) ? value : value ? [value] : []) as { log?: { ident?: unknown } }[];
    const ident = sections.map((s) => s.log?.ident).find((i) => typeof i === "string" && i !== "");
    if (typeof ident === "string") out[name] = ident;
  }
  return out;
}
