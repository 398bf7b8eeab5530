// The built-in defaults for every option, as a typed Config. The parser (config/build.ts) starts from
// these and overrides what a file sets; the built-in default configuration (config/default_conf.ts) is
// parsed on top of them too. Values follow sendmail X where its README gives one, else Postfix.

import type {
  Config,
  GreylistConfig,
  LdaConfig,
  MetricsConfig,
  MtaStsConfig,
  ServiceOptions,
  SmtpsAuthConfig,
  SmtpsConfig,
} from "./types.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const MB = 1024 * 1024;

/** smtpc's LMTP socket for `lmtp:` routes without a host (README 3.11), relative to the working directory. */
export const DEFAULT_LMTP_SOCKET = "lmtpsock";

/** The MCP's defaults for every component: log events (9, as sendmail), no dependencies, start at once. */
export function defaultService(): Required<
  Pick<ServiceOptions, "log_level" | "restart_dependencies" | "start_action">
> {
  return { log_level: 9, restart_dependencies: [], start_action: "wait" };
}

/** Defaults of one smtps section (the name and listen sockets come from the section itself). */
export function defaultSmtps(name = "smtps", hostname = "localhost"): SmtpsConfig {
  return {
    name,
    id: 0,
    listen_socket: [{ type: "inet", address: "127.0.0.1", port: 2525 }],
    hostname,
    io_timeout: 5 * MINUTE,
    max_message_size: 10 * 1024 * 1024,
    max_threads: 256,
    max_recipients_per_transaction: 100,
    max_recipients_per_session: 1000,
    max_bad_commands_per_session: 20,
    max_hops: 50,
    flags: ["8bitmime"],
    max_bad_commands_per_transaction: 10,
    max_invalid_addresses_per_session: 50,
    max_invalid_addresses_per_transaction: 20,
    max_nop_commands_between_transactions: 50,
    max_nop_commands_in_transaction: 20,
    max_transactions: 0,
    bare_newline_clients: [],
    stress_threshold: 80,
    stress_timeout: 10 * SECOND,
    stress_client_share: 10,
    ...defaultService(),
  };
}

/** Defaults of the lda section: LMTP on 127.0.0.1:2424, mailboxes under ./var/mail (no users map). */
export function defaultLda(hostname = "localhost"): LdaConfig {
  return {
    listen_socket: [{ type: "inet", address: "127.0.0.1", port: 2424 }],
    hostname,
    mail_root: "var/mail",
    io_timeout: 5 * MINUTE,
    max_message_size: 10 * 1024 * 1024,
    max_threads: 64,
    ...defaultService(),
  };
}

/** The metrics worker's port: next to the exporters' range (postfix_exporter has 9154). */
export const METRICS_PORT = 9425;

/** Defaults of the metrics section: HTTP on 127.0.0.1:9425. */
export function defaultMetrics(): MetricsConfig {
  return { listen_socket: [{ type: "inet", address: "127.0.0.1", port: METRICS_PORT }], ...defaultService() };
}

/** Defaults of smar's greylisting section (the database file has none: it must be named). */
export function defaultGreylisting(): Omit<GreylistConfig, "main_DB_name"> {
  return {
    grey_wait: 5 * MINUTE,
    grey_expire: DAY,
    white_expire: 36 * DAY,
    white_timeout: HOUR,
    expire_limit: 100,
    netmask: 32,
  };
}

/** Defaults of smar's MTA_STS section. */
export function defaultMtaSts(): MtaStsConfig {
  return {
    cache_file: "var/mta_sts.db",
    timeout: 10 * SECOND,
    refresh_interval: HOUR,
    HTTPS_port: 443,
    MX_port: 25,
  };
}

/** How long one socket map lookup may take when the map declaration does not say. */
export const DEFAULT_SOCKET_MAP_TIMEOUT = 5 * SECOND;

/** Defaults of an smtps `auth { }` section (its map_file comes from the section). */
export function defaultSmtpsAuth(map_file: string): SmtpsAuthConfig {
  return {
    map_file,
    // Offered only as far as the flags and the credentials map allow (components/smtps/sasl_mechanisms.ts).
    mechanisms: ["scram-sha-256", "scram-sha-1", "cram-md5", "plain", "login"],
    trusted_mechs: ["scram-sha-256", "scram-sha-1", "cram-md5", "plain", "login"],
    max_failures: 3,
    failure_delay: SECOND,
    flags: [],
  };
}

/** A complete configuration holding only defaults (one smtps on 127.0.0.1:2525, queue under ./var). */
export function defaultConfig(): Config {
  return {
    source: "<built-in>",
    hostname: "localhost",
    CDB_base_directory: "var/cdb",
    mcp: { heartbeat_interval: 1000, log_level: 9 },
    log: {},
    qmgr: {
      IBDB: { base_directory: "var/ibdb", max_commit_delay: 10, max_open_TAs: 100, size: 4 * MB },
      DEFEDB: { base_directory: "var/defedb" },
      IQDB: { max_entries: 1024 },
      DSN_handling: { merge_delay_max: 5 * MINUTE, flags: { header_only: false, MIME_Format: true } },
      max_errors_per_DSN: 100,
      min_disk_space: 64 * MB,
      ok_disk_space: 128 * MB,
      OCC_max_entries: 1024,
      wait_for_client: 10 * SECOND,
      wait_for_server: 10 * SECOND,
      control_socket: "qmgr.sock",
      retry_min_delay: 5 * MINUTE,
      retry_max_delay: 4 * HOUR,
      queue_return_timeout: 5 * DAY,
      queue_delay_timeout: 4 * HOUR,
      AQ_max_entries: 1000,
      smtpc: {
        initial_connections: 10,
        max_connections: 100,
        smtp_max_rcpts_per_transaction: 100,
        lmtp_max_rcpts_per_transaction: 100,
      },
      smtps: { max_connections: 100, max_connection_rate: 0 },
      ...defaultService(),
    },
    smtps: [defaultSmtps()],
    smtpc: {
      io_timeout: 5 * MINUTE,
      ports: [25],
      LMTP_socket: DEFAULT_LMTP_SOCKET,
      connection_cache_time_limit: 2 * SECOND,
      connection_reuse_time_limit: 5 * MINUTE,
      connection_reuse_count_limit: 100,
      flags: [],
      tls: { security_level: "may" },
      ...defaultService(),
    },
    smar: {
      nameserver: [],
      DNSSEC_validating_nameserver: [],
      DNS_timeout: 5 * SECOND,
      alias_flags: [],
      address_delimiter: "+",
      ...defaultService(),
    },
  };
}
