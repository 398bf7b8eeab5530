// The shape of smx.conf: which sections may appear where, whether they take a name or may repeat, and
// the kind of value each option takes. Canonical names (as written here) equal the field names of
// config/types.ts; the text may write them in any case. Read by config/read.ts and config/print.ts.

import type {
  LdaConfig,
  LogConfig,
  McpConfig,
  QmgrConfig,
  SmarConfig,
  SmtpcConfig,
  SmtpsConfig,
} from "./types.ts";

/**
 * What an option's value must be. Counts are integers >= 0, "positive" >= 1; times are in ms and > 0,
 * except "time_ms" (>= 0, and a plain number means MILLISECONDS, not seconds: used by max_commit_delay,
 * whose useful values are a few ms); sizes are bytes > 0.
 */
export type Kind =
  | "string"
  | "count"
  | "positive"
  | "time"
  | "time_ms"
  | "size"
  | "port"
  | "address"
  | "socket_type"
  | "map_type"
  | "map_ref"
  | "flags"
  | "nameservers"
  | "components"
  | "start_action";

/** Kinds whose value is a list (a single value is a list of one). */
export const LIST_KINDS: ReadonlySet<Kind> = new Set(["flags", "nameservers", "components"]);

/** The components a `restart_dependencies` list may name. */
export const COMPONENT_NAMES = ["qmgr", "smtps", "smtpc", "smar", "lda"];

/** The start actions a worker supports (`pass` is sendmail X's fd passing: a worker listens itself). */
export const START_ACTIONS = ["wait", "pass"];

/** The MCP's options for a component, present in each component's section as in sendmail X. */
const SERVICE_OPTIONS = {
  log_level: "count",
  restart_dependencies: "components",
  start_action: "start_action",
} as const satisfies Record<string, Kind>;

export interface SectionSpec {
  /** Canonical keyword ("" for the top level). */
  keyword: string;
  /** Whether the section is written `keyword NAME { }`. */
  name: "none" | "optional" | "required";
  /** Whether the section may appear several times in its parent. */
  repeat: boolean;
  options: Record<string, Kind>;
  sections: SectionSpec[];
}

/** The flags an smtps section accepts, lower-case (the text may write them in any case). */
export const SMTPS_FLAGS = [
  "8bitmime",
  "delay_checks",
  "delay_greylisting_error_until_data",
  "greylisting",
  "lmtp_does_not_imply_relaying",
  "soft_bounce",
  "strict_ehlo_checks",
  "access",
];

function section(
  keyword: string,
  options: Record<string, Kind>,
  sections: SectionSpec[] = [],
  more: Partial<SectionSpec> = {},
): SectionSpec {
  return { keyword, name: "none", repeat: false, options, sections, ...more };
}

/** A map declaration or an inline map section (`mailertable { type = hash; file = "..."; }`). */
export function mapSection(keyword: string, more: Partial<SectionSpec> = {}): SectionSpec {
  return section(keyword, { type: "map_type", file: "string" }, [], more);
}

export const LISTEN_SOCKET = section(
  "listen_socket",
  { type: "socket_type", address: "address", port: "port" },
  [],
  {
    repeat: true,
  },
);

export const SMTPS = section(
  "smtps",
  {
    hostname: "string",
    id: "count",
    io_timeout: "time",
    max_message_size: "size",
    max_threads: "positive",
    max_recipients_per_transaction: "positive",
    max_recipients_per_session: "positive",
    max_bad_commands_per_session: "count",
    max_hops: "positive",
    flags: "flags",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof SmtpsConfig]?: Kind },
  [LISTEN_SOCKET],
  { name: "optional", repeat: true },
);

export const QMGR = section(
  "qmgr",
  {
    retry_min_delay: "time",
    retry_max_delay: "time",
    queue_return_timeout: "time",
    queue_delay_timeout: "time",
    AQ_max_entries: "positive",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof QmgrConfig]?: Kind },
  [
    section(
      "IBDB",
      {
        base_directory: "string",
        max_commit_delay: "time_ms",
        max_open_TAs: "positive",
      } satisfies { [K in keyof QmgrConfig["IBDB"]]: Kind },
    ),
    section("DEFEDB", { base_directory: "string" } satisfies { [K in keyof QmgrConfig["DEFEDB"]]: Kind }),
    section(
      "smtpc",
      {
        initial_connections: "count",
        max_connections: "positive",
        smtp_max_rcpts_per_transaction: "positive",
        lmtp_max_rcpts_per_transaction: "positive",
      } satisfies { [K in keyof QmgrConfig["smtpc"]]: Kind },
    ),
    section(
      "smtps",
      {
        max_connections: "positive",
        max_connection_rate: "count",
      } satisfies { [K in keyof QmgrConfig["smtps"]]: Kind },
    ),
  ],
);

export const MCP = section(
  "mcp",
  { heartbeat_interval: "time", log_level: "count" } satisfies { [K in keyof McpConfig]: Kind },
);

export const SMTPC = section(
  "smtpc",
  { io_timeout: "time", ...SERVICE_OPTIONS } satisfies { [K in keyof SmtpcConfig]?: Kind },
);

/** Where log lines go: stderr unless a directory is named. */
export const LOG = section("log", { directory: "string" } satisfies { [K in keyof LogConfig]: Kind });

export const SMAR = section(
  "smar",
  {
    nameserver: "nameservers",
    DNS_timeout: "time",
    mailertable: "map_ref",
    access_map: "map_ref",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof SmarConfig]: Kind },
  [mapSection("mailertable"), mapSection("access_map")],
);

/** The built-in local delivery agent: LMTP in, Maildir out (optional: started only when present). */
export const LDA = section(
  "lda",
  {
    hostname: "string",
    mail_root: "string",
    local_user_map: "map_ref",
    postmaster: "string",
    io_timeout: "time",
    max_message_size: "size",
    max_threads: "positive",
  } satisfies { [K in keyof LdaConfig]?: Kind },
  [LISTEN_SOCKET, mapSection("local_user_map")],
);

export const TOP = section(
  "",
  { hostname: "string", CDB_base_directory: "string" },
  [mapSection("map", { name: "required", repeat: true }), MCP, QMGR, SMTPS, SMTPC, SMAR, LDA, LOG],
);
