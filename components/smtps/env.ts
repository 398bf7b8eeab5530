// What every session of one smtps section shares, prepared once when the server starts: the section's
// configuration, its flags as booleans, the TLS context and the AUTH credentials map (both read at start,
// so a missing file stops the start with an error naming it), and the test for clients allowed bare line
// ends. Touches: the TLS files and the credentials map of the section, read-only.

import ipaddr from "ipaddr.js";
import type { SmtpsConfig } from "../../config/types.ts";
import type { Endpoint } from "../protocol/endpoint.ts";
import { CredentialsMap } from "./auth_map.ts";
import { loadTls, type TlsService } from "./tls.ts";

export interface SessionEnv {
  server: SmtpsConfig;
  endpoint: Endpoint;
  cdbBase: string;
  now: () => Date;
  /** STARTTLS is offered when the section has a `tls { }` block. */
  tls?: TlsService;
  /** AUTH is possible when the section has an `auth { }` block. */
  credentials?: CredentialsMap;
  /** The AUTH mechanisms offered, and those that allow relaying, upper case (PLAIN, LOGIN). */
  mechanisms: string[];
  trustedMechanisms: string[];
  softBounce: boolean;
  eightBit: boolean;
  strictEhlo: boolean;
  /** True for a client listed in bare_newline_clients (it may end lines with a bare LF). */
  bareNewlineAllowed(ip: string): boolean;
  /** What qmgr last told every smtps section (shared): the queue's disk is low, MAIL gets 452 4.3.1. */
  queue: QueueStatus;
}

/** qmgr's notices, shared by every section of the worker. */
export interface QueueStatus {
  diskLow: boolean;
}

/** Builds the environment of one smtps section; throws an Error naming a file that cannot be read. */
export async function sessionEnv(
  server: SmtpsConfig,
  endpoint: Endpoint,
  cdbBase: string,
  queue: QueueStatus,
  now: () => Date = () => new Date(),
): Promise<SessionEnv> {
  const tls = server.tls ? await loadTls(server.tls) : undefined;
  let credentials: CredentialsMap | undefined;
  if (server.auth) {
    credentials = new CredentialsMap(server.auth.map_file);
    await credentials.check();
  }
  return {
    server,
    endpoint,
    cdbBase,
    now,
    tls,
    credentials,
    mechanisms: (server.auth?.mechanisms ?? []).map((m) => m.toUpperCase()),
    trustedMechanisms: (server.auth?.trusted_mechs ?? []).map((m) => m.toUpperCase()),
    softBounce: server.flags.includes("soft_bounce"),
    eightBit: server.flags.includes("8bitmime"),
    strictEhlo: server.flags.includes("strict_ehlo_checks"),
    bareNewlineAllowed: networkMatcher(server.bare_newline_clients),
    queue,
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
