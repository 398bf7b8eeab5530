// The permission set of every worker, computed from the configuration, and what the main process itself
// must hold to hand them out (a worker's set must be a subset of its parent's). Reads the mailertable
// (for the ports smtpc must reach), smtpc's authinfo map (for the secret files it names) and
// /etc/resolv.conf (when no nameserver is configured); touches nothing else. Paths are the Config's:
// absolute for a configuration file (config/paths.ts resolved them from its directory), relative to the
// working directory for the built-in one.

import { isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config, LdaConfig, ListenSocket, MetricsConfig } from "../../config/types.ts";
import { DEFAULT_LMTP_SOCKET } from "../../config/defaults.ts";
import { logFile } from "../../config/service.ts";
import { syslogNetPermissions, syslogTarget } from "../../config/log_settings.ts";
import type { ComponentName, ServiceName } from "../protocol/messages.ts";
import { controlSocketPath } from "../qmgr/control_protocol.ts";
import { mailertableIpv6Literals, mailertablePorts, mailertableUsesLmtpSocket } from "../smar/mailertable.ts";
import { smarNeeds } from "../smar/needs.ts";
import { configuredNameservers, hostPort, nameserverNetPermissions } from "../smar/dns/nameservers.ts";
import type { WorkerPermissions } from "./spawn.ts";
import { keyFiles } from "../smtps/mailauth/keys.ts";
import { authinfoSecretFiles } from "../smtpc/authinfo.ts";

/** A set per component, and one per optional service the configuration enables (the lda). */
export type PermissionSets =
  & Record<ComponentName, WorkerPermissions>
  & Partial<Record<ServiceName, WorkerPermissions>>;

export const RESOLV_CONF = "/etc/resolv.conf";

export interface ComputeOptions {
  /** Read the mailertable and resolv.conf (default true); false gives the sets those files do not shape. */
  readFiles?: boolean;
  /** Where the system's nameservers are listed (tests point this elsewhere). */
  resolvConf?: string;
}

const NONE: Omit<WorkerPermissions, "read" | "write" | "net"> = {
  env: false,
  sys: false,
  run: false,
  ffi: false,
  import: false,
};

/** Exactly what each component needs, and nothing more. */
export async function computePermissions(config: Config, opts: ComputeOptions = {}): Promise<PermissionSets> {
  const readFiles = opts.readFiles ?? true;
  const resolvConf = opts.resolvConf ?? RESOLV_CONF;
  const cdb = config.CDB_base_directory;
  const queue = [config.qmgr.IBDB.base_directory, config.qmgr.DEFEDB.base_directory, cdb];

  const listen = listenPermissions(config.smtps.flatMap((s) => s.listen_socket));

  const ports = new Set(await smtpcPorts(config, readFiles));
  // The LMTP socket when a route uses it (`lmtp:` without a host), or when it is not the default (a
  // configuration naming its own socket means to use it): every configuration has the default one.
  const defaultSocket = config.directory ? join(config.directory, DEFAULT_LMTP_SOCKET) : DEFAULT_LMTP_SOCKET;
  let lmtpSocket = config.smtpc.LMTP_socket !== defaultSocket;
  const ipv6Literals: { address: string; port: number }[] = [];
  if (readFiles && config.smar.mailertable) {
    lmtpSocket ||= await mailertableUsesLmtpSocket(config.smar.mailertable);
    ipv6Literals.push(...await mailertableIpv6Literals(config.smar.mailertable));
  }

  // smar's UDP sockets bind a random local port, which Deno checks as `<bind address>:0`: the same
  // function smar uses decides both entries, so the sets cannot drift apart.
  const useResolvConf = config.smar.nameserver.length === 0;
  const nameservers = useResolvConf && !readFiles
    ? []
    : await configuredNameservers(config.smar.nameserver, resolvConf);
  // Map files, socket maps and the greylisting database: smar/needs.ts decides, as for the nameservers.
  const smar = smarNeeds(config);

  const filters = smtpsFilterSockets(config);
  const sets: PermissionSets = {
    smtps: {
      ...NONE,
      read: unique([
        cdb,
        ...smtpsFiles(config),
        ...filters.paths,
        ...listen.paths,
        ...(readFiles ? await smtpsKeyFiles(config) : []),
      ]),
      write: unique([cdb, ...filters.paths, ...listen.paths]),
      net: orFalse(unique([...listen.net, ...filters.net])),
      // statfs for its own disk checks before each message and while writing it (smtps/disk_space.ts).
      sys: config.qmgr.min_disk_space > 0 ? ["statfs"] : false,
    },
    qmgr: qmgrPermissions(config, queue),
    smtpc: smtpcPermissions(
      config,
      [...ports],
      lmtpSocket,
      readFiles ? await smtpcSecretFiles(config) : [],
      ipv6Literals,
    ),
    smar: {
      ...NONE,
      read: orFalse(unique([...smar.read, ...(useResolvConf ? [resolvConf] : [])])),
      write: orFalse(smar.write),
      net: orFalse(unique([...nameserverNetPermissions(nameservers), ...smar.net])),
    },
    ...(config.lda ? { lda: ldaPermissions(config.lda) } : {}),
    ...(config.metrics ? { metrics: metricsPermissions(config.metrics) } : {}),
  };
  // With a log directory, each worker appends to its own file there (and may touch no other); with a
  // syslog server, each sends its lines there.
  const syslog = syslogTarget(config);
  for (const [name, set] of Object.entries(sets) as [string, WorkerPermissions][]) {
    const file = logFile(config, name);
    if (file !== undefined) set.write = [...(set.write || []), file];
    if (syslog && set.net !== true) set.net = unique([...(set.net || []), ...syslogNetPermissions(syslog)]);
  }
  return sets;
}

/**
 * qmgr: read/write its queue directories and the CDB; its control socket (Deno asks read, write and
 * `unix:<absolute path>` net permission to listen on it); read the qmgr_conf map; and sys "statfs" for the
 * disk guard (node:fs statfs of the queue directory) unless min_disk_space is 0. No network.
 */
function qmgrPermissions(config: Config, queue: string[]): WorkerPermissions {
  const socket = controlSocketPath(config);
  const own = queue.some((dir) => resolve(socket).startsWith(`${resolve(dir)}/`)) ? [] : [socket];
  const conf = config.qmgr.conf ? [config.qmgr.conf.file] : [];
  return {
    ...NONE,
    read: unique([...queue, ...own, ...conf]),
    write: unique([...queue, ...own]),
    net: [`unix:${resolve(socket)}`],
    sys: config.qmgr.min_disk_space > 0 ? ["statfs"] : false,
  };
}

/**
 * The files smtps reads besides the CDB: each section's TLS certificate, key and CAs, its AUTH map, and
 * the key maps of DKIM signing and ARC sealing.
 */
function smtpsFiles(config: Config): string[] {
  return config.smtps.flatMap((s) =>
    [
      s.tls?.cert_file,
      s.tls?.key_file,
      s.tls?.CAcert_file,
      s.tls?.CAcert_directory,
      s.auth?.map_file,
      s.dkim_signing?.map.file,
      s.authentication?.arc_seal?.map.file,
    ].filter((f): f is string => f !== undefined && f !== "")
  );
}

/** The key files the key maps name: smtps may read exactly these (a map that cannot be read adds none). */
async function smtpsKeyFiles(config: Config): Promise<string[]> {
  const maps = config.smtps.flatMap((s) => [s.dkim_signing?.map, s.authentication?.arc_seal?.map]);
  const files: string[] = [];
  for (const spec of maps) if (spec) files.push(...await keyFiles(spec));
  return files;
}

/**
 * The milters and policy services smtps connects to: `host:port` for inet sockets; for unix sockets
 * read, write and `unix:<absolute path>` (what Deno asks to connect to one). Only those addresses.
 */
function smtpsFilterSockets(config: Config): { net: string[]; paths: string[] } {
  const net: string[] = [];
  const paths: string[] = [];
  for (const s of config.smtps) {
    for (const filter of [...s.policy_milter ?? [], ...s.policy_service ?? []]) {
      const socket = filter.socket;
      if (socket.type === "inet") net.push(hostPort(socket.address, socket.port));
      else {
        paths.push(socket.path);
        net.push(`unix:${resolve(socket.path)}`);
      }
    }
  }
  return { net, paths };
}

/**
 * The secret files smtpc's authinfo map names (`USER SECRET_FILE` entries): smtpc may read exactly these.
 * A map that cannot be read adds none (smtpc then fails at start, saying why).
 */
async function smtpcSecretFiles(config: Config): Promise<string[]> {
  const spec = config.smtpc.authinfo;
  if (!spec) return [];
  return await authinfoSecretFiles(spec).catch(() => []);
}

/**
 * The ports smtpc may connect to: 25, its configured ones, every port the mailertable names and the testing
 * option MTA_STS.MX_port, sorted.
 */
export async function smtpcPorts(config: Config, readFiles = true): Promise<number[]> {
  const ports = new Set([25, ...config.smtpc.ports]);
  // The testing option MTA_STS.MX_port moves the SMTP port of MX routes.
  if (config.smar.MTA_STS) ports.add(config.smar.MTA_STS.MX_port);
  if (readFiles && config.smar.mailertable) {
    for (const p of await mailertablePorts(config.smar.mailertable)) ports.add(p);
  }
  return [...ports].sort((a, b) => a - b);
}

/** Whether smtpc delivers to IPv6 destinations (`smtpc { flags = { ipv6 }; }`). */
export function ipv6Delivery(config: Config): boolean {
  return config.smtpc.flags?.includes("ipv6") ?? false;
}

/**
 * smtpc: connect to any IPv4 host on its ports and to each IPv6 literal of the mailertable on its port,
 * read the CDB and its TLS files; when the mailertable routes to the LMTP_socket (`lmtp:` without a host),
 * connect to it (Deno asks read, write and `unix:<absolute path>` net permission for that). With the ipv6
 * flag, any host on any port: Deno 2.9 has no way to say "any IPv6 host on port 25" (it refuses an IPv6
 * CIDR in every spelling), so the opt-in trades the port restriction for IPv6 reach (smtpc/worker.ts).
 * Read its authinfo map and the secret files it names.
 */
function smtpcPermissions(
  config: Config,
  ports: number[],
  lmtpSocket: boolean,
  secretFiles: string[],
  ipv6Literals: { address: string; port: number }[],
): WorkerPermissions {
  const { tls, LMTP_socket, authinfo } = config.smtpc;
  const tlsFiles = [tls?.CAcert_file, tls?.CAcert_directory, tls?.cert_file, tls?.key_file];
  const socket = LMTP_socket === undefined || !lmtpSocket ? [] : [LMTP_socket];
  const v4 = ports.sort((a, b) => a - b).map((p) => `0.0.0.0/0:${p}`);
  const v6 = ipv6Literals.map((l) => hostPort(l.address, l.port));
  const auth = authinfo ? [authinfo.file, ...secretFiles] : [];
  return {
    ...NONE,
    read: unique([
      config.CDB_base_directory,
      ...tlsFiles.filter((f) => f !== undefined),
      ...socket,
      ...auth,
    ]),
    write: orFalse(socket),
    net: ipv6Delivery(config)
      ? true
      : unique([...v4, ...v6, ...socket.map((path) => `unix:${resolve(path)}`)]),
  };
}

/**
 * What listening on `sockets` takes: `host:port` net permission for a TCP socket; for a unix socket,
 * read and write on its path (Deno asks both to bind it, write also to replace a stale one and set its
 * mode) and `unix:<absolute path>` net permission.
 */
function listenPermissions(sockets: ListenSocket[]): { net: string[]; paths: string[] } {
  const net: string[] = [];
  const paths: string[] = [];
  for (const s of sockets) {
    if (s.type === "inet") {
      net.push(hostPort(s.address, s.port));
    } else {
      paths.push(s.path);
      net.push(`unix:${resolve(s.path)}`);
    }
  }
  return { net, paths };
}

/**
 * The local delivery agent: listen for LMTP, read and write the mail root, read the users map and its TLS
 * certificate and key (implicit TLS); no more.
 */
function ldaPermissions(lda: LdaConfig): WorkerPermissions {
  const listen = listenPermissions(lda.listen_socket);
  const usersMap = lda.local_user_map ? [lda.local_user_map.file] : [];
  const tls = lda.tls ? [lda.tls.cert_file, lda.tls.key_file] : [];
  return {
    ...NONE,
    read: unique([lda.mail_root, ...usersMap, ...tls, ...listen.paths]),
    write: unique([lda.mail_root, ...listen.paths]),
    net: orFalse(unique(listen.net)),
  };
}

/**
 * The metrics worker: listen on its listen sockets, nothing else. What it shows it asks the components
 * (over its peer ports) and the MCP (status frames); it reads no file, not even the queue.
 */
function metricsPermissions(metrics: MetricsConfig): WorkerPermissions {
  const listen = listenPermissions(metrics.listen_socket);
  return {
    ...NONE,
    read: orFalse(unique(listen.paths)),
    write: orFalse(unique(listen.paths)),
    net: orFalse(unique(listen.net)),
  };
}

/**
 * The directories holding the workers' module files: the main process must read them to start workers.
 * None in a compiled binary (`deno compile`): its modules are embedded and load without read permission.
 */
export function sourceDirs(standalone = Deno.build.standalone): string[] {
  if (standalone) return [];
  return [new URL("../", import.meta.url), new URL("../../config/", import.meta.url)].map((u) =>
    cwdRelative(fileURLToPath(u).replace(/\/$/, ""))
  );
}

function cwdRelative(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel === "" ? "." : rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

export interface MainOptions {
  /** The configuration file the MCP reads (none for the built-in configuration). */
  configFile?: string;
  /** The log directory (`log { directory }`): the MCP creates it and writes its own file there. */
  logDirectory?: string;
  /** For a compiled binary (default: whether this process is one): no source directories to read. */
  standalone?: boolean;
}

/** What the main process must hold: the union of the workers' sets, its own reads, the unstable flag. */
export function mainNeeds(perms: PermissionSets, opts: MainOptions = {}) {
  const sets = Object.values(perms);
  const union = (key: "read" | "write" | "net" | "sys") =>
    unique(sets.flatMap((s) => Array.isArray(s[key]) ? s[key] : []));
  const read = outermost([
    ...sourceDirs(opts.standalone),
    ...(opts.configFile ? [opts.configFile] : []),
    ...union("read"),
  ]);
  const net = union("net");
  // Deno refuses to give a worker a CIDR net entry unless the parent's net permission is unrestricted
  // (its escalation check cannot compare ranges), so one CIDR entry makes the main process need all.
  // An unrestricted worker set (smtpc with the ipv6 flag) needs an unrestricted parent too.
  const anyHost = net.some((h) => h.includes("/")) || sets.some((s) => s.net === true);
  const write = outermost([...union("write"), ...(opts.logDirectory ? [opts.logDirectory] : [])]);
  return { read, write, net, anyHost, sys: union("sys") };
}

/** The `deno run` flags the main process needs. */
export function mainProcessFlags(perms: PermissionSets, opts: MainOptions = {}): string[] {
  const need = mainNeeds(perms, opts);
  const flags = ["--unstable-worker-options"];
  if (need.read.length) flags.push(`--allow-read=${need.read.join(",")}`);
  if (need.write.length) flags.push(`--allow-write=${need.write.join(",")}`);
  if (need.anyHost) flags.push("--allow-net");
  else if (need.net.length) flags.push(`--allow-net=${need.net.join(",")}`);
  if (need.sys.length) flags.push(`--allow-sys=${need.sys.join(",")}`);
  return flags;
}

export type Query = (desc: Deno.PermissionDescriptor) => Deno.PermissionStatus | { state: string };

/** Each permission the running process lacks, as `read PATH`, `write PATH`, `net HOST` or `net (any host)`. */
export function missingPermissions(
  perms: PermissionSets,
  opts: MainOptions & { query?: Query } = {},
): string[] {
  const query = opts.query ?? ((d: Deno.PermissionDescriptor) => Deno.permissions.querySync(d));
  const need = mainNeeds(perms, opts);
  const missing: string[] = [];
  const has = (d: Deno.PermissionDescriptor) => query(d).state === "granted";
  for (const path of need.read) if (!has({ name: "read", path })) missing.push(`read ${path}`);
  for (const path of need.write) if (!has({ name: "write", path })) missing.push(`write ${path}`);
  if (need.anyHost) {
    if (!has({ name: "net" })) missing.push("net (any host)");
  } else {
    for (const host of need.net) if (!has({ name: "net", host })) missing.push(`net ${host}`);
  }
  for (const kind of need.sys) {
    if (!has({ name: "sys", kind: kind as Deno.SysPermissionDescriptor["kind"] })) {
      missing.push(`sys ${kind}`);
    }
  }
  return missing;
}

/** The paths not inside another one of the list (a directory's permission covers what is under it). */
function outermost(paths: string[]): string[] {
  const all = unique(paths);
  return all.filter((p) =>
    !all.some((q) => q !== p && (p.startsWith(`${q}/`) || (q === "." && !isAbsolute(p))))
  );
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}

function orFalse(items: string[]): string[] | false {
  return items.length ? items : false;
}
