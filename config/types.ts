// The typed configuration: what `config/build.ts` makes of an smx.conf file (or of the built-in default)
// and what every component receives in its init frame. Option names follow the sendmail X README.
// All durations are in milliseconds, all sizes in bytes; paths are as written (relative to the
// working directory the MTA was started in). The object is plain data (structured-clonable).

/** A socket a server listens on (`listen_socket { type = inet; address = ...; port = ...; }`). */
export interface ListenSocket {
  type: "inet";
  address: string;
  port: number;
}

/** A map declaration (`map NAME { type = hash; file = ...; }`) or an inline map section. */
export interface MapSpec {
  name: string;
  type: "hash";
  /** A plain text map (LHS whitespace RHS per line) or a compiled SQLite map; detected on load. */
  file: string;
}

/**
 * How the MCP runs a component: sendmail X's per-section MCP options, found in each component's section
 * (`qmgr`, `smtps`, `smtpc`, `smar`). The parser always sets them; a Config built by hand may leave
 * them out, which means the defaults (config/defaults.ts defaultService()).
 */
export interface ServiceOptions {
  /** How much the component logs, sendmail X's Log_Level: 0-2 errors, 3-5 warnings, 6-9 events, 10+ debug. */
  log_level?: number;
  /** Components the MCP restarts whenever it restarts this one (their state depends on it). */
  restart_dependencies?: string[];
  /** `wait`: started with the MTA, serving its own sockets; `pass` (sendmail X's fd passing) means the same. */
  start_action?: "wait" | "pass";
}

/** One `smtps [name] { ... }` section. */
export interface SmtpsConfig extends ServiceOptions {
  /** The section's name (`MTA` in `smtps MTA { }`); "smtps" when unnamed. */
  name: string;
  id: number;
  listen_socket: ListenSocket[];
  /** Name announced in the greeting and in Received:; defaults to the global hostname. */
  hostname: string;
  io_timeout: number;
  max_message_size: number;
  /** Concurrent sessions this server accepts; more get 421. */
  max_threads: number;
  max_recipients_per_transaction: number;
  max_recipients_per_session: number;
  max_bad_commands_per_session: number;
  max_hops: number;
  /** Lower-case flag names from `flags { ... }` (e.g. "8bitmime", "delay_checks"). */
  flags: string[];
}

export interface QmgrConfig extends ServiceOptions {
  IBDB: {
    base_directory: string;
    /** Longest a committed-but-unsynced envelope waits for the group commit (ms). */
    max_commit_delay: number;
    /** A group commit happens at once when this many transactions are waiting. */
    max_open_TAs: number;
  };
  DEFEDB: { base_directory: string };
  retry_min_delay: number;
  retry_max_delay: number;
  queue_return_timeout: number;
  queue_delay_timeout: number;
  AQ_max_entries: number;
  smtpc: {
    initial_connections: number;
    max_connections: number;
    smtp_max_rcpts_per_transaction: number;
    lmtp_max_rcpts_per_transaction: number;
  };
  smtps: {
    max_connections: number;
    max_connection_rate: number;
  };
}

export interface SmtpcConfig extends ServiceOptions {
  io_timeout: number;
  /** Ports smtpc may connect to (derived: 25 plus every port the mailertable names). */
  ports: number[];
}

export interface SmarConfig extends ServiceOptions {
  /** Nameserver IP addresses; empty means "read /etc/resolv.conf". */
  nameserver: string[];
  DNS_timeout: number;
  mailertable?: MapSpec;
  access_map?: MapSpec;
}

/**
 * The built-in local delivery agent (`lda { ... }`): LMTP in (RFC 2033), Maildir out. Absent from the
 * Config when the configuration has no lda section: the MCP then does not start it.
 */
export interface LdaConfig {
  /** Where it speaks LMTP; the mailertable routes local domains here (`2424^lmtp:[127.0.0.1]`). */
  listen_socket: ListenSocket[];
  /** Name announced in the LMTP greeting and used in Maildir file names; defaults to the global hostname. */
  hostname: string;
  /** The directory holding one directory per local user: `<mail_root>/<user>/Maildir/`. */
  mail_root: string;
  /**
   * The local users: `user [quota]` per line (quota a size, `0` or absent for none). Without it, every
   * `<mail_root>/<user>/Maildir` directory that exists is a user, without quota.
   */
  local_user_map?: MapSpec;
  /** The user mail to `postmaster` goes to when postmaster is not itself a local user; none when empty. */
  postmaster?: string;
  io_timeout: number;
  max_message_size: number;
  /** Concurrent LMTP sessions; more get 421. */
  max_threads: number;
}

export interface McpConfig {
  /** Heartbeat interval (ms); a worker silent for 3 intervals is restarted. */
  heartbeat_interval: number;
  /** How much the MCP itself logs (see ServiceOptions.log_level); absent means 9. */
  log_level?: number;
}

/** Where log lines go (`log { directory = ...; }`): stderr, or one file per component in `directory`. */
export interface LogConfig {
  /** `<directory>/<component>.log` for the MCP and each worker; stderr when absent. */
  directory?: string;
}

export interface Config {
  /** Where the configuration came from: a file path or "<built-in>". */
  source: string;
  hostname: string;
  CDB_base_directory: string;
  mcp: McpConfig;
  /** Absent (in a Config built by hand) means stderr. */
  log?: LogConfig;
  qmgr: QmgrConfig;
  smtps: SmtpsConfig[];
  smtpc: SmtpcConfig;
  smar: SmarConfig;
  lda?: LdaConfig;
}
