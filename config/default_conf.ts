// The built-in default configuration, used when the MTA starts without a configuration file: a sample
// smx.conf that runs with no setup (one SMTP server on a loopback port, queue under ./var, the default
// maps in config/default/). Parsed by loadConfig() on top of config/defaults.ts. Touches nothing.

export const DEFAULT_CONF = `# smx.conf: the built-in default configuration of this MTA.
# Syntax (sendmail X's): "option = value;", sections "keyword [name] { ... }", lists "{ a, b }", "#" comments.
# Times take units w d h m s (e.g. 1h 30m; a plain number means seconds), sizes B KB MB GB (a plain number
# means bytes, but KB for max_message_size, min_disk_space and ok_disk_space).

# The name this MTA announces in greetings and Received: headers.
hostname = "localhost";

# Where message contents (the CDB) are stored, relative to the working directory.
CDB_base_directory = "var/cdb";

# Queue manager: the incoming queue's durable log (IBDB) and the deferred queue (DEFEDB).
qmgr {
  IBDB { base_directory = "var/ibdb"; }
  DEFEDB { base_directory = "var/defedb"; }
}

# The SMTP server: listens on the loopback address only, on an unprivileged port.
smtps MTA {
  listen_socket { type = inet; address = 127.0.0.1; port = 2525; }
}

# The address resolver and its maps: plain text files (LHS whitespace RHS per line) or compiled with
# "deno task createmap". The access map decides relaying, the mailertable overrides MX routing, the
# aliases map rewrites recipients (the local users are the lda's). Without a nameserver option the
# nameservers of /etc/resolv.conf are used.
smar {
  mailertable { file = "config/default/mailertable"; }
  access_map { file = "config/default/access"; }
  # Aliases ("alias: address, ..."): postmaster goes to the sample local user.
  aliases { file = "config/default/aliases"; flags = { localpart }; }
  # Local users of the built-in delivery agent: "user [quota]" per line (quota a size like 100MB).
  map local_users { type = hash; file = "config/default/local_users"; }
}

# The built-in local delivery agent: speaks LMTP on a loopback port (the mailertable routes localhost
# here with lmtp:) and writes each message to <mail_root>/<user>/Maildir/new/. Remove the section and
# the mailertable line to deliver elsewhere.
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = 2424; }
  mail_root = "var/mail";
  local_user_map = local_users;
}
`;
