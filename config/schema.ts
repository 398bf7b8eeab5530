// The shape of smx.conf: which sections may appear where, whether they take a name or may repeat, and
// the kind of value each option takes. Canonical names (as written here) equal the field names of
// config/types.ts; the text may write them in any case. Read by config/read.ts and config/print.ts.

import type {
  DkimSigningConfig,
  DnsblSpec,
  GreylistConfig,
  LdaConfig,
  LdaTlsConfig,
  LogConfig,
  McpConfig,
  MetricsConfig,
  MtaStsConfig,
  QmgrConfig,
  SmarConfig,
  SmtpcConfig,
  SmtpcTlsConfig,
  SmtpsAuthConfig,
  SmtpsAuthenticationConfig,
  SmtpsConfig,
  SmtpsTlsConfig,
  TlsRptConfig,
} from "./types.ts";

/**
 * What an option's value must be. Counts are integers >= 0, "positive" >= 1. Times come out in ms: "time"
 * > 0 and "time0" >= 0 read a plain number as seconds (the README's default unit), "time_ms" (>= 0) as
 * milliseconds (smx's own auth failure_delay), "time_us" (>= 0) as MICROSECONDS (the README's unit of
 * max_commit_delay; the ms may be fractional). Sizes come out in bytes: "size" > 0 reads a plain number
 * as bytes, "size_kb" > 0 and "size0_kb" >= 0 (0: off) as KB (the README's unit of max_message_size,
 * min_disk_space, ok_disk_space). Explicit units work for every time and size. "dsn_flags" is a list of
 * DSN_FLAGS read into an object of booleans (QmgrConfig["DSN_handling"]["flags"]).
 */
export type Kind =
  | "string"
  | "count"
  | "positive"
  | "time"
  | "time0"
  | "time_ms"
  | "time_us"
  | "size"
  | "size_kb"
  | "size0_kb"
  | "mode"
  | "log_facility"
  | "log_options"
  | "protected_flags"
  | "local_user_flags"
  | "port"
  | "address"
  | "socket_type"
  | "filter_socket_type"
  | "milter_action"
  | "map_type"
  | "map_ref"
  | "map_refs"
  | "alias_flags"
  | "allow_by"
  | "match_type"
  | "netmask"
  | "flags"
  | "nameservers"
  | "components"
  | "start_action"
  | "dsn_flags"
  | "security_level"
  | "tls_flags"
  | "auth_flags"
  | "mailauth_flags"
  | "sasl_mechs"
  | "networks"
  | "milter_flags"
  | "smtpc_flags"
  | "policy_stages";

/** Kinds whose value is a list (a single value is a list of one). */
export const LIST_KINDS: ReadonlySet<Kind> = new Set([
  "flags",
  "nameservers",
  "components",
  "dsn_flags",
  "map_refs",
  "alias_flags",
  "allow_by",
  "match_type",
  "tls_flags",
  "auth_flags",
  "mailauth_flags",
  "sasl_mechs",
  "networks",
  "milter_flags",
  "smtpc_flags",
  "policy_stages",
  "log_options",
  "protected_flags",
  "local_user_flags",
]);

/** The map types a map declaration may name. */
export const MAP_TYPES = ["hash", "sequence", "socket", "passwd"];

/** The words each word-list kind accepts, lower-case (the text may write them in any case). */
export const WORD_LISTS = {
  alias_flags: [
    "localpart",
    "local_domains",
    "all_domains",
    "implicitly_match_detail",
    "replace_macros",
    "preserve_domain",
  ],
  // The 3.10.2 flag names (allow_by_sender ...) are read as the 3.10 ones (config/build.ts).
  allow_by: ["sender", "client_ip", "allow_by_sender", "allow_by_client_ip"],
  match_type: ["generic_lookup", "implicitly_match_detail"],
  protected_flags: ["allow_by_sender", "allow_by_client_ip", "generic_lookup", "implicitly_match_detail"],
  local_user_flags: ["implicitly_match_detail"],
  tls_flags: ["allow_relaying_if_verified", "check_access_map_for_relaying", "implicit"],
  auth_flags: [
    "allow_plaintext",
    "received_user",
    // Cyrus SASL's security properties (README 3.10 auth flags): they select the mechanisms offered.
    "noplaintext",
    "noactive",
    "nodictionary",
    "forward_secrecy",
    "noanonymous",
    "pass_credentials",
    "mutual_auth",
  ],
  // Every mechanism name the README uses; DIGEST-MD5 (historic) is accepted and never offered.
  sasl_mechs: ["plain", "login", "cram-md5", "digest-md5", "scram-sha-1", "scram-sha-256"],
  log_facility: [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
  ],
  log_options: ["pid", "cons", "ndelay", "odelay", "nowait", "perror"],
  mailauth_flags: ["spf", "dkim", "dmarc", "arc"],
  milter_flags: ["abort", "accept_but_reconnect"],
  // ipv6: smtpc may reach IPv6 destinations, which takes an unrestricted net permission (smtpc/worker.ts).
  smtpc_flags: ["ipv6"],
  policy_stages: ["rcpt", "data", "end_of_data"],
} as const satisfies Partial<Record<Kind, readonly string[]>>;

/** The flags of qmgr's DSN_handling section, as written (the text may use any case). */
export const DSN_FLAGS = ["header_only", "MIME_Format"] as const;

/** The components a `restart_dependencies` list may name. */
export const COMPONENT_NAMES = ["qmgr", "smtps", "smtpc", "smar", "lda", "metrics"];

/** smtpc's TLS security levels (SmtpcTlsConfig["security_level"]). */
export const SECURITY_LEVELS = ["none", "may", "encrypt", "verify"];

/**
 * sendmail X's start actions (README 3.7). In smx each component is a worker started with the MTA that
 * opens its own sockets, so all four mean that (config/seed_options.ts says so in -V).
 */
export const START_ACTIONS = ["wait", "pass", "accept", "nostartaccept"];

/** The syslog-style `log { }` section of a component (README 3.4). */
export const COMPONENT_LOG_OPTIONS = {
  facility: "log_facility",
  ident: "string",
  options: "log_options",
} as const satisfies Record<string, Kind>;

/**
 * sendmail X's options for running a component as a Unix process (README 3.7): accepted; what each
 * does in smx (usually nothing: Deno permissions take the place of uids) is in config/seed_options.ts.
 */
export const PROCESS_OPTIONS = {
  user: "string",
  group: "string",
  path: "string",
  arguments: "string",
  pass_fd_socket: "string",
  pass_id: "string",
  umask: "mode",
  min_processes: "positive",
  max_processes: "positive",
} as const satisfies Record<string, Kind>;

/** The MCP's options for a component, present in each component's section as in sendmail X. */
const SERVICE_OPTIONS = {
  log_level: "count",
  restart_dependencies: "components",
  start_action: "start_action",
  ...PROCESS_OPTIONS,
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
export function mapSection(
  keyword: string,
  more: Partial<SectionSpec> = {},
  options: Record<string, Kind> = {},
): SectionSpec {
  return section(keyword, { ...MAP_OPTIONS, ...options }, [], more);
}

/**
 * smar's map subsections as the README writes them: `file` (type hash unless given), or `name` naming a
 * declared map; aliases and local_user_map also take `flags`.
 */
const SMAR_MAP_OPTIONS = { name: "map_ref" } as const satisfies Record<string, Kind>;

/** The README's default file of each smar map subsection written without `file` or `name`. */
export const SMAR_MAP_FILES: Record<string, string> = {
  mailertable: "mt",
  access_map: "access.db",
  aliases: "aliases.db",
};

/** A component's `log { facility; ident; options; }`. */
const COMPONENT_LOG = section("log", COMPONENT_LOG_OPTIONS);

/** The options of a map declaration; which apply depends on its type (config/build.ts checks). */
export const MAP_OPTIONS = {
  type: "map_type",
  file: "string",
  maps: "map_refs",
  address: "address",
  port: "port",
  path: "string",
  mapname: "string",
  timeout: "time",
} as const satisfies Record<string, Kind>;

/** `type = inet` takes port and address (none: 0.0.0.0), `type = unix` path, umask, user, group. */
export const LISTEN_SOCKET = section(
  "listen_socket",
  {
    type: "socket_type",
    address: "address",
    port: "port",
    path: "string",
    umask: "mode",
    user: "string",
    group: "string",
  },
  [],
  {
    repeat: true,
  },
);

/** The socket of a policy milter or policy service: inet (address, port) or unix (path). */
export const FILTER_SOCKET = section(
  "socket",
  { type: "filter_socket_type", address: "address", port: "port", path: "string" },
);

/** The types a filter's socket may be. */
export const FILTER_SOCKET_TYPES = ["inet", "unix"];

/** What a failing milter means for the mail (PolicyMilterConfig["default_action"]). */
export const MILTER_ACTIONS = ["tempfail", "accept", "reject"];

export const POLICY_MILTER = section(
  "policy_milter",
  { timeout: "time", flags: "milter_flags", default_action: "milter_action" },
  [FILTER_SOCKET],
  { repeat: true },
);

export const POLICY_SERVICE = section(
  "policy_service",
  { timeout: "time", default_action: "string", stages: "policy_stages" },
  [FILTER_SOCKET],
  { repeat: true },
);

/** `protected_recipients { allow_by { sender; client_ip; } match_type { ... } flags = { ... }; }`. */
const PROTECTED_RECIPIENTS = section(
  "protected_recipients",
  { allow_by: "allow_by", match_type: "match_type", flags: "protected_flags" },
);

export const SMTPS = section(
  "smtps",
  {
    hostname: "string",
    id: "count",
    io_timeout: "time",
    max_message_size: "size_kb",
    max_threads: "positive",
    processes: "positive",
    CDB_gid: "count",
    max_recipients_per_transaction: "positive",
    max_recipients_per_session: "positive",
    max_bad_commands_per_session: "count",
    max_hops: "positive",
    flags: "flags",
    max_bad_commands_per_transaction: "count",
    max_invalid_addresses_per_session: "count",
    max_invalid_addresses_per_transaction: "count",
    max_nop_commands_between_transactions: "count",
    max_nop_commands_in_transaction: "count",
    max_transactions: "count",
    bare_newline_clients: "networks",
    stress_threshold: "count",
    stress_timeout: "time",
    stress_client_share: "count",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof SmtpsConfig]?: Kind },
  [
    LISTEN_SOCKET,
    COMPONENT_LOG,
    PROTECTED_RECIPIENTS,
    section(
      "tls",
      {
        cert_file: "string",
        key_file: "string",
        CAcert_file: "string",
        CAcert_directory: "string",
        flags: "tls_flags",
      } satisfies { [K in keyof SmtpsTlsConfig]: Kind },
    ),
    section(
      "auth",
      {
        map_file: "string",
        mechanisms: "sasl_mechs",
        trusted_mechs: "sasl_mechs",
        max_failures: "count",
        failure_delay: "time_ms",
        flags: "auth_flags",
      } satisfies { [K in keyof SmtpsAuthConfig]: Kind },
    ),
    POLICY_MILTER,
    POLICY_SERVICE,
    section(
      "authentication",
      { flags: "mailauth_flags", authserv_id: "string" } satisfies {
        [K in keyof Omit<SmtpsAuthenticationConfig, "arc_seal">]: Kind;
      },
      [section("arc_seal", { map: "map_ref" } satisfies { [K in keyof DkimSigningConfig]: Kind })],
    ),
    section("dkim_signing", { map: "map_ref" } satisfies { [K in keyof DkimSigningConfig]: Kind }),
  ],
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
    conf: "map_ref",
    max_errors_per_DSN: "positive",
    min_disk_space: "size0_kb",
    ok_disk_space: "size0_kb",
    OCC_max_entries: "positive",
    wait_for_client: "time",
    wait_for_server: "time",
    control_socket: "string",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof QmgrConfig]?: Kind },
  [
    section(
      "IBDB",
      {
        base_directory: "string",
        max_commit_delay: "time_us",
        max_open_TAs: "positive",
        size: "size",
      } satisfies { [K in keyof QmgrConfig["IBDB"]]: Kind },
    ),
    COMPONENT_LOG,
    section(
      "DEFEDB",
      { base_directory: "string", log_directory: "string" } satisfies {
        [K in keyof QmgrConfig["DEFEDB"]]: Kind;
      },
    ),
    // max_cache_entries is the README's name of max_entries (config/build.ts).
    section(
      "IQDB",
      { max_entries: "positive", max_cache_entries: "positive", hash_table_entries: "positive" } satisfies {
        [K in keyof QmgrConfig["IQDB"] | "max_cache_entries"]: Kind;
      },
    ),
    // max_errors_per_DSN here is qmgr's max_errors_per_DSN (config/build.ts).
    section(
      "DSN_handling",
      { merge_delay_max: "time0", flags: "dsn_flags", max_errors_per_DSN: "positive" } satisfies {
        [K in keyof QmgrConfig["DSN_handling"] | "max_errors_per_DSN"]: Kind;
      },
    ),
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
    section(
      "TLS_RPT",
      {
        report_interval: "time",
        organization_name: "string",
        contact_info: "string",
        report_sender: "string",
      } satisfies { [K in keyof TlsRptConfig]: Kind },
    ),
  ],
);

export const MCP = section(
  "mcp",
  { heartbeat_interval: "time", log_level: "count" } satisfies { [K in keyof McpConfig]: Kind },
);

export const SMTPC = section(
  "smtpc",
  {
    io_timeout: "time",
    LMTP_socket: "string",
    wait_for_server: "time",
    connection_cache_time_limit: "time",
    connection_reuse_time_limit: "time",
    connection_reuse_count_limit: "positive",
    authinfo: "map_ref",
    flags: "smtpc_flags",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof SmtpcConfig]?: Kind },
  [
    COMPONENT_LOG,
    // `authinfo { file = "..."; }` (a hash map of its own) or `{ name = MAP; }`, as smar's maps.
    mapSection("authinfo", {}, SMAR_MAP_OPTIONS),
    section(
      "tls",
      {
        security_level: "security_level",
        CAcert_file: "string",
        CAcert_directory: "string",
        cert_file: "string",
        key_file: "string",
      } satisfies { [K in keyof SmtpcTlsConfig]: Kind },
    ),
  ],
);

/** Where log lines go (stderr unless a directory is named, a syslog server too), and the components' defaults. */
export const LOG = section(
  "log",
  { directory: "string", syslog_server: "string", ...COMPONENT_LOG_OPTIONS } satisfies {
    [K in keyof LogConfig]: Kind;
  },
);

export const SMAR = section(
  "smar",
  {
    nameserver: "nameservers",
    DNSSEC_validating_nameserver: "nameservers",
    DNS_timeout: "time",
    mailertable: "map_ref",
    access_map: "map_ref",
    aliases: "map_ref",
    alias_flags: "alias_flags",
    local_user_map: "map_ref",
    local_user_flags: "local_user_flags",
    address_delimiter: "string",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof SmarConfig]: Kind },
  [
    COMPONENT_LOG,
    // Map declarations inside smar, as the README places them (README 3.9.1), as well as at the top level.
    mapSection("map", { name: "required", repeat: true }),
    mapSection("mailertable", {}, SMAR_MAP_OPTIONS),
    mapSection("access_map", {}, SMAR_MAP_OPTIONS),
    mapSection("aliases", {}, { ...SMAR_MAP_OPTIONS, flags: "alias_flags" }),
    mapSection("local_user_map", {}, { ...SMAR_MAP_OPTIONS, flags: "local_user_flags" }),
    section("dnsbl", { domain: "string", tag: "string" } satisfies { [K in keyof DnsblSpec]: Kind }, [], {
      repeat: true,
    }),
    section(
      "greylisting",
      {
        grey_wait: "time",
        grey_expire: "time",
        white_expire: "time",
        white_timeout: "time",
        main_DB_name: "string",
        secondary_DB_name: "string",
        expire_limit: "positive",
        netmask: "netmask",
      } satisfies { [K in keyof GreylistConfig]: Kind },
    ),
    PROTECTED_RECIPIENTS,
    section(
      "MTA_STS",
      {
        cache_file: "string",
        CAcert_file: "string",
        timeout: "time",
        refresh_interval: "time",
        HTTPS_port: "port",
        MX_port: "port",
      } satisfies { [K in keyof MtaStsConfig]: Kind },
    ),
  ],
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
    max_message_size: "size_kb",
    max_threads: "positive",
    ...SERVICE_OPTIONS,
  } satisfies { [K in keyof LdaConfig]?: Kind },
  [
    LISTEN_SOCKET,
    COMPONENT_LOG,
    mapSection("local_user_map"),
    section(
      "tls",
      { cert_file: "string", key_file: "string", flags: "tls_flags" } satisfies {
        [K in keyof LdaTlsConfig]: Kind;
      },
    ),
  ],
);

/** The metrics worker: HTTP with Prometheus text, a health check and a status page (optional). */
export const METRICS = section(
  "metrics",
  { ...SERVICE_OPTIONS } satisfies { [K in keyof MetricsConfig]?: Kind },
  [LISTEN_SOCKET, COMPONENT_LOG],
);

/**
 * sendmail X's global socket options (README 3.3): accepted without effect, the components talk over the
 * MCP's worker channels (config/seed_options.ts reports them).
 */
export const GLOBAL_SOCKETS = ["SMAR_socket", "SMTPC_socket", "SMTPS_socket"];

export const TOP = section(
  "",
  {
    hostname: "string",
    CDB_base_directory: "string",
    ...Object.fromEntries(GLOBAL_SOCKETS.map((o) => [o, "string" as const])),
  },
  [
    mapSection("map", { name: "required", repeat: true }),
    MCP,
    QMGR,
    SMTPS,
    SMTPC,
    SMAR,
    LDA,
    METRICS,
    LOG,
  ],
);
