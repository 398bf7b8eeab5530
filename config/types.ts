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

/** One `smtps [name] { ... }` section. */
export interface SmtpsConfig {
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

export interface QmgrConfig {
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

export interface SmtpcConfig {
  io_timeout: number;
  /** Ports smtpc may connect to (derived: 25 plus every port the mailertable names). */
  ports: number[];
}

export interface SmarConfig {
  /** Nameserver IP addresses; empty means "read /etc/resolv.conf". */
  nameserver: string[];
  DNS_timeout: number;
  mailertable?: MapSpec;
  access_map?: MapSpec;
}

export interface McpConfig {
  /** Heartbeat interval (ms); a worker silent for 3 intervals is restarted. */
  heartbeat_interval: number;
}

export interface Config {
  /** Where the configuration came from: a file path or "<built-in>". */
  source: string;
  hostname: string;
  CDB_base_directory: string;
  mcp: McpConfig;
  qmgr: QmgrConfig;
  smtps: SmtpsConfig[];
  smtpc: SmtpcConfig;
  smar: SmarConfig;
}
