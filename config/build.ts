// Builds the typed Config from smx.conf text: parses it, reads every section against config/schema.ts,
// and lays the values over defaultConfig(). Also checks what spans sections: map references name a
// declared map, smtps names are unique, no two servers listen on the same address and port. Reads the
// configuration file in loadConfig(); nothing else. Throws ConfigError.

import { defaultConfig, defaultLda, defaultMetrics, defaultSmtps, defaultSmtpsAuth } from "./defaults.ts";
import { DEFAULT_CONF } from "./default_conf.ts";
import { ConfigError, type Pos } from "./error.ts";
import { parse } from "./parser.ts";
import { type Block, readBlock } from "./read.ts";
import { buildMapSpec, declareMaps, type MapLookup } from "./maps.ts";
import { buildSmar, protectionOf, smarMap } from "./build_smar.ts";
import { buildMilter, buildPolicyService } from "./build_filters.ts";
import { DSN_FLAGS, TOP } from "./schema.ts";
import { FACILITIES, parseSyslogTarget } from "./log_settings.ts";
import { buildListenSocket, socketLabel, socketsClash } from "./listen.ts";
import { seedNotes, unitWarnings } from "./seed_options.ts";
import { configDirectory, resolveConfigPaths } from "./paths.ts";
import { processesProblem } from "./processes.ts";
import type {
  ComponentLogConfig,
  Config,
  LdaConfig,
  LdaTlsConfig,
  ListenSocket,
  MapSpec,
  MetricsConfig,
  QmgrConfig,
  ServiceOptions,
  SmtpsConfig,
} from "./types.ts";

/** Parses smx.conf text into a Config (defaults for what it does not set); `source` names it in errors. */
export function parseConfig(text: string, source: string): Config {
  const fail = (pos: Pos, detail: string): never => {
    throw new ConfigError(source, pos.line, pos.col, detail);
  };
  const top = readBlock(parse(text, source), TOP, source);
  const config = defaultConfig();
  const { SMAR_socket: _smar, SMTPC_socket: _smtpc, SMTPS_socket: _smtps, ...globals } = top.values;
  Object.assign(config, globals);
  config.source = source;

  // Map declarations at the top level and, as the README places them, inside smar.
  const smarMaps = top.blocks.filter((b) => b.keyword === "smar").flatMap((b) => b.blocks)
    .filter((b) => b.keyword === "map");
  const declared = declareMaps([...top.blocks.filter((b) => b.keyword === "map"), ...smarMaps], fail);
  const resolve = declared.resolve;

  const servers: { server: SmtpsConfig; block: Block; sockets: Pos[] }[] = [];
  let lda: Block | undefined;
  let metrics: Block | undefined;
  for (const block of top.blocks) {
    switch (block.keyword) {
      case "mcp":
        Object.assign(config.mcp, block.values);
        break;
      case "log":
        config.log = { ...config.log, ...block.values };
        checkLog(config.log, block, fail);
        break;
      case "qmgr":
        buildQmgr(config.qmgr, block, resolve, fail);
        break;
      case "smtpc":
        buildSmtpc(config, block, resolve, declared.lookup, fail);
        break;
      case "smar":
        buildSmar(config.smar, block, resolve, declared.lookup, fail);
        break;
      case "smtps":
        servers.push(buildSmtps(block, config.hostname, resolve, fail));
        break;
      case "map": // declared above
        break;
      case "lda":
        lda = block;
        config.lda = buildLda(block, config.hostname, resolve, fail);
        break;
      case "metrics":
        metrics = block;
        config.metrics = buildMetrics(block, fail);
        break;
    }
  }
  checkServers(servers, fail);
  if (lda) checkLdaSockets(config.lda!, lda, servers, fail);
  if (metrics) checkMetricsSockets(config, metrics, servers, fail);
  config.smtps = servers.length > 0 ? servers.map((s) => s.server) : [defaultSmtps("smtps", config.hostname)];
  shareProtection(config, servers, fail);
  const warnings = [...unitWarnings(top, source), ...seedNotes(top, source)].sort((a, b) =>
    position(a.message, source) - position(b.message, source)
  );
  if (warnings.length > 0) config.warnings = warnings;
  return config;
}

/** A warning's `line:col` after `source:` as one sortable number. */
function position(message: string, source: string): number {
  const [line, col] = message.slice(source.length + 1).split(":").map(Number);
  return line * 10_000 + col;
}

/** The smtpc section: its options, `tls { }`, and the authinfo map (`authinfo = MAP;` or a subsection). */
function buildSmtpc(
  config: Config,
  block: Block,
  resolve: (ref: unknown, option: string) => MapSpec | undefined,
  lookup: MapLookup,
  fail: Fail,
): void {
  const { authinfo, ...rest } = block.values;
  Object.assign(config.smtpc, rest);
  if (authinfo !== undefined) config.smtpc.authinfo = resolve(authinfo, "authinfo");
  for (const sub of block.blocks) {
    if (sub.keyword === "tls") Object.assign(config.smtpc.tls, sub.values);
    if (sub.keyword === "authinfo") config.smtpc.authinfo = smarMap(sub, lookup, fail);
  }
  applyLog(config.smtpc, block);
  const map = config.smtpc.authinfo;
  if (map && map.type !== "hash") {
    fail(block.node, `authinfo ${map.name} is a ${map.type} map, expected a hash map`);
  }
}

/** A component section's `log { facility; ident; options; }`, onto its ServiceOptions. */
function applyLog(service: ServiceOptions, block: Block): void {
  for (const sub of block.blocks) {
    if (sub.keyword === "log") service.log = { ...service.log, ...sub.values } as ComponentLogConfig;
  }
}

/**
 * protected_recipients written in smtps (where the README places it) is applied by smar, which serves
 * every smtps section: smar takes it unless its own section sets one; two smtps sections that disagree
 * are an error (smx keeps one protected_recipients for all servers).
 */
function shareProtection(
  config: Config,
  servers: { server: SmtpsConfig; block: Block }[],
  fail: Fail,
): void {
  const set = servers.filter((s) => s.server.protected_recipients !== undefined);
  if (set.length === 0 || config.smar.protected_recipients !== undefined) return;
  const first = set[0].server.protected_recipients!;
  const other = set.find((s) => JSON.stringify(s.server.protected_recipients) !== JSON.stringify(first));
  if (other) {
    const pos = other.block.blocks.find((b) => b.keyword === "protected_recipients")!.node;
    fail(
      pos,
      `protected_recipients of smtps ${other.server.name} differs from smtps ${set[0].server.name}'s, ` +
        "expected the same protected_recipients in every smtps section (smar applies one for all)",
    );
  }
  config.smar.protected_recipients = structuredClone(first);
}

/**
 * Reads the configuration file at `path`, or the built-in default configuration (source "<built-in>")
 * without one. The file's relative paths are taken from its directory (config/paths.ts). A file that
 * cannot be read is a ConfigError at 0:0 naming the file.
 */
export async function loadConfig(path?: string): Promise<Config> {
  if (path === undefined) return parseConfig(DEFAULT_CONF, "<built-in>");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(
      path,
      0,
      0,
      `cannot read the configuration file: ${reason}, expected a readable file`,
    );
  }
  return resolveConfigPaths(parseConfig(text, path), configDirectory(path));
}

type Fail = (pos: Pos, detail: string) => never;

/** The log section's facility is one syslog(3) knows, its syslog server one we can send to. */
function checkLog(log: NonNullable<Config["log"]>, block: Block, fail: Fail): void {
  if (log.facility !== undefined && FACILITIES[log.facility.toLowerCase()] === undefined) {
    fail(
      block.node,
      `unknown syslog facility ${log.facility}, expected one of ${Object.keys(FACILITIES).join(", ")}`,
    );
  }
  if (log.syslog_server !== undefined) {
    try {
      parseSyslogTarget(log.syslog_server);
    } catch (err) {
      fail(block.node, (err as Error).message);
    }
  }
}

function buildQmgr(
  qmgr: QmgrConfig,
  block: Block,
  resolve: (ref: unknown, option: string) => MapSpec | undefined,
  fail: Fail,
): void {
  const { conf, ...rest } = block.values;
  Object.assign(qmgr, rest);
  if (conf !== undefined) qmgr.conf = resolve(conf, "conf");
  applyLog(qmgr, block);
  for (const sub of block.blocks) {
    if (sub.keyword === "log") continue;
    const values = { ...sub.values };
    if (sub.keyword === "DSN_handling" && Array.isArray(values.flags)) {
      // A list of flag names becomes an object of booleans: the flags named are on, the others off.
      const named = values.flags as string[];
      values.flags = Object.fromEntries(DSN_FLAGS.map((f) => [f, named.includes(f)]));
    }
    if (sub.keyword === "DSN_handling" && values.max_errors_per_DSN !== undefined) {
      qmgr.max_errors_per_DSN = values.max_errors_per_DSN as number; // the README's place for it
      delete values.max_errors_per_DSN;
    }
    if (sub.keyword === "IQDB" && values.max_cache_entries !== undefined) {
      if (values.max_entries !== undefined) {
        fail(
          sub.node,
          `both max_entries and max_cache_entries in ${sub.label}, expected one of them (they are the same)`,
        );
      }
      values.max_entries = values.max_cache_entries; // the README's name
      delete values.max_cache_entries;
    }
    if (sub.keyword === "TLS_RPT") {
      qmgr.TLS_RPT = { report_interval: 24 * 3600 * 1000, ...values } as QmgrConfig["TLS_RPT"];
      continue;
    }
    Object.assign(
      qmgr[sub.keyword as "IBDB" | "DEFEDB" | "IQDB" | "DSN_handling" | "smtpc" | "smtps"],
      values,
    );
  }
}

/** An inline map section (config/maps.ts checks its options against its type). */
function mapSpec(block: Block, name: string, fail: Fail): MapSpec {
  return buildMapSpec(block, name, fail);
}

function requireOptions(block: Block, options: string[], fail: Fail): void {
  for (const option of options) {
    if (block.values[option] === undefined) {
      fail(block.node, `missing option ${option} in ${block.label}, expected ${option} = value;`);
    }
  }
}

function buildSmtps(
  block: Block,
  hostname: string,
  resolve: (ref: unknown, option: string) => MapSpec | undefined,
  fail: Fail,
) {
  const server = defaultSmtps(block.name ?? "smtps", hostname);
  Object.assign(server, block.values);
  applyLog(server, block);
  const problem = processesProblem(server);
  if (problem) {
    const option = ["processes", "min_processes", "max_processes"].find((o) => block.values[o] !== undefined);
    fail(
      block.node.entries.find((e) => e.kind === "option" && e.name.toLowerCase() === option) ?? block.node,
      problem,
    );
  }
  const sockets: Pos[] = [block.node];
  const listen = block.blocks.filter((sub) => sub.keyword === "listen_socket");
  if (listen.length > 0) {
    server.listen_socket = listen.map((sub) => buildListenSocket(sub, fail));
    sockets.splice(0, 1, ...listen.map((sub) => sub.node));
  }
  for (const sub of block.blocks) {
    if (sub.keyword === "tls") {
      requireOptions(sub, ["cert_file", "key_file"], fail);
      server.tls = { cert_file: "", key_file: "", flags: [], ...sub.values };
    } else if (sub.keyword === "auth") {
      // Without map_file (the README leaves passwords to Cyrus SASL) the section is kept, AUTH not offered.
      const auth = { ...defaultSmtpsAuth((sub.values.map_file as string | undefined) ?? ""), ...sub.values };
      if (sub.values.trusted_mechs === undefined) auth.trusted_mechs = auth.mechanisms; // all offered ones
      server.auth = auth;
    } else if (sub.keyword === "policy_milter") {
      (server.policy_milter ??= []).push(buildMilter(sub, fail));
    } else if (sub.keyword === "policy_service") {
      (server.policy_service ??= []).push(buildPolicyService(sub, fail));
    } else if (sub.keyword === "authentication") {
      const { flags, authserv_id } = sub.values as { flags?: string[]; authserv_id?: string };
      // RFC 8601 2.5: the authserv-id is a value (a token here: a host name, as is usual).
      if (authserv_id !== undefined && !/^[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+$/.test(authserv_id)) {
        fail(
          sub.node,
          `bad authserv_id ${JSON.stringify(authserv_id)} in ${sub.label}, expected a host name`,
        );
      }
      server.authentication = {
        flags: flags ?? ["spf", "dkim", "dmarc", "arc"],
        authserv_id: authserv_id ?? "",
      };
      const seal = sub.blocks.find((b) => b.keyword === "arc_seal");
      if (seal) server.authentication.arc_seal = { map: keyMap(seal, resolve, fail) };
    } else if (sub.keyword === "dkim_signing") {
      server.dkim_signing = { map: keyMap(sub, resolve, fail) };
    } else if (sub.keyword === "protected_recipients") {
      server.protected_recipients = protectionOf(sub);
    }
  }
  if (server.authentication && server.authentication.authserv_id === "") {
    server.authentication.authserv_id = server.hostname;
  }
  return { server, block, sockets };
}

/** The key map of `dkim_signing { map = NAME; }` or `arc_seal { }`: a declared hash map with a file. */
function keyMap(block: Block, resolve: (ref: unknown, option: string) => MapSpec | undefined, fail: Fail) {
  requireOptions(block, ["map"], fail);
  const spec = resolve(block.values.map, "map")!;
  if (spec.type !== "hash" || spec.file === "") {
    fail(
      block.node,
      `key map ${spec.name} of ${block.label} is a ${spec.type} map, expected a hash map with a file`,
    );
  }
  return spec;
}

/** Server names must be unique; no two sockets may share a port on the same (or a wildcard) address. */
function checkServers(servers: { server: SmtpsConfig; block: Block; sockets: Pos[] }[], fail: Fail): void {
  const names = new Set<string>();
  const bound: { socket: ListenSocket; owner: string }[] = [];
  for (const { server, block, sockets } of servers) {
    const key = server.name.toLowerCase();
    if (names.has(key)) {
      fail(
        block.node.name ?? block.node,
        `duplicate smtps section ${server.name}, expected a unique name for each smtps section`,
      );
    }
    names.add(key);
    server.listen_socket.forEach((socket, i) => {
      const clash = bound.find((b) => socketsClash(b.socket, socket));
      if (clash) {
        const at = socketLabel(socket);
        fail(
          sockets[i],
          `listen socket ${at} of smtps ${server.name} is already used by smtps ${clash.owner}, expected another address or port`,
        );
      }
      bound.push({ socket, owner: server.name });
    });
  }
}

function buildLda(
  block: Block,
  hostname: string,
  resolve: (ref: unknown, option: string) => MapSpec | undefined,
  fail: Fail,
): LdaConfig {
  const lda = defaultLda(hostname);
  const { local_user_map, ...rest } = block.values;
  Object.assign(lda, rest);
  applyLog(lda, block);
  if (local_user_map !== undefined) lda.local_user_map = resolve(local_user_map, "local_user_map");
  const sockets = block.blocks.filter((b) => b.keyword === "listen_socket");
  if (sockets.length > 0) lda.listen_socket = sockets.map((sub) => buildListenSocket(sub, fail));
  for (const sub of block.blocks.filter((b) => b.keyword === "local_user_map")) {
    lda.local_user_map = mapSpec(sub, sub.keyword, fail);
  }
  for (const sub of block.blocks.filter((b) => b.keyword === "tls")) {
    requireOptions(sub, ["cert_file", "key_file"], fail);
    const tls = { cert_file: "", key_file: "", flags: [], ...sub.values } as LdaTlsConfig;
    // LMTP's clients are our own smtpc (lmtps: routes): only TLS from the first byte is built.
    if (!tls.flags.includes("implicit")) {
      fail(sub.node, "tls of lda needs flags = { implicit }: the lda offers no STARTTLS, only implicit TLS");
    }
    lda.tls = tls;
  }
  return lda;
}

function buildMetrics(block: Block, fail: Fail): MetricsConfig {
  const metrics = defaultMetrics();
  Object.assign(metrics, block.values);
  applyLog(metrics, block);
  const sockets = block.blocks.filter((b) => b.keyword === "listen_socket");
  if (sockets.length > 0) metrics.listen_socket = sockets.map((sub) => buildListenSocket(sub, fail));
  return metrics;
}

/** The metrics worker must not listen where an smtps section or the lda does. */
function checkMetricsSockets(
  config: Config,
  block: Block,
  servers: { server: SmtpsConfig }[],
  fail: Fail,
): void {
  const sockets = block.blocks.filter((b) => b.keyword === "listen_socket");
  const taken = [
    ...servers.flatMap(({ server }) =>
      server.listen_socket.map((s) => ({ s, owner: `smtps ${server.name}` }))
    ),
    ...(config.lda?.listen_socket ?? []).map((s) => ({ s, owner: "lda" })),
  ];
  config.metrics!.listen_socket.forEach((socket, i) => {
    const clash = taken.find((t) => socketsClash(t.s, socket));
    if (clash) {
      fail(
        sockets[i]?.node ?? block.node,
        `listen socket ${
          socketLabel(socket)
        } of metrics is already used by ${clash.owner}, expected another address or port`,
      );
    }
  });
}

/** The lda must not listen where an smtps section does. */
function checkLdaSockets(
  lda: LdaConfig,
  block: Block,
  servers: { server: SmtpsConfig }[],
  fail: Fail,
): void {
  const sockets = block.blocks.filter((b) => b.keyword === "listen_socket");
  lda.listen_socket.forEach((socket, i) => {
    for (const { server } of servers) {
      if (server.listen_socket.some((s) => socketsClash(s, socket))) {
        fail(
          sockets[i]?.node ?? block.node,
          `listen socket ${
            socketLabel(socket)
          } of lda is already used by smtps ${server.name}, expected another address or port`,
        );
      }
    }
  });
}
