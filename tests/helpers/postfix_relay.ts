// A private Debian Postfix for tests, as a smart host that requires AUTH: main.cf, master.cf, queue, data
// and Cyrus SASL configuration under a directory of its own in /var/tmp (Postfix's daemons run as the
// postfix user and must reach it), smtpd on 127.0.0.1 ports only, no chroot, `maillog_file` logging (scripts/postfix_instance.ts).
// Cyrus SASL checks passwords against a sasldb made with `saslpasswd2` (Debian's sasl2-bin); Debian's
// Postfix reads the SASL configuration `<config_directory>/sasl/<smtpd_sasl_path>.conf`, so each
// listener can offer its own mechanisms (`mech_list`). Relaying is allowed for authenticated clients
// only; `transport` routes domains onward (e.g. to an in-test sink). Needs root (Postfix's master starts
// as root). Runs /usr/sbin/postfix and /usr/sbin/saslpasswd2; touches only its directory.

import { join } from "node:path";
import {
  mainCf,
  masterCf,
  POSTFIX,
  postfixUser,
  runProgram,
  startPostfixInstance,
  stopPostfixInstance,
} from "../../scripts/postfix_instance.ts";

export { POSTFIX };
export const SASLPASSWD2 = "/usr/sbin/saslpasswd2";

export interface PostfixListener {
  port: number;
  /** Offer STARTTLS (with tls_dir's server certificate) and AUTH only inside TLS; false: neither TLS nor that rule. */
  tls: boolean;
  /** Cyrus SASL mechanisms this listener offers (its own `<name>.conf`). */
  mechanisms: string[];
  /** TLS from the first byte (`smtpd_tls_wrappermode`, the port 465 style) instead of STARTTLS. */
  implicit?: boolean;
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

function relayMainCf(dir: string, tlsDir: string): string {
  const etc = join(dir, "etc");
  return mainCf(dir, "relay.test", [
    "mynetworks =",
    "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
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
  ]);
}

/** Each listener's smtpd row, with its own SASL configuration name (and no TLS where it has none). */
function smtpdRows(listeners: PostfixListener[]): string[] {
  return listeners.map((l, i) =>
    `127.0.0.1:${l.port} inet n - n - - smtpd -o smtpd_sasl_path=smtpd${i}` +
    (l.tls ? "" : " -o smtpd_tls_security_level=none -o smtpd_tls_auth_only=no") +
    (l.implicit ? " -o smtpd_tls_wrappermode=yes" : "")
  );
}

/** Starts the relay; resolves once every listener accepts connections. */
export async function startPostfixRelay(opts: PostfixOptions): Promise<PostfixRelay> {
  const dir = await Deno.makeTempDir({ prefix: "smx-test-postfix-", dir: "/var/tmp" });
  // The postfix user must traverse it (makeTempDir makes it 0700).
  await Deno.chmod(dir, 0o755);
  const etc = join(dir, "etc");
  const sasl = join(etc, "sasl");
  const logFile = join(dir, "postfix.log");
  let etcStarted: string | undefined;
  const stop = async () => {
    try {
      if (etcStarted) await stopPostfixInstance(etcStarted);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  try {
    await Deno.mkdir(sasl, { recursive: true });
    const owner = await postfixUser();
    // Postfix wants its TLS key private; a copy of its own.
    await Deno.copyFile(join(opts.tlsDir, "server.key"), join(etc, "server.key"));
    await Deno.chmod(join(etc, "server.key"), 0o600);
    const db = join(sasl, "sasldb2");
    for (const [user, password] of Object.entries(opts.users)) {
      const r = await runProgram(SASLPASSWD2, ["-p", "-f", db, "-u", "relay.test", "-c", user], password);
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
    etcStarted = await startPostfixInstance(dir, {
      mainCf: relayMainCf(dir, opts.tlsDir),
      masterCf: masterCf(smtpdRows(opts.listeners)),
      transport: opts.transport,
      ports: opts.listeners.map((l) => l.port),
      waitMs: 10_000,
    });
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { dir, log: () => Deno.readTextFile(logFile).catch(() => ""), stop };
}
