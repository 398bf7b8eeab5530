// A private Debian Postfix for tests, as a smart host that requires AUTH: main.cf, master.cf, queue, data
// and Cyrus SASL configuration under a directory of its own in /var/tmp (Postfix's daemons run as the
// postfix user and must reach it), smtpd on 127.0.0.1 ports only, no chroot, `maillog_file` logging.
// Cyrus SASL checks passwords against a sasldb made with `saslpasswd2` (Debian's sasl2-bin); Debian's
// Postfix reads the SASL configuration `<config_directory>/sasl/<smtpd_sasl_path>.conf`, so each
// listener can offer its own mechanisms (`mech_list`). Relaying is allowed for authenticated clients
// only; `transport` routes domains onward (e.g. to an in-test sink). Needs root (Postfix's master starts
// as root). Runs /usr/sbin/postfix and /usr/sbin/saslpasswd2; touches only its directory.

import { join } from "node:path";

export const POSTFIX = "/usr/sbin/postfix";
export const SASLPASSWD2 = "/usr/sbin/saslpasswd2";

export interface PostfixListener {
  port: number;
  /** Offer STARTTLS (with tls_dir's server certificate) and AUTH only inside TLS; false: neither TLS nor that rule. */
  tls: boolean;
  /** Cyrus SASL mechanisms this listener offers (its own `<name>.conf`). */
  mechanisms: string[];
}

export interface PostfixOptions {
  listeners: PostfixListener[];
  /** SASL users (in the realm `relay.test`) and their passwords. */
  users: Record<string, string>;
  /** `domain next-hop` lines of the transport map, e.g. `example.org smtp:[127.0.0.1]:2526`. */
  transport: string;
  /** A directory holding server.pem and server.key. */
  tlsDir: string;
}

export interface PostfixRelay {
  dir: string;
  /** The mail log so far. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Why Postfix cannot run here, or undefined when it can (installed, root, saslpasswd2, SASL modules). */
export async function postfixProblem(): Promise<string | undefined> {
  for (const bin of [POSTFIX, SASLPASSWD2]) {
    try {
      await Deno.stat(bin);
    } catch {
      return `${bin} is not installed (Debian packages postfix, sasl2-bin)`;
    }
  }
  // Only root may give a file away (Deno.uid() would need a sys permission the test task does not give).
  const probe = await Deno.makeTempFile({ prefix: "smx-root-probe-" });
  try {
    const { uid, gid } = await postfixUser();
    await Deno.chown(probe, uid, gid);
  } catch {
    return "Postfix's master must start as root";
  } finally {
    await Deno.remove(probe);
  }
  return undefined;
}

async function run(cmd: string, args: string[], stdin?: string): Promise<{ ok: boolean; out: string }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { ok: out.success, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function postfixUser(): Promise<{ uid: number; gid: number }> {
  const line = (await Deno.readTextFile("/etc/passwd")).split("\n").find((l) => l.startsWith("postfix:"));
  const f = line?.split(":");
  if (!f || f.length < 4) throw new Error("Start Postfix: no postfix user in /etc/passwd");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function mainCf(dir: string, tlsDir: string): string {
  const etc = join(dir, "etc");
  return [
    "compatibility_level = 3.6",
    `queue_directory = ${join(dir, "spool")}`,
    `data_directory = ${join(dir, "data")}`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    "myhostname = relay.test",
    "mydestination =",
    "mynetworks =",
    "relayhost =",
    `transport_maps = texthash:${join(etc, "transport")}`,
    "alias_maps =",
    "alias_database =",
    "local_recipient_maps =",
    "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
    "smtp_dns_support_level = disabled",
    "smtp_tls_security_level = none",
    "smtpd_tls_security_level = may",
    `smtpd_tls_cert_file = ${join(tlsDir, "server.pem")}`,
    `smtpd_tls_key_file = ${join(etc, "server.key")}`,
    "smtpd_tls_auth_only = yes",
    "smtpd_sasl_auth_enable = yes",
    "smtpd_sasl_type = cyrus",
    `cyrus_sasl_config_path = ${join(etc, "sasl")}`,
    "smtpd_sasl_local_domain = relay.test",
    // No retry wait for mail the sink takes; smx's mail never waits in this queue.
    "queue_run_delay = 1s",
    `maillog_file = ${join(dir, "postfix.log")}`,
    `maillog_file_prefixes = ${dir}`,
    "",
  ].join("\n");
}

function masterCf(listeners: PostfixListener[]): string {
  const smtpd = listeners.map((l, i) =>
    `127.0.0.1:${l.port} inet n - n - - smtpd -o smtpd_sasl_path=smtpd${i}` +
    (l.tls ? "" : " -o smtpd_tls_security_level=none -o smtpd_tls_auth_only=no")
  );
  return [
    ...smtpd,
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "tlsmgr unix - - n 1000? 1 tlsmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "proxymap unix - - n - - proxymap",
    "smtp unix - - n - - smtp",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
    "",
  ].join("\n");
}

/** Starts the relay; resolves once every listener accepts connections. */
export async function startPostfixRelay(opts: PostfixOptions): Promise<PostfixRelay> {
  const dir = await Deno.makeTempDir({ prefix: "smx-test-postfix-", dir: "/var/tmp" });
  // The postfix user must traverse it (makeTempDir makes it 0700).
  await Deno.chmod(dir, 0o755);
  const etc = join(dir, "etc");
  const sasl = join(etc, "sasl");
  const logFile = join(dir, "postfix.log");
  let started = false;
  const stop = async () => {
    try {
      if (started) {
        const r = await run(POSTFIX, ["-c", etc, "stop"]);
        if (!r.ok) throw new Error(`Stop Postfix: ${r.out.trim()} (postfix -c ${etc} stop)`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  try {
    for (const d of [sasl, join(dir, "spool"), join(dir, "data")]) await Deno.mkdir(d, { recursive: true });
    const owner = await postfixUser();
    await Deno.chown(join(dir, "data"), owner.uid, owner.gid);
    // Postfix wants its TLS key private; a copy of its own.
    await Deno.copyFile(join(opts.tlsDir, "server.key"), join(etc, "server.key"));
    await Deno.chmod(join(etc, "server.key"), 0o600);
    await Deno.writeTextFile(join(etc, "main.cf"), mainCf(dir, opts.tlsDir));
    await Deno.writeTextFile(join(etc, "master.cf"), masterCf(opts.listeners));
    await Deno.writeTextFile(join(etc, "transport"), opts.transport + "\n");
    const db = join(sasl, "sasldb2");
    for (const [user, password] of Object.entries(opts.users)) {
      const r = await run(SASLPASSWD2, ["-p", "-f", db, "-u", "relay.test", "-c", user], password);
      if (!r.ok) throw new Error(`saslpasswd2: ${r.out.trim()}`);
    }
    await Deno.chown(db, owner.uid, owner.gid);
    for (const [i, l] of opts.listeners.entries()) {
      await Deno.writeTextFile(
        join(sasl, `smtpd${i}.conf`),
        `pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: ${db}\nmech_list: ${
          l.mechanisms.join(" ")
        }\n`,
      );
    }
    const r = await run(POSTFIX, ["-c", etc, "start"]);
    if (!r.ok) {
      const log = await Deno.readTextFile(logFile).catch(() => "");
      throw new Error(`Start Postfix: ${(r.out + log).trim() || "failed (no message)"}`);
    }
    started = true;
    for (const l of opts.listeners) {
      for (const deadline = Date.now() + 10_000;;) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port: l.port })).close();
          break;
        } catch (err) {
          if (Date.now() > deadline) {
            throw new Error(`Start Postfix: nothing listens on port ${l.port}: ${err}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { dir, log: () => Deno.readTextFile(logFile).catch(() => ""), stop };
}
