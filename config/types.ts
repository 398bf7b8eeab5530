// The typed configuration: what `config/build.ts` makes of an smx.conf file (or of the built-in default)
// and what every component receives in its init frame. Option names follow the sendmail X README.
// All durations are in milliseconds, all sizes in bytes; paths read from a configuration file are absolute
// (relative ones are taken from the file's directory, config/paths.ts); the built-in configuration's stay
// relative to the working directory. The object is plain data (structured-clonable).

/**
 * A socket a server listens on: `listen_socket { type = inet; [address = ...;] port = ...; }` (no address:
 * every local IPv4 address, 0.0.0.0) or `listen_socket { type = unix; path = ...; [umask; user; group;] }`.
 */
export type ListenSocket = InetListenSocket | UnixListenSocket;

export interface InetListenSocket {
  type: "inet";
  address: string;
  port: number;
}

export interface UnixListenSocket {
  type: "unix";
  /** The socket's path (relative to the working directory). */
  path: string;
  /** The socket file's mode is 0777 & ~umask (default 0o077: only the owner may connect). */
  umask: number;
  /** sendmail X's socket owner and group: accepted, no effect (smx does not change file owners). */
  user?: string;
  group?: string;
}

/** A map declaration (`map NAME { type = hash; file = ...; }`) or an inline map section. */
export interface MapSpec {
  name: string;
  /**
   * `hash`: a plain text map (LHS whitespace RHS per line) or a SQLite map built by createmap, detected on
   * load; `sequence`: its `maps` tried in order; `socket`: a sendmail socketmap server; `passwd`: local
   * accounts from a passwd-format file.
   */
  type: "hash" | "sequence" | "socket" | "passwd";
  /** hash: the map file; passwd: the passwd file (default /etc/passwd); "" for sequence and socket. */
  file: string;
  /** sequence: the maps tried in order (the first that knows a key answers). */
  maps?: MapSpec[];
  /** socket over TCP: the server's address and port. */
  address?: string;
  port?: number;
  /** socket over a unix domain socket: its path. */
  path?: string;
  /** socket: the map name sent with each request (default: the map's own name). */
  mapname?: string;
  /** socket: how long one lookup may take (ms, default 5 s). */
  timeout?: number;
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
  /**
   * sendmail X's start actions; in smx every component is started with the MTA and opens its own sockets,
   * so `wait`, `pass`, `accept` and `nostartaccept` all mean that (see config/seed_options.ts).
   */
  start_action?: "wait" | "pass" | "accept" | "nostartaccept";
  /** The component's `log { facility; ident; options; }` section. */
  log?: ComponentLogConfig;
  /**
   * sendmail X's options for running the component as a Unix process (user, group, path, arguments,
   * pass_fd_socket, pass_id, umask, min_processes, max_processes): accepted and kept as written; each is
   * mapped to what smx does instead or reported once at start (config/seed_options.ts seedNotes()).
   */
  user?: string;
  group?: string;
  path?: string;
  arguments?: string;
  pass_fd_socket?: string;
  pass_id?: string;
  umask?: number;
  min_processes?: number;
  max_processes?: number;
}

/** A component's `log { }` section (sendmail X README 3.4): openlog(3)'s facility, ident and options. */
export interface ComponentLogConfig {
  /** The syslog facility (daemon, mail, auth, local0 ...), lower-case; for syslog output. */
  facility?: string;
  /** The name the component's log lines carry (default: the component's name, e.g. `smtps`). */
  ident?: string;
  /** openlog(3) options without LOG_ (pid, ndelay, cons, odelay, nowait, perror), lower-case. */
  options?: string[];
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
  /** sendmail X's processes: how many smtps workers serve this section (unset: config/processes.ts). */
  processes?: number;
  /** sendmail X's CDB_gid (the group of the CDB files): accepted, no effect. */
  CDB_gid?: number;
  /**
   * `protected_recipients { allow_by { sender; client_ip; } match_type { ... } }` as the README places it
   * (in smtps); config/build.ts also hands it to smar (SmarConfig.protected_recipients), which applies it.
   */
  protected_recipients?: ProtectedRecipientsConfig;
  max_recipients_per_transaction: number;
  max_recipients_per_session: number;
  max_bad_commands_per_session: number;
  max_hops: number;
  /** Lower-case flag names from `flags { ... }` (e.g. "8bitmime", "delay_checks"). */
  flags: string[];
  /** Session-ending limits (421); 0 means no limit. "nop" commands are NOOP, RSET, VRFY and HELP. */
  max_bad_commands_per_transaction: number;
  max_invalid_addresses_per_session: number;
  max_invalid_addresses_per_transaction: number;
  max_nop_commands_between_transactions: number;
  max_nop_commands_in_transaction: number;
  /** Mail transactions (MAIL commands accepted) per session; 0 means no limit. */
  max_transactions: number;
  /** Clients (IP addresses or CIDR networks) allowed to end lines with a bare LF or send bare CRs. */
  bare_newline_clients: string[];
  /** Stress mode (server.ts) starts when this percentage of max_threads is in use; 0 turns it off. */
  stress_threshold: number;
  /** In stress mode, the longest wait for a command (the greeting's first included). */
  stress_timeout: number;
  /** In stress mode, the percentage of max_threads one client address may hold (at least one session). */
  stress_client_share: number;
  /** STARTTLS (`tls { ... }`): offered only when present. */
  tls?: SmtpsTlsConfig;
  /** SMTP AUTH (`auth { ... }`): offered only when present. */
  auth?: SmtpsAuthConfig;
  /** Mail authentication of what arrives (`authentication { ... }`): SPF, DKIM, ARC, DMARC. */
  authentication?: SmtpsAuthenticationConfig;
  /** DKIM signing of what permitted clients send (`dkim_signing { map = ...; }`). */
  dkim_signing?: DkimSigningConfig;
  /** Milters (`policy_milter { ... }`, sendmail milter protocol 6), asked in this order. */
  policy_milter?: PolicyMilterConfig[];
  /** Postfix-style policy services (`policy_service { ... }`), asked in this order. */
  policy_service?: PolicyServiceConfig[];
}

/** Where a filter listens: TCP (`type = inet; address; port;`) or a unix domain socket (`type = unix; path;`). */
export type FilterSocket =
  | { type: "inet"; address: string; port: number }
  | { type: "unix"; path: string };

/** One `policy_milter { ... }` of an smtps section (sendmail X README 3.10 item 17). */
export interface PolicyMilterConfig {
  socket: FilterSocket;
  /** How long one reply of the milter may take (ms); also the connect timeout. */
  timeout: number;
  /**
   * Lower-case: "abort" (a milter that cannot be reached ends the session with 421), or
   * "accept_but_reconnect" (go on without it, and try it again with the next session).
   */
  flags: string[];
  /** What a milter that fails during a session means for the mail (Postfix's milter_default_action). */
  default_action: "tempfail" | "accept" | "reject";
}

/** One `policy_service { ... }` of an smtps section (Postfix SMTPD_POLICY_README). */
export interface PolicyServiceConfig {
  socket: FilterSocket;
  /** How long one answer may take (ms). */
  timeout: number;
  /** The action taken when the service cannot answer (an access-style action like `DUNNO` or `451 ...`). */
  default_action: string;
  /** The SMTP stages it is asked at, lower-case: "rcpt", "data", "end_of_data". */
  stages: string[];
}

/** An smtps section's `authentication { ... }`: which checks run, the name results are given under. */
export interface SmtpsAuthenticationConfig {
  /** Lower-case: "spf", "dkim", "dmarc", "arc". */
  flags: string[];
  /** The authserv-id of our Authentication-Results: header (RFC 8601); defaults to the section's hostname. */
  authserv_id: string;
  /** ARC sealing (RFC 8617) of what was verified: `arc_seal { map = ...; }`, keys as for dkim_signing. */
  arc_seal?: DkimSigningConfig;
}

/** A key map: lines `DOMAIN SELECTOR KEY_FILE` (a private key in PEM: RSA of 2048 bits or more, Ed25519). */
export interface DkimSigningConfig {
  map: MapSpec;
}

/** An smtps section's `tls { ... }`: the server certificate and the CAs that verify client certificates. */
export interface SmtpsTlsConfig {
  cert_file: string;
  key_file: string;
  /** CA certificates (PEM) that verify client certificates; without them none is verified. */
  CAcert_file?: string;
  /** A directory of PEM files with more CA certificates. */
  CAcert_directory?: string;
  /**
   * Lower-case: "allow_relaying_if_verified", "check_access_map_for_relaying", "implicit" (RFC 8314
   * implicit TLS: the handshake comes before the greeting, as on port 465; STARTTLS is not offered).
   */
  flags: string[];
}

/** An smtps section's `auth { ... }`: SMTP AUTH against a credentials map. */
export interface SmtpsAuthConfig {
  /**
   * The credentials map (user and secrets per entry) built by `deno task createmap auth`; "" when the
   * section names none (the README's examples leave it to Cyrus SASL): then AUTH is not offered.
   */
  map_file: string;
  /**
   * Mechanisms that may be offered, lower-case: "scram-sha-256", "scram-sha-1", "cram-md5", "plain",
   * "login" ("digest-md5" is accepted and never offered); the flags and the map narrow them.
   */
  mechanisms: string[];
  /**
   * Mechanisms whose success lets the client relay, lower-case; the README's names are accepted:
   * plain, login, cram-md5, digest-md5, scram-sha-1, scram-sha-256.
   */
  trusted_mechs: string[];
  /** Failed attempts that end the session with 421 (0: no limit). */
  max_failures: number;
  /** The wait before answering a failed attempt, multiplied by the failures so far (ms). */
  failure_delay: number;
  /**
   * Lower-case: "allow_plaintext" (offer PLAIN and LOGIN without TLS), "received_user" (the user in
   * Received:), and Cyrus SASL's "noplaintext", "noactive", "nodictionary", "forward_secrecy",
   * "noanonymous", "pass_credentials", "mutual_auth" (each leaves only mechanisms with that property).
   */
  flags: string[];
}

/** DSN_handling.flags: return only the headers of the original; MIME (RFC 3464) rather than plain text. */
export interface DsnFlags {
  header_only: boolean;
  MIME_Format: boolean;
}

export interface QmgrConfig extends ServiceOptions {
  /** TLS reporting (RFC 8460), opt-in: on when the section is present. */
  TLS_RPT?: TlsRptConfig;
  IBDB: {
    base_directory: string;
    /** Longest a committed-but-unsynced envelope waits for the group commit (ms). */
    max_commit_delay: number;
    /** A group commit happens at once when this many transactions are waiting. */
    max_open_TAs: number;
    /** The write-ahead log's size at which SQLite checkpoints it into the queue file (bytes). */
    size: number;
  };
  /** log_directory: sendmail X's separate log directory of the DEFEDB, accepted (SQLite keeps its WAL beside). */
  DEFEDB: { base_directory: string; log_directory?: string };
  /**
   * The incoming queue: envelopes from smtps whose commit is under way; more get a temporary failure.
   * max_cache_entries is the README's name for max_entries (the two are the same number); hash_table_entries
   * is accepted (a JavaScript Map sizes itself).
   */
  IQDB: { max_entries: number; hash_table_entries?: number };
  /** The qmgr_conf map (oci:, ocm:, octo:, icr:, icm: per IP address or net); none: the options alone. */
  conf?: MapSpec;
  DSN_handling: {
    /** How long failed recipients of one message wait to be merged into one DSN (ms; 0: at once). */
    merge_delay_max: number;
    flags: DsnFlags;
  };
  /**
   * Recipients one DSN reports at most; more make more DSNs. Written in qmgr or, as the README lists it,
   * in `DSN_handling { max_errors_per_DSN }`: the same number.
   */
  max_errors_per_DSN: number;
  /** Below this much free space in the queue's file system smtps refuses MAIL (bytes; 0: no guard). */
  min_disk_space: number;
  /** Free space at which mail is taken again after min_disk_space was crossed (bytes). */
  ok_disk_space: number;
  /** Destinations the outgoing connection cache remembers (slow-start window, down hosts). */
  OCC_max_entries: number;
  /** How long a delivery waits for smtpc to be connected before it is deferred (ms). */
  wait_for_client: number;
  /** How long a route lookup waits for smar to be connected before it is deferred (ms). */
  wait_for_server: number;
  /** The control socket for qmgrctl; a relative path is taken inside IBDB.base_directory. */
  control_socket: string;
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

/** smtpc's client TLS (`smtpc { tls { ... } }`). */
export interface SmtpcTlsConfig {
  /**
   * none: never STARTTLS; may: STARTTLS when offered, plain text when it fails (opportunistic); encrypt:
   * TLS required; verify: TLS with a certificate that verifies (CA and host name) required.
   */
  security_level: "none" | "may" | "encrypt" | "verify";
  /** Trust anchors (PEM) in addition to the runtime's default roots. */
  CAcert_file?: string;
  /** A directory of PEM files with trust anchors. */
  CAcert_directory?: string;
  /** A client certificate and its key (PEM), presented when a server asks. */
  cert_file?: string;
  key_file?: string;
}

export interface SmtpcConfig extends ServiceOptions {
  io_timeout: number;
  /** Ports smtpc may connect to (derived: 25 plus every port the mailertable names). */
  ports: number[];
  /** The unix socket of the LMTP server for `lmtp:` mailertable entries without a host (`lmtpsock`). */
  LMTP_socket?: string;
  /** sendmail X's wait for QMGR (ms): accepted; smtpc's channel to qmgr exists before it starts. */
  wait_for_server?: number;
  /** How long an idle connection is kept for the next transaction to the same server (ms). */
  connection_cache_time_limit: number;
  /** A connection opened longer ago than this (ms) is not reused. */
  connection_reuse_time_limit: number;
  /** A connection that carried this many transactions is not reused (1: no reuse). */
  connection_reuse_count_limit: number;
  /**
   * Lower-case flag names: "ipv6" lets smtpc reach IPv6 destinations (AAAA records, `[IPv6:...]` domain
   * literals) at the price of an unrestricted net permission (components/smtpc/worker.ts says why).
   */
  flags: string[];
  tls: SmtpcTlsConfig;
  /**
   * The authinfo map (sendmail 8's authinfo, Postfix's smtp_sasl_password_maps): next hop or domain ->
   * `USER SECRET_FILE` or `USER:SECRET`; smtpc authenticates to the hops it names, over TLS only.
   */
  authinfo?: MapSpec;
}

export interface SmarConfig extends ServiceOptions {
  /** Nameserver IP addresses; empty means "read /etc/resolv.conf". */
  nameserver: string[];
  /**
   * Nameservers (of `nameserver`) that validate DNSSEC on a trusted path (a resolver on the loopback):
   * their AD bit is believed, and DANE (TLSA records) is used; empty: no DANE.
   */
  DNSSEC_validating_nameserver: string[];
  DNS_timeout: number;
  mailertable?: MapSpec;
  access_map?: MapSpec;
  /** The aliases map (`alias: addr, addr, ...`), looked up as alias_flags say. */
  aliases?: MapSpec;
  /**
   * localpart, local_domains, all_domains, implicitly_match_detail, replace_macros, preserve_domain: from
   * `aliases { flags = { ... }; }` (the README's form) or the smx option `alias_flags`.
   */
  alias_flags: string[];
  /** Local users: a recipient at a local domain must be one (or an alias), else 550 5.1.1. */
  local_user_map?: MapSpec;
  /** `local_user_map { flags = { implicitly_match_detail }; }`: user+detail finds user in the map. */
  local_user_flags?: string[];
  /** Separates user and detail in a local part (`user+detail`); "" for none. */
  address_delimiter: string;
  /** DNS blacklists queried at connect, answers looked up in the access map as `tag:A.B.C.D`. */
  dnsbl?: DnsblSpec[];
  /** Greylisting (used by smtps servers with the greylisting flag). */
  greylisting?: GreylistConfig;
  /** How `protectedrcpt:` entries of the access map are matched and what may lift them. */
  protected_recipients?: ProtectedRecipientsConfig;
  /** MTA-STS (RFC 8461) for mail routed by MX records: on when the section is present. */
  MTA_STS?: MtaStsConfig;
}

/**
 * `TLS_RPT { ... }` in qmgr: records the TLS results of deliveries under an MTA-STS policy per policy
 * domain and sends a daily aggregate report (RFC 8460) to the domain's `_smtp._tls` rua.
 */
export interface TlsRptConfig {
  /** How often reports are sent (each covers the time since the last). */
  report_interval: number;
  /** The report's organization-name (default: the hostname). */
  organization_name?: string;
  /** The report's contact-info (default: postmaster@hostname). */
  contact_info?: string;
  /** The envelope sender and From: of mailed reports (default: postmaster@hostname). */
  report_sender?: string;
}

/**
 * `MTA_STS { ... }` in smar: the sending side of RFC 8461. smar looks up `_mta-sts.DOMAIN`, fetches the
 * policy from `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` and keeps it in a SQLite file.
 */
export interface MtaStsConfig {
  /** The SQLite file holding the fetched policies (survives restarts). */
  cache_file: string;
  /** More trust anchors (PEM) for policy hosts, beside the built-in roots. */
  CAcert_file?: string;
  /** Most time one policy fetch (connect, TLS, HTTP) may take. */
  timeout: number;
  /** How often cached policies close to their expiry are fetched again. */
  refresh_interval: number;
  /** Testing only: the port policy hosts are fetched from instead of 443. */
  HTTPS_port: number;
  /** Testing only: the SMTP port of hosts found by MX records instead of 25. */
  MX_port: number;
}

/** One `dnsbl { domain = ...; tag = ...; }` section of smar. */
export interface DnsblSpec {
  domain: string;
  /** The access map tag its answers are looked up with (`tag:127.0.0.2`); defaults to the domain. */
  tag: string;
}

/** `greylisting { ... }` in smar: one indexed SQLite database replaces sendmail X's two DB files. */
export interface GreylistConfig {
  /** A client's retry is accepted only this long after its first attempt. */
  grey_wait: number;
  /** A grey entry not confirmed by a retry within this time is forgotten. */
  grey_expire: number;
  /** A white entry unused for this long is forgotten. */
  white_expire: number;
  /** A white entry's last use is written back at most once per white_timeout (bounds writes). */
  white_timeout: number;
  /** The SQLite database file. */
  main_DB_name: string;
  /** Accepted for sendmail X compatibility; the one indexed database holds white entries too. */
  secondary_DB_name?: string;
  /** Most expired entries removed in one go. */
  expire_limit: number;
  /** The prefix length of client IPv4 addresses compared (default 32: the whole address); IPv6 uses /64. */
  netmask: number;
}

/**
 * `protected_recipients { allow_by { sender; client_ip; } match_type { ... } }` (in smtps as the README
 * places it, or in smar).
 */
export interface ProtectedRecipientsConfig {
  /** Which restrictions of a `protectedrcpt:` entry may lift it: sender (from:, list:), client_ip (cltaddr:). */
  allow_by: string[];
  /** generic_lookup (the full address lookup order), implicitly_match_detail (user+detail finds user). */
  match_type: string[];
}

/**
 * The built-in local delivery agent (`lda { ... }`): LMTP in (RFC 2033), Maildir out. Absent from the
 * Config when the configuration has no lda section: the MCP then does not start it.
 */
export interface LdaConfig extends ServiceOptions {
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
  /**
   * `tls { cert_file; key_file; flags = { implicit }; }`: LMTP over TLS from the first byte on every listen
   * socket (smtpc's `lmtps:` routes); only implicit TLS, no STARTTLS.
   */
  tls?: LdaTlsConfig;
}

/** The lda's TLS (implicit only: the flags must hold "implicit"). */
export interface LdaTlsConfig {
  cert_file: string;
  key_file: string;
  flags: string[];
}

/**
 * The metrics worker (`metrics { listen_socket { ... } }`): Prometheus text on /metrics, /healthz, a
 * status page on / and /api/queue, over HTTP on its listen sockets. Absent from the Config when the
 * configuration has no metrics section: the MCP then does not start it.
 */
export interface MetricsConfig extends ServiceOptions {
  /** Where it serves HTTP (default 127.0.0.1:9425). */
  listen_socket: ListenSocket[];
}

export interface McpConfig {
  /** Heartbeat interval (ms); a worker silent for 3 intervals is restarted. */
  heartbeat_interval: number;
  /** How much the MCP itself logs (see ServiceOptions.log_level); absent means 9. */
  log_level?: number;
}

/**
 * The top-level `log { }`: where log lines go (stderr, or one file per component in `directory`), and the
 * facility/ident/options every component's own `log { }` section may override.
 */
export interface LogConfig extends ComponentLogConfig {
  /** `<directory>/<component>.log` for the MCP and each worker; stderr when absent. */
  directory?: string;
  /** The syslog facility of every line sent to a syslog server (default `mail`). */
  facility?: string;
  /** A syslog server every component also sends its lines to: `udp:HOST[:PORT]` or `tcp:HOST[:PORT]`. */
  syslog_server?: string;
}

/**
 * Something the configuration says that smx reads differently or ignores (config/seed_options.ts): a
 * "warning" (no effect here, or an implausible plain number) is logged once at start; a "note" says what
 * smx does instead of a sendmail X option. `-V` prints both.
 */
export interface ConfigWarning {
  level: "warning" | "note";
  /** `file:line:col: text`. */
  message: string;
}

export interface Config {
  /** Where the configuration came from: a file path or "<built-in>". */
  source: string;
  /**
   * The directory the configuration file's relative paths were taken from (config/paths.ts); absent for
   * the built-in configuration and a Config parsed from text, whose paths are relative to the working
   * directory.
   */
  directory?: string;
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
  metrics?: MetricsConfig;
  /** What the MCP reports once at start and `-V` prints (sendmail X options without effect, odd units). */
  warnings?: ConfigWarning[];
}
