// `deno task service -f FILE [--user NAME] [--output PATH]`: writes a systemd unit that runs smx with the
// configuration FILE: the exact `deno run` line that configuration needs (the one `deno task start` runs,
// components/mcp/manifest.ts), as an unprivileged user of its own, under systemd's sandboxing, the
// operating-system layer beneath Deno's permissions (a runtime exploit that escaped Deno's checks would
// still meet it): no new privileges, the whole file system read-only but the directories the MTA writes
// (queue, mail, logs), private /tmp, no home directories, only the capability to bind ports below 1024.
// Prints the unit (or writes it to PATH). Exit codes: 0, 64 usage, 78 a bad configuration.
// Reads the configuration and the files it names (the mailertable for smtpc's ports); writes only PATH.

import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadConfig } from "../config/mod.ts";
import { callerPath } from "./caller_path.ts";
import type { Config } from "../config/types.ts";
import { runCommand, shellWords } from "../components/mcp/manifest.ts";
import { computePermissions } from "../components/mcp/permissions.ts";

export const USAGE = "usage: deno task service -f FILE [--user NAME] [--output PATH]";

/** The repository the unit runs smx from (its WorkingDirectory: the deno run line's paths are relative to it). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface UnitOptions {
  /** The configuration file, absolute. */
  configFile: string;
  user: string;
  /** The deno executable. */
  deno: string;
  /** The working directory (the repository). */
  root: string;
}

/** The directories the MTA writes, absolute (relative ones are inside the working directory). */
function writePaths(runLine: string[], root: string): string[] {
  const flag = runLine.find((w) => w.startsWith("--allow-write="));
  if (!flag) return [];
  return flag.slice("--allow-write=".length).split(",").map((p) => isAbsolute(p) ? p : resolve(root, p));
}

/** The unit text for `config`, whose sets the MCP computes as it will at start. */
export async function serviceUnit(config: Config, o: UnitOptions): Promise<string> {
  const sets = await computePermissions(config);
  const line = runCommand(sets, { configFile: o.configFile, logDirectory: config.log?.directory }, [
    "-f",
    o.configFile,
  ]);
  line[0] = o.deno;
  // The directories the MTA writes: those the configuration names as directories, and the directory of
  // each file it writes (SQLite puts its -wal and -shm files beside a database).
  const known = new Set(
    [
      config.CDB_base_directory,
      config.qmgr.IBDB.base_directory,
      config.qmgr.DEFEDB.base_directory,
      config.lda?.mail_root,
      config.log?.directory,
    ].filter((d) => d !== undefined).map((d) => resolve(o.root, d!)),
  );
  const dirs = [...new Set(writePaths(line, o.root).map((p) => known.has(p) ? p : dirname(p)))];
  const lowPort = config.smtps.some((s) => s.listen_socket.some((l) => l.type === "inet" && l.port < 1024));
  return `# smx for ${o.configFile}, written by deno task service.
# Before the first start: useradd --system --no-create-home --shell /usr/sbin/nologin ${o.user}
# (ExecStartPre creates the directories smx writes, owned by ${o.user}, mode 0700.)
[Unit]
Description=smx mail transfer agent (${o.configFile})
Documentation=file://${o.root}/README.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${o.user}
Group=${o.user}
WorkingDirectory=${o.root}
${
    dirs.length
      ? `ExecStartPre=+/usr/bin/install -d -o ${o.user} -g ${o.user} -m 0700 ${dirs.join(" ")}\n`
      : ""
  }ExecStart=${shellWords(line)}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
TimeoutStopSec=90
Restart=on-failure
# Usage, unavailable, permission and configuration errors: a restart cannot cure them.
RestartPreventExitStatus=64 69 77 78
# Deno keeps its module and npm cache here (the home directory is hidden).
CacheDirectory=smx
Environment=DENO_DIR=/var/cache/smx
Environment=DENO_NO_UPDATE_CHECK=1
UMask=0077
StandardOutput=journal
StandardError=journal
SyslogIdentifier=smx

# The operating-system sandbox beneath Deno's permissions.
NoNewPrivileges=yes
ProtectSystem=strict
${dirs.length ? `ReadWritePaths=${dirs.join(" ")}\n` : ""}PrivateTmp=yes
ProtectHome=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
CapabilityBoundingSet=${lowPort ? "CAP_NET_BIND_SERVICE" : ""}
AmbientCapabilities=${lowPort ? "CAP_NET_BIND_SERVICE" : ""}

[Install]
WantedBy=multi-user.target
`;
}

/** Runs the command line `args`; returns the exit code. */
export async function service(
  args: string[],
  io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) },
): Promise<number> {
  if (args[0] === "--") args = args.slice(1);
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        file: { type: "string", short: "f" },
        user: { type: "string" },
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    io.err(`service: ${(err as Error).message}\n${USAGE}`);
    return 64;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (values.file === undefined) {
    io.err(`service: -f FILE is required (the unit runs one configuration)\n${USAGE}`);
    return 64;
  }
  const user = values.user ?? "smx";
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) {
    io.err(`service: --user ${user}: not a user name`);
    return 64;
  }
  const configFile = callerPath(values.file);
  let unit: string;
  try {
    const config = await loadConfig(configFile);
    unit = await serviceUnit(config, { configFile, user, deno: Deno.execPath(), root: ROOT });
  } catch (err) {
    io.err(`service: ${(err as Error).message}`);
    return 78;
  }
  if (values.output === undefined) io.out(unit.trimEnd());
  else await Deno.writeTextFile(callerPath(values.output), unit);
  return 0;
}

if (import.meta.main) Deno.exit(await service(Deno.args));
