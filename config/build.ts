// Builds the typed Config from smx.conf text: parses it, reads every section against config/schema.ts,
// and lays the values over defaultConfig(). Also checks what spans sections: map references name a
// declared map, smtps names are unique, no two servers listen on the same address and port. Reads the
// configuration file in loadConfig(); nothing else. Throws ConfigError.

import { defaultConfig, defaultLda, defaultSmtps, defaultSmtpsAuth } from "./defaults.ts";
import { DEFAULT_CONF } from "./default_conf.ts";
import { ConfigError, type Pos } from "./error.ts";
import { parse } from "./parser.ts";
import { type Block, readBlock } from "./read.ts";
import { buildMapSpec, declareMaps } from "./maps.ts";
import { buildSmar } from "./build_smar.ts";
import { buildMilter, buildPolicyService } from "./build_filters.ts";
import { DSN_FLAGS, TOP } from "./schema.ts";
import { FACILITIES, parseSyslogTarget } from "./log_settings.ts";
import type { Config, LdaConfig, ListenSocket, MapSpec, QmgrConfig, SmtpsConfig } from "./types.ts";

/** Parses smx.conf text into a Config (defaults for what it does not set); `source` names it in errors. */
export function parseConfig(text: string, source: string): Config {
  const fail = (pos: Pos, detail: string): never => {
    throw new ConfigError(source, pos.line, pos.col, detail);
  };
  const top = readBlock(parse(text, source), TOP, source);
  const config = defaultConfig();
  Object.assign(config, top.values);
  config.source = source;

  const declared = declareMaps(top.blocks.filter((b) => b.keyword === "map"), fail);
  const resolve = declared.resolve;

  const servers: { server: SmtpsConfig; block: Block; sockets: Pos[] }[] = [];
  let lda: Block | undefined;
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
        buildQmgr(config.qmgr, block, resolve);
        break;
      case "smtpc":
        Object.assign(config.smtpc, block.values);
        for (const sub of block.blocks) Object.assign(config.smtpc.tls, sub.values); // tls { }
        break;
      case "smar":
        buildSmar(config.smar, block, resolve, declared.lookup, fail);
        break;
      case "smtps":
        servers.push(buildSmtps(block, config.hostname, resolve, fail));
        break;
      case "lda":
        lda = block;
        config.lda = buildLda(block, config.hostname, resolve, fail);
        break;
    }
  }
  checkServers(servers, fail);
  if (lda) checkLdaSockets(config.lda!, lda, servers, fail);
  config.smtps = servers.length > 0 ? servers.map((s) => s.server) : [defaultSmtps("smtps", config.hostname)];
  return config;
}

/**
 * Reads the configuration file at `path`, or the built-in default configuration (source "<built-in>")
 * without one. A file that cannot be read is a ConfigError at 0:0 naming the file.
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
  return parseConfig(text, path);
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
): void {
  const { conf, ...rest } = block.values;
  Object.assign(qmgr, rest);
  if (conf !== undefined) qmgr.conf = resolve(conf, "conf");
  for (const sub of block.blocks) {
    const values = { ...sub.values };
    if (sub.keyword === "DSN_handling" && Array.isArray(values.flags)) {
      // A list of flag names becomes an object of booleans: the flags named are on, the others off.
      const named = values.flags as string[];
      values.flags = Object.fromEntries(DSN_FLAGS.map((f) => [f, named.includes(f)]));
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
  const sockets: Pos[] = [block.node];
  const listen = block.blocks.filter((sub) => sub.keyword === "listen_socket");
  if (listen.length > 0) {
    server.listen_socket = listen.map((sub): ListenSocket => {
      requireOptions(sub, ["address", "port"], fail);
      return { type: "inet", address: sub.values.address as string, port: sub.values.port as number };
    });
    sockets.splice(0, 1, ...listen.map((sub) => sub.node));
  }
  for (const sub of block.blocks) {
    if (sub.keyword === "tls") {
      requireOptions(sub, ["cert_file", "key_file"], fail);
      server.tls = { cert_file: "", key_file: "", flags: [], ...sub.values };
    } else if (sub.keyword === "auth") {
      requireOptions(sub, ["map_file"], fail);
      const auth = { ...defaultSmtpsAuth(sub.values.map_file as string), ...sub.values };
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
      const clash = bound.find((b) =>
        b.socket.port === socket.port && overlaps(b.socket.address, socket.address)
      );
      if (clash) {
        const at = `${socket.address}:${socket.port}`;
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
  if (local_user_map !== undefined) lda.local_user_map = resolve(local_user_map, "local_user_map");
  const sockets = block.blocks.filter((b) => b.keyword === "listen_socket");
  if (sockets.length > 0) {
    lda.listen_socket = sockets.map((sub): ListenSocket => {
      requireOptions(sub, ["address", "port"], fail);
      return { type: "inet", address: sub.values.address as string, port: sub.values.port as number };
    });
  }
  for (const sub of block.blocks.filter((b) => b.keyword === "local_user_map")) {
    lda.local_user_map = mapSpec(sub, sub.keyword, fail);
  }
  return lda;
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
      if (server.listen_socket.some((s) => s.port === socket.port && overlaps(s.address, socket.address))) {
        fail(
          sockets[i]?.node ?? block.node,
          `listen socket ${socket.address}:${socket.port} of lda is already used by smtps ${server.name}, expected another address or port`,
        );
      }
    }
  });
}

function overlaps(a: string, b: string): boolean {
  const wildcard = (x: string) => x === "0.0.0.0" || x === "::";
  return a === b || wildcard(a) || wildcard(b);
}
