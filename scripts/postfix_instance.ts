// A private Debian Postfix under a directory of its own, never the system's: the benchmark's comparison
// relay (scripts/bench_postfix.ts) and the tests' AUTH smart host (tests/helpers/postfix_relay.ts) differ
// only in their main.cf lines and smtpd listeners. Here: the main.cf lines both need (queue and data
// directories inside, loopback IPv4 only, nothing delivered locally, `transport` routing, `maillog_file`
// logging), the master.cf services of a relay (none chrooted), the directories Postfix wants (data owned
// by the postfix user), `postfix start` and the wait until every smtpd port accepts, and `postfix stop`.
// Postfix's master starts as root and its daemons run as the postfix user, so the directory must be one
// that user can reach (under /var/tmp: /tmp's temporary directories are 0700). Runs /usr/sbin/postfix.

import { join } from "node:path";

export const POSTFIX = "/usr/sbin/postfix";

/** The outcome of a program run: whether it succeeded, and its stdout and stderr together. */
export async function runProgram(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ ok: boolean; out: string }> {
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

/** The uid and gid of the postfix user (Debian's package creates it), from /etc/passwd. */
export async function postfixUser(): Promise<{ uid: number; gid: number }> {
  const line = (await Deno.readTextFile("/etc/passwd")).split("\n").find((l) => l.startsWith("postfix:"));
  const f = line?.split(":");
  if (!f || f.length < 4) throw new Error("Start Postfix: no postfix user in /etc/passwd");
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

/** main.cf: the lines every private instance has, then `extra` (its hostname, relay rules, TLS, SASL...). */
export function mainCf(dir: string, hostname: string, extra: string[]): string {
  return [
    "compatibility_level = 3.6",
    `queue_directory = ${join(dir, "spool")}`,
    `data_directory = ${join(dir, "data")}`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    `myhostname = ${hostname}`,
    "mydestination =",
    "relayhost =",
    `transport_maps = texthash:${join(dir, "etc", "transport")}`,
    "alias_maps =",
    "alias_database =",
    "local_recipient_maps =",
    "smtp_dns_support_level = disabled",
    "smtp_tls_security_level = none",
    `maillog_file = ${join(dir, "postfix.log")}`,
    `maillog_file_prefixes = ${dir}`,
    ...extra,
    "",
  ].join("\n");
}

/** master.cf: the given smtpd rows, then the services a relay needs, none chrooted. */
export function masterCf(smtpd: string[]): string {
  return [
    ...smtpd,
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "tlsmgr unix - - n 1000? 1 tlsmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "proxywrite unix - - n - 1 proxymap",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
    "",
  ].join("\n");
}

export interface InstanceFiles {
  mainCf: string;
  masterCf: string;
  /** `domain next-hop` lines of the transport map. */
  transport: string;
  /** The smtpd ports to wait for. */
  ports: number[];
  waitMs?: number;
}

/**
 * Writes etc/main.cf, etc/master.cf and etc/transport under `dir` (etc/ may already hold the instance's
 * other files), makes its spool and data directories, starts it and resolves with its etc directory once
 * every port accepts connections.
 */
export async function startPostfixInstance(dir: string, files: InstanceFiles): Promise<string> {
  const etc = join(dir, "etc");
  for (const d of [etc, join(dir, "spool"), join(dir, "data")]) await Deno.mkdir(d, { recursive: true });
  await Deno.writeTextFile(join(etc, "main.cf"), files.mainCf);
  await Deno.writeTextFile(join(etc, "master.cf"), files.masterCf);
  await Deno.writeTextFile(join(etc, "transport"), files.transport + "\n");
  const owner = await postfixUser();
  await Deno.chown(join(dir, "data"), owner.uid, owner.gid);
  const started = await runProgram(POSTFIX, ["-c", etc, "start"]);
  if (!started.ok) {
    const log = await Deno.readTextFile(join(dir, "postfix.log")).catch(() => "");
    throw new Error(`Start Postfix: ${(started.out + log).trim() || "failed (no message)"}`);
  }
  for (const port of files.ports) {
    for (const deadline = Date.now() + (files.waitMs ?? 20_000);;) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          await stopPostfixInstance(etc).catch(() => {});
          throw new Error(`Start Postfix: nothing listens on 127.0.0.1:${port}: ${err}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  return etc;
}

/** `postfix -c ETC stop`; throws with Postfix's words and the command to stop it by hand. */
export async function stopPostfixInstance(etc: string): Promise<void> {
  const r = await runProgram(POSTFIX, ["-c", etc, "stop"]);
  if (!r.ok) throw new Error(`Stop Postfix: ${r.out.trim()} (postfix -c ${etc} stop)`);
}
