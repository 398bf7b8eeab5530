// The one table of option descriptions: what each smx.conf option does and the sendmail X README
// section it comes from. docs/options.md is generated from this table, config/schema.ts and
// config/defaults.ts (`deno task docs`); tests/docs_test.ts fails when an option the parser accepts has
// no entry here, when an entry describes no option, or when docs/options.md is stale.
//
// Adding an option: add its line here (`"section.sub.option": [README section, text]`, the README section
// "" for smx's own options), then run `deno task docs`. An option is found under, in this order: its
// exact path (`smtps.tls.cert_file`; top-level options without a section); `*.<section>.<option>` for a
// subsection several sections share (`*.log.facility`, `*.listen_socket.port`); `map.<option>` for the
// options of every map section (`map NAME { }`, smar's `mailertable { }` ...); `*.<option>` for the MCP's
// options present in every component section. A third element replaces the default shown when the
// built-in Config cannot show it (a default computed at start, or one that depends on another option).
// Touches nothing.

/** `[sendmail X README section ("" for smx's own), what the option does, default shown (optional)]`. */
export type OptionDoc = readonly [readme: string, text: string, shownDefault?: string];

/** The sendmail X README's sections the table names, by number. */
export const README_SECTIONS: Record<string, string> = {
  "3.3": "Common Global Configuration",
  "3.4": "Common Configuration Options",
  "3.5": "Pathnames",
  "3.7": "Configuration for MCP",
  "3.8": "Configuration for QMGR",
  "3.8.1": "Configuration Map for QMGR",
  "3.9": "Configuration for SMAR",
  "3.9.1": "Declaring Maps for SMAR",
  "3.9.2": "Configuration Options for SMAR",
  "3.9.3.3": "Aliases",
  "3.9.4": "Greylisting",
  "3.10": "Configuration for SMTP Server",
  "3.10.1": "Multiple SMTP Servers",
  "3.10.2": "Protecting Recipients",
  "3.11": "Configuration for SMTP Client",
  "4.3.2": "Specifying Valid Local Addresses",
};

const NO_EFFECT = "accepted, no effect in smx";

export const OPTION_DOCS: Record<string, OptionDoc> = {
  // Top level (README 3.3).
  hostname: [
    "3.3",
    "the MTA's name: greeting, EHLO, `Received:`, DSNs, Maildir file names; each section's default",
  ],
  CDB_base_directory: [
    "3.3",
    "directory of the queue files (content and self-describing envelope), in 16 subdirectories 0-F (mode 0700)",
  ],
  SMAR_socket: ["3.3", `${NO_EFFECT}: the components talk over the MCP's worker channels`],
  SMTPC_socket: ["3.3", `${NO_EFFECT}: the components talk over the MCP's worker channels`],
  SMTPS_socket: ["3.3", `${NO_EFFECT}: the components talk over the MCP's worker channels`],

  // Map declarations `map NAME { }` (top level and smar, README 3.9.1), and every map section.
  "map.type": [
    "3.9.1",
    "`hash` (a text or SQLite map file), `sequence` (maps asked in order), `socket` (sendmail socket map), `passwd`",
    "required",
  ],
  "map.file": [
    "3.9.1",
    "the map file of a `hash` (text, or SQLite built by `deno task createmap`) or `passwd` map (`/etc/passwd`)",
  ],
  "map.maps": ["3.9.1", "the maps a `sequence` map asks, in order; the first that knows the key answers"],
  "map.address": ["3.9.1", "a `socket` map's server address (with `port`)"],
  "map.port": ["3.9.1", "a `socket` map's server port"],
  "map.path": ["3.9.1", "a `socket` map's unix socket path (instead of address and port)"],
  "map.mapname": ["3.9.1", "the map name sent to a `socket` map server", "the map's own name"],
  "map.timeout": [
    "",
    "longest one `socket` map lookup may take; a slower answer is a temporary failure",
    "`5s`",
  ],

  // The MCP (README 3.7).
  "mcp.heartbeat_interval": [
    "",
    "how often each worker reports alive; one silent for 3 intervals is restarted",
  ],
  "mcp.log_level": [
    "3.4",
    "how much the MCP itself logs (0-2 errors, 3-5 also warnings, 6-9 also events, 10+ debugging)",
  ],

  // The MCP's options in every component section (README 3.4, 3.7).
  "*.log_level": [
    "3.4",
    "how much the component logs: 0-2 errors, 3-5 also warnings, 6-9 also events, 10 and more also debugging",
  ],
  "*.restart_dependencies": [
    "3.7",
    "components restarted (stopped gracefully, started as a new generation) whenever this one is",
  ],
  "*.start_action": [
    "3.7",
    "accepted; all four values mean `wait` in smx: the MCP starts every component with the MTA",
  ],
  "*.user": [
    "3.7",
    `${NO_EFFECT}: every worker runs as the MTA's user, Deno permissions separate them (a warning at start)`,
  ],
  "*.group": ["3.7", `${NO_EFFECT}: every worker runs with the MTA's group (a warning at start)`],
  "*.path": ["3.7", `${NO_EFFECT}: components are Deno workers, not programs (a warning at start)`],
  "*.arguments": ["3.7", `${NO_EFFECT}: workers take no command line (a warning at start)`],
  "*.pass_fd_socket": ["3.7", `${NO_EFFECT}: each component opens its own sockets (a warning at start)`],
  "*.pass_id": ["3.7", `${NO_EFFECT}: the MCP numbers worker generations itself (a warning at start)`],
  "*.umask": ["3.7", `${NO_EFFECT}: smx creates its files with its own modes (a warning at start)`],
  "*.min_processes": ["3.7", `${NO_EFFECT}: one worker of this component (a warning at start)`],
  "*.max_processes": ["3.7", `${NO_EFFECT}: one worker of this component (a warning at start)`],

  // A component's `log { }` (README 3.4).
  "*.log.facility": [
    "3.4",
    "the syslog facility (`<PRI>`) of this component's lines (with `log { syslog_server }`)",
    "the `log` section's",
  ],
  "*.log.ident": ["3.4", "the name the component's log lines carry", "the component's name"],
  "*.log.options": [
    "3.4",
    "openlog(3) options: `pid` (the process id in the tag), `perror` (a log file's lines on stderr too); " +
    "`ndelay`, `odelay`, `nowait`, `cons` change nothing",
    "the `log` section's; none: as `pid`",
  ],

  // The top-level `log { }` (smx's): where lines go.
  "log.directory": [
    "",
    "append each component's lines to `<directory>/<component>.log` (`mcp.log`, `qmgr.log` ...)",
    "none: stderr",
  ],
  "log.syslog_server": [
    "",
    "also send every line to a syslog server: `udp:HOST[:PORT]` or `tcp:HOST[:PORT]`",
  ],
  "log.facility": ["3.4", "the syslog facility of every component without its own", "`mail`"],
  "log.ident": ["3.4", "the name of the MCP's lines", "`mcp`"],
  "log.options": [
    "3.4",
    "openlog(3) options of every component without its own (see the components' `log`)",
    "none: as `pid`",
  ],

  // qmgr (README 3.8).
  "qmgr.retry_min_delay": [
    "3.8",
    "first retry of a deferred recipient; each retry doubles the wait up to `retry_max_delay`",
  ],
  "qmgr.retry_max_delay": ["3.8", "longest wait between two retries of a deferred recipient"],
  "qmgr.queue_return_timeout": [
    "3.8",
    "a recipient still deferred this long fails (`Status: 4.4.7`) and is returned to the sender",
  ],
  "qmgr.queue_delay_timeout": [
    "3.8",
    "a recipient still undelivered this long gets one delay notice (unless NOTIFY excludes DELAY)",
  ],
  "qmgr.AQ_max_entries": [
    "3.8",
    "most recipients in the active queue (being routed or delivered); the rest wait on disk",
  ],
  "qmgr.conf": ["3.8.1", "the qmgr_conf map: per-IP `oci:`, `ocm:`, `octo:`, `icr:`, `icm:` limits"],
  "qmgr.max_errors_per_DSN": ["3.8", "most recipients one DSN reports"],
  "qmgr.min_disk_space": [
    "3.8",
    "below this free space on the queue's file system MAIL gets `452 4.3.1` (0: the guard is off)",
  ],
  "qmgr.ok_disk_space": [
    "3.8",
    "free space above which MAIL is taken again after `min_disk_space` was reached",
  ],
  "qmgr.OCC_max_entries": [
    "3.8",
    "destinations (address:port) the outgoing connection cache tracks; least recently used out",
  ],
  "qmgr.wait_for_client": [
    "3.8",
    "at start, how long qmgr waits for smtpc before a delivery counts as failed",
  ],
  "qmgr.wait_for_server": [
    "3.8",
    "at start, how long qmgr waits for smar before a route lookup counts as failed",
  ],
  "qmgr.control_socket": [
    "3.8",
    "qmgrctl's unix socket (mode 0600); a relative path is inside `IBDB.base_directory`",
  ],
  "qmgr.IBDB.base_directory": [
    "3.8",
    "directory of the queue database `queue.sqlite` (the IBDB and DEFEDB in one SQLite file)",
  ],
  "qmgr.IBDB.max_commit_delay": [
    "3.8",
    "upper bound on how long an envelope waits for its group commit (leader/follower: usually none)",
  ],
  "qmgr.IBDB.max_open_TAs": ["3.8", "envelopes waiting for a commit that make it start at once"],
  "qmgr.IBDB.size": ["3.8", "the write-ahead log size at which SQLite checkpoints it"],
  "qmgr.DEFEDB.base_directory": [
    "3.8",
    "created and left empty: the deferred queue lives in the IBDB's `queue.sqlite`",
  ],
  "qmgr.DEFEDB.log_directory": ["3.8", NO_EFFECT],
  "qmgr.IQDB.max_entries": [
    "3.8",
    "commits under way at once; beyond it a commit fails at once (smtps answers 451)",
  ],
  "qmgr.IQDB.max_cache_entries": ["3.8", "the README's name of `max_entries`"],
  "qmgr.IQDB.hash_table_entries": ["3.8", NO_EFFECT],
  "qmgr.DSN_handling.merge_delay_max": [
    "3.8",
    "how long a DSN waits for more failures of the same message to report them together",
  ],
  "qmgr.DSN_handling.flags": [
    "3.8",
    "`header_only`: return only the header; `MIME_Format`: RFC 3464 multipart/report (else plain text)",
  ],
  "qmgr.DSN_handling.max_errors_per_DSN": ["3.8", "the same as qmgr's `max_errors_per_DSN`"],
  "qmgr.smtpc.initial_connections": [
    "3.8",
    "slow start: the connections a destination gets at first, growing by one per success",
  ],
  "qmgr.smtpc.max_connections": ["3.8", "most concurrent outgoing connections to one destination"],
  "qmgr.smtpc.smtp_max_rcpts_per_transaction": ["3.8", "most recipients per outgoing SMTP transaction"],
  "qmgr.smtpc.lmtp_max_rcpts_per_transaction": ["3.8", "most recipients per outgoing LMTP transaction"],
  "qmgr.smtps.max_connections": [
    "3.8",
    "most concurrent sessions from one client address (more get `421 4.7.0` before the greeting)",
  ],
  "qmgr.smtps.max_connection_rate": [
    "3.8",
    "most connections per 60 s from one client address (0: no limit)",
  ],

  // smtps (README 3.10).
  "smtps.hostname": [
    "3.10",
    "this server's name in its greeting, EHLO reply and `Received:`",
    "the global hostname",
  ],
  "smtps.id": ["3.10", "a number naming the server in its log lines"],
  "smtps.io_timeout": [
    "3.10",
    "longest wait for a whole command line, DATA block or BDAT chunk (plus 1 s per 32 KB); then `421 4.4.2`",
  ],
  "smtps.max_message_size": [
    "3.10",
    "largest message (`552 5.3.4`; also for SIZE= and BDAT), announced in EHLO SIZE",
  ],
  "smtps.max_threads": ["3.10", "most concurrent sessions of this section (more get `421 4.3.2`)"],
  "smtps.processes": [
    "3.10",
    "smtps workers serving this section, sharing its listen sockets (SO_REUSEPORT); a reload cannot change it",
    "one per two CPU cores (at least 1, at most 4), within `min_processes`..`max_processes`",
  ],
  "smtps.min_processes": ["3.7", "the fewest smtps workers the default `processes` may give this section"],
  "smtps.max_processes": ["3.7", "the most smtps workers the default `processes` may give this section"],
  "smtps.CDB_gid": ["3.10", `${NO_EFFECT}: queue files are the MTA user's, mode 0600`],
  "smtps.max_recipients_per_transaction": [
    "3.10",
    "more RCPTs in one transaction get `452 4.5.3` (0: no limit)",
  ],
  "smtps.max_recipients_per_session": ["3.10", "more RCPTs in one session get `452 4.5.3` (0: no limit)"],
  "smtps.max_bad_commands_per_session": [
    "3.10",
    "syntax and sequence errors that end the session with `421 4.7.0` (0: no limit)",
  ],
  "smtps.max_hops": ["3.10", "a message with more `Received:` headers is refused as a loop (`554 5.4.6`)"],
  "smtps.flags": [
    "3.10",
    "`8bitmime` (offer 8BITMIME, SMTPUTF8), `access` (anti-spam checks), `delay_checks`, `greylisting`, `delay_greylisting_error_until_DATA`, `lmtp_does_not_imply_relaying`, `soft_bounce` (5yz refusals as 4yz), `strict_ehlo_checks`",
  ],
  "smtps.max_bad_commands_per_transaction": [
    "3.10",
    "syntax and sequence errors in one transaction that end the session (0: no limit)",
  ],
  "smtps.max_invalid_addresses_per_session": [
    "3.10",
    "addresses refused (syntax or 5xx from smar) that end the session (0: no limit)",
  ],
  "smtps.max_invalid_addresses_per_transaction": [
    "3.10",
    "addresses refused in one transaction that end the session (0: no limit)",
  ],
  "smtps.max_nop_commands_between_transactions": [
    "3.10",
    "NOOP, RSET, VRFY, HELP outside a transaction that end the session (0: no limit)",
  ],
  "smtps.max_nop_commands_in_transaction": [
    "3.10",
    "NOOP, RSET, VRFY, HELP in one transaction that end the session (0: no limit)",
  ],
  "smtps.max_transactions": ["3.10", "MAIL commands accepted per session (0: no limit)"],
  "smtps.bare_newline_clients": [
    "",
    "clients (addresses, CIDR nets) that may end lines with a bare LF; everyone else is cut off with `554 5.5.2`",
  ],
  "smtps.stress_threshold": ["", "percent of `max_threads` in use that turns stress mode on (0: never)"],
  "smtps.stress_timeout": ["", "in stress mode, the longest wait for a command (instead of `io_timeout`)"],
  "smtps.stress_client_share": [
    "",
    "in stress mode, the percent of the sessions one client address may hold (at least one)",
  ],
  "*.listen_socket.type": ["3.7", "`inet` (address and port) or `unix` (path)"],
  "*.listen_socket.address": ["3.7", "the address to listen on", "`0.0.0.0` (every local IPv4 address)"],
  "*.listen_socket.port": ["3.7", "the port to listen on"],
  "*.listen_socket.path": [
    "3.7",
    "a unix socket to listen on (a stale socket file is replaced); its clients count as 127.0.0.1",
  ],
  "*.listen_socket.umask": ["3.7", "the unix socket's mode is `0777 & ~umask`", "`077`"],
  "*.listen_socket.user": ["3.7", "owner of the unix socket"],
  "*.listen_socket.group": ["3.7", "group of the unix socket"],
  "*.protected_recipients.allow_by": [
    "3.10.2",
    "which `protectedrcpt:` restrictions count: `sender`, `client_ip`",
    "`{ sender, client_ip }`",
  ],
  "*.protected_recipients.match_type": [
    "3.10.2",
    "`generic_lookup` (the lookup order for recipient, sender, client), `implicitly_match_detail` (`user+detail` matches `user`)",
    "exact matches",
  ],
  "*.protected_recipients.flags": [
    "3.10.2",
    "the 3.10.2 spellings: `allow_by_sender`, `allow_by_client_ip`, `generic_lookup`, `implicitly_match_detail`",
  ],
  "smtps.tls.cert_file": ["3.10", "the server's certificate (PEM); with `key_file` STARTTLS is offered"],
  "smtps.tls.key_file": ["3.10", "the server's private key (PEM)"],
  "smtps.tls.CAcert_file": [
    "3.10",
    "CA certificates clients' certificates are verified against (clients are then asked for one)",
  ],
  "smtps.tls.CAcert_directory": ["3.10", "a directory of CA certificates, as `CAcert_file`"],
  "smtps.tls.flags": [
    "3.10",
    "`allow_relaying_if_verified`, `check_access_map_for_relaying` (`certissuer:`/`certsubject:` lookups), `implicit` (RFC 8314 TLS from the first byte, no STARTTLS)",
  ],
  "smtps.auth.map_file": [
    "3.10",
    "the credentials map (`deno task createmap auth`); without it AUTH is not offered",
    "none: no AUTH",
  ],
  "smtps.auth.mechanisms": [
    "",
    "the SASL mechanisms that may be offered (narrowed by `flags`, the map's secrets and TLS)",
  ],
  "smtps.auth.trusted_mechs": ["3.10", "a success with one of these lets the client relay"],
  "smtps.auth.max_failures": ["", "the failed AUTH attempt that ends the session (`421 4.7.0`)"],
  "smtps.auth.failure_delay": ["", "each failed attempt is answered after this times the failures so far"],
  "smtps.auth.flags": [
    "3.10",
    "`allow_plaintext` (PLAIN, LOGIN without TLS), `received_user`, and Cyrus SASL's security properties (`noplaintext`, `noactive`, `nodictionary`, `forward_secrecy`, `noanonymous`, `pass_credentials`, `mutual_auth`)",
  ],
  "smtps.policy_milter.timeout": [
    "3.10",
    "longest wait for each milter reply (Postfix's milter_command_timeout)",
    "`30s`",
  ],
  "smtps.policy_milter.flags": [
    "3.10",
    "`abort`: a milter that is down ends the session (`421 4.7.0`); `accept_but_reconnect`: go on without it, try again next session; none: skip it",
  ],
  "smtps.policy_milter.default_action": [
    "",
    "what a milter failing during the session means: `tempfail` (`451 4.7.1`), `reject` (`550 5.7.1`), `accept`",
    "tempfail",
  ],
  "*.socket.type": ["3.10", "`inet` (address and port) or `unix` (path)"],
  "*.socket.address": ["3.10", "the filter's address"],
  "*.socket.port": ["3.10", "the filter's port"],
  "*.socket.path": ["3.10", "the filter's unix socket"],
  "smtps.policy_service.timeout": [
    "",
    "longest wait for a policy service's answer (Postfix's smtpd_policy_service_timeout)",
    "`100s`",
  ],
  "smtps.policy_service.default_action": [
    "",
    "the action used when the service fails (an access(5) action)",
    '`"451 4.7.1 Policy service unavailable, try again later"`',
  ],
  "smtps.policy_service.stages": [
    "",
    "when the service is asked: `rcpt`, `data`, `end_of_data`",
    "`{ rcpt }`",
  ],
  "smtps.authentication.flags": [
    "",
    "the checks made on arriving mail: `spf`, `dkim`, `dmarc`, `arc`",
    "`{ spf, dkim, dmarc, arc }`",
  ],
  "smtps.authentication.authserv_id": [
    "",
    "the authserv-id of `Authentication-Results:` (RFC 8601)",
    "the section's hostname",
  ],
  "smtps.authentication.arc_seal.map": ["", "the DKIM key map whose key ARC-seals what was verified"],
  "smtps.dkim_signing.map": [
    "",
    "the DKIM key map (`DOMAIN SELECTOR KEY_FILE` lines): mail from clients that may relay is signed",
  ],

  // smtpc (README 3.11).
  "smtpc.io_timeout": [
    "3.11",
    "scales RFC 5321's deadlines (5m: greeting 5 min, DATA 2, each block 3, final dot 10)",
  ],
  "smtpc.LMTP_socket": ["3.11", "the unix socket of `lmtp:` routes without a host"],
  "smtpc.wait_for_server": ["3.11", `${NO_EFFECT}: smtpc's channel to qmgr exists before it starts`],
  "smtpc.connection_cache_time_limit": [
    "",
    "how long a connection idles for the next transaction to the same server",
  ],
  "smtpc.connection_reuse_time_limit": ["", "how long one connection may be reused"],
  "smtpc.connection_reuse_count_limit": ["", "most transactions on one connection"],
  "smtpc.flags": [
    "",
    "`ipv6`: deliver to IPv6 destinations too (AAAA before A per host); smtpc's net permission is then unrestricted",
  ],
  "smtpc.tls.security_level": [
    "",
    "`may` (TLS when offered), `encrypt` (TLS required), `verify` (TLS and a certificate valid for the host), `none`",
  ],
  "smtpc.tls.CAcert_file": ["3.11", "CA certificates servers are verified against", "Deno's built-in roots"],
  "smtpc.tls.CAcert_directory": ["3.11", "a directory of CA certificates, as `CAcert_file`"],
  "smtpc.tls.cert_file": ["3.11", "a client certificate (PEM)"],
  "smtpc.tls.key_file": ["3.11", "the client certificate's key (PEM)"],
  "smtpc.authinfo": [
    "",
    "AUTH to smart hosts: next hop or domain -> `USER SECRET_FILE` or `USER:SECRET` (a 0600 map); only over TLS",
    "none: no client AUTH",
  ],
  "*.authinfo.name": ["3.9.2", "a declared map to use"],

  // smar (README 3.9).
  "smar.nameserver": [
    "3.9.2",
    "the nameservers smar's resolver asks (`ip`, `ip:port`)",
    "those of `/etc/resolv.conf`",
  ],
  "smar.DNSSEC_validating_nameserver": [
    "",
    "nameservers of `nameserver` that validate DNSSEC on a trusted path (e.g. a resolver on 127.0.0.1): their AD bit is believed, and DANE TLSA records are used (RFC 7672)",
    "none: no DANE",
  ],
  "smar.DNS_timeout": ["3.9.2", "longest wait for one DNS answer (then a temporary failure)"],
  "smar.mailertable": [
    "3.9.2",
    "routes by domain: `domain [port^][esmtp:|lmtp:]host...`",
    "none: MX and A records",
  ],
  "smar.access_map": [
    "3.9.2",
    "the access map: `cltaddr:`, `from:`, `to:` ... entries for relaying and anti-spam",
  ],
  "smar.aliases": ["3.9.2", "the aliases map, expanded at RCPT"],
  "smar.alias_flags": ["3.9.3.3", "smx's name for `aliases { flags }`", "`{ localpart }`"],
  "smar.local_user_map": ["4.3.2", "the valid local users", "the lda's map"],
  "smar.local_user_flags": ["4.3.2", "`implicitly_match_detail`: `user+detail` is user `user`"],
  "smar.address_delimiter": ["3.9.2", "the character between user and detail (`user+detail`)"],
  "*.mailertable.name": ["3.9.2", "a declared map to use"],
  "*.access_map.name": ["3.9.2", "a declared map to use"],
  "*.aliases.name": ["3.9.2", "a declared map to use"],
  "*.local_user_map.name": ["4.3.2", "a declared map to use"],
  "smar.aliases.flags": [
    "3.9.3.3",
    "`localpart`, `local_domains`, `all_domains`, `implicitly_match_detail`, `replace_macros`, `preserve_domain`",
  ],
  "smar.local_user_map.flags": ["4.3.2", "`implicitly_match_detail`: `user+detail` is user `user`"],
  "smar.dnsbl.domain": ["3.9.2", "the DNS blacklist's zone (asked at connect)"],
  "smar.dnsbl.tag": [
    "3.9.2",
    "the access map tag its answers are looked up under (`tag:127.0.0.2`, `tag:temp`, `tag:perm`)",
  ],
  "qmgr.TLS_RPT.report_interval": ["", "TLS-RPT (RFC 8460): how often aggregate reports are sent"],
  "qmgr.TLS_RPT.organization_name": ["", "TLS-RPT: the reports' organization-name", "the hostname"],
  "qmgr.TLS_RPT.contact_info": ["", "TLS-RPT: the reports' contact-info", "postmaster@hostname"],
  "qmgr.TLS_RPT.report_sender": ["", "TLS-RPT: sender and From: of mailed reports", "postmaster@hostname"],
  "smar.MTA_STS.cache_file": [
    "",
    "MTA-STS (RFC 8461): the SQLite file keeping fetched policies across restarts",
  ],
  "smar.MTA_STS.CAcert_file": [
    "",
    "MTA-STS: more trust anchors (PEM) for policy hosts, beside the built-in roots",
  ],
  "smar.MTA_STS.timeout": ["", "MTA-STS: most time one policy fetch (connect, TLS, HTTP) may take"],
  "smar.MTA_STS.refresh_interval": [
    "",
    "MTA-STS: how often cached policies close to their max_age are fetched again",
  ],
  "smar.MTA_STS.HTTPS_port": ["", "testing only: the port MTA-STS policy hosts are fetched from"],
  "smar.MTA_STS.MX_port": ["", "testing only: the SMTP port of hosts found by MX records"],
  "smar.greylisting.grey_wait": ["3.9.4", "a new client's retry is let through only after this long"],
  "smar.greylisting.grey_expire": ["3.9.4", "a greylisted entry not retried within this is forgotten"],
  "smar.greylisting.white_expire": ["3.9.4", "a whitelisted client unused this long is forgotten"],
  "smar.greylisting.white_timeout": ["3.9.4", "a white client's last use is written at most once per this"],
  "smar.greylisting.main_DB_name": ["3.9.4", "the greylisting database (SQLite, mode 0600)", "required"],
  "smar.greylisting.secondary_DB_name": ["3.9.4", `${NO_EFFECT}: one indexed database replaces two`],
  "smar.greylisting.expire_limit": ["3.9.4", "most expired entries removed at once"],
  "smar.greylisting.netmask": ["3.9.4", "the client address bits greylisting keys on (IPv6: /64)"],

  // lda (smx's local delivery agent).
  "lda.hostname": ["", "the lda's name in its LHLO reply and Maildir file names", "the global hostname"],
  "lda.mail_root": ["", "mailboxes are `<mail_root>/<user>/Maildir/`"],
  "lda.local_user_map": [
    "4.3.2",
    "`user [quota]` lines; without it every `<mail_root>/<user>/Maildir` is a user",
  ],
  "lda.postmaster": ["", "the user that mail to postmaster goes to when postmaster is not a user"],
  "lda.io_timeout": ["", "longest wait for a command line or the message"],
  "lda.max_message_size": ["", "largest message the lda takes (`552 5.3.4`)"],
  "lda.max_threads": ["", "most concurrent LMTP sessions"],
  "lda.tls.cert_file": ["", "the lda's certificate (PEM) for LMTP over implicit TLS (`lmtps:` routes)"],
  "lda.tls.key_file": ["", "the lda's private key (PEM)"],
  "lda.tls.flags": ["", "must be `{ implicit }`: the handshake before the greeting (no STARTTLS for LMTP)"],
};
