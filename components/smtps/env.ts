// What every session of one smtps section shares, prepared once when the server starts: the section's
// configuration, its flags as booleans, the TLS context and the AUTH credentials map (both read at start,
// so a missing file stops the start with an error naming it), and the test for clients allowed bare line
// ends. Touches: the TLS files and the credentials map of the section, read-only.

import ipaddr from "ipaddr.js";
import type { SmtpsConfig } from "../../config/types.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { log } from "../util/log.ts";
import { CredentialsMap } from "./auth_map.ts";
import { DiskSpace, PROBE_REUSE_MS } from "./disk_space.ts";
import { chooseMechanisms } from "./sasl_mechanisms.ts";
import { loadTls, type TlsService } from "./tls.ts";
import { KeyRing, type SigningKey } from "./mailauth/keys.ts";
import { type MailauthResolver, smarResolver } from "./mailauth/resolver.ts";
import type { AuthChecks } from "./mailauth/verify.ts";

/** The section's mail authentication (`authentication { }`), prepared. */
export interface MailauthEnv {
  checks: AuthChecks;
  authservId: string;
  /** DNS through smar. */
  resolver: MailauthResolver;
  /** The ARC sealing key (`arc_seal { map }`): the entry for the authserv-id's domain, else the first. */
  seal?: SigningKey;
}
import type { PolicyServiceConfig } from "../../config/types.ts";
import { PolicyClient } from "./policy/client.ts";
import { SmtpsCounters } from "./counters.ts";

export interface SessionEnv {
  server: SmtpsConfig;
  endpoint: Endpoint;
  cdbBase: string;
  now: () => Date;
  /** STARTTLS is offered when the section has a `tls { }` block. */
  tls?: TlsService;
  /** AUTH is possible when the section has an `auth { }` block. */
  credentials?: CredentialsMap;
  /** Mail authentication of what arrives, when the section has `authentication { }`. */
  mailauth?: MailauthEnv;
  /** DKIM keys for what permitted clients send (`dkim_signing { map }`). */
  signing?: KeyRing;
  /**
   * The AUTH mechanisms offered (sasl_mechanisms.ts: configured, allowed by the Cyrus flags, served for
   * every user of the map), strongest first, and those that allow relaying; upper case.
   */
  mechanisms: string[];
  trustedMechanisms: string[];
  softBounce: boolean;
  eightBit: boolean;
  strictEhlo: boolean;
  /** True for a client listed in bare_newline_clients (it may end lines with a bare LF). */
  bareNewlineAllowed(ip: string): boolean;
  /** The section's policy services, in order, each with its shared connections. */
  policyServices: { config: PolicyServiceConfig; client: PolicyClient }[];
  /** What qmgr last told every smtps section (shared): the queue's disk is low, MAIL gets 452 4.3.1. */
  queue: QueueStatus;
  /** Which of several smtps workers serves the session (`smtps@2`), for its log lines; absent with one. */
  worker?: string;
  /** The worker's counters for the metrics worker (shared by every section). */
  counters: SmtpsCounters;
}

/** The state of the queue's disk, shared by every section of the worker. */
export interface QueueStatus {
  /** qmgr's last notice said the disk is low. */
  diskLow: boolean;
  /** smtps's own checks of the CDB's file system, before each message and while it is written. */
  space: DiskSpace;
}

/** The queue status of a worker whose CDB is `cdbBase`, with qmgr's thresholds. */
export function queueStatus(cdbBase: string, min: number, ok: number): QueueStatus {
  return { diskLow: false, space: new DiskSpace({ path: cdbBase, min, ok, maxAge: PROBE_REUSE_MS }) };
}

/** Builds the environment of one smtps section; throws an Error naming a file that cannot be read. */
export async function sessionEnv(
  server: SmtpsConfig,
  endpoint: Endpoint,
  cdbBase: string,
  queue: QueueStatus,
  now: () => Date = () => new Date(),
  counters: SmtpsCounters = new SmtpsCounters(),
): Promise<SessionEnv> {
  const tls = server.tls ? await loadTls(server.tls) : undefined;
  let credentials: CredentialsMap | undefined;
  let mechanisms: string[] = [];
  if (server.auth && server.auth.map_file !== "") { // no map_file: AUTH is not offered
    credentials = new CredentialsMap(server.auth.map_file);
    await credentials.check();
    const choice = chooseMechanisms(
      server.auth.mechanisms,
      server.auth.flags,
      await credentials.servedByAll(),
    );
    for (const note of choice.notes) log.info("smtps", `${server.name}: AUTH ${note}`);
    mechanisms = choice.offered;
  }
  const a = server.authentication;
  let mailauth: MailauthEnv | undefined;
  if (a) {
    const seal = a.arc_seal ? await KeyRing.load(a.arc_seal.map) : undefined;
    const sealKey = seal?.find(a.authserv_id) ?? seal?.all()[0];
    mailauth = {
      checks: {
        spf: a.flags.includes("spf"),
        dkim: a.flags.includes("dkim"),
        dmarc: a.flags.includes("dmarc"),
        arc: a.flags.includes("arc"),
      },
      authservId: a.authserv_id,
      resolver: smarResolver(endpoint),
      ...(sealKey ? { seal: sealKey } : {}),
    };
  }
  const signing = server.dkim_signing ? await KeyRing.load(server.dkim_signing.map) : undefined;
  return {
    server,
    endpoint,
    cdbBase,
    now,
    tls,
    credentials,
    ...(mailauth ? { mailauth } : {}),
    ...(signing ? { signing } : {}),
    mechanisms,
    trustedMechanisms: (server.auth?.trusted_mechs ?? []).map((m) => m.toUpperCase()),
    softBounce: server.flags.includes("soft_bounce"),
    eightBit: server.flags.includes("8bitmime"),
    strictEhlo: server.flags.includes("strict_ehlo_checks"),
    bareNewlineAllowed: networkMatcher(server.bare_newline_clients),
    policyServices: (server.policy_service ?? []).map((config) => ({
      config,
      client: new PolicyClient(config.socket, config.timeout),
    })),
    queue,
    counters,
  };
}

/** A test for "is this IP in one of these addresses or CIDR networks" (IPv4-mapped IPv6 unwrapped). */
export function networkMatcher(entries: string[]): (ip: string) => boolean {
  if (entries.length === 0) return () => false;
  const nets = entries.map((e) =>
    e.includes("/") ? ipaddr.parseCIDR(e) : ipaddr.parseCIDR(`${e}/${e.includes(":") ? 128 : 32}`)
  );
  return (ip: string) => {
    if (!ipaddr.isValid(ip)) return false;
    let addr = ipaddr.parse(ip);
    if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      addr = (addr as ipaddr.IPv6).toIPv4Address();
    }
    return nets.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
  };
}
