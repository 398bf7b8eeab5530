// The mailertable: routes that override MX lookups for some domains. Keys are looked up as in sendmail X:
// the full domain, then its parent domains with a leading dot (`host.sub.dom`, `.sub.dom`, `.dom`), then
// `.` as the catch-all. Values follow the sendmail X README (3.9.3.2): `[port^][esmtp:|lmtp:]hostlist`,
// plus smx's `smtps:` and `lmtps:` (the same over TLS from the first byte);
// hosts separated by whitespace or commas, each `[IPv4]` or `[IPv6:...]` (used as is) or a hostname
// (resolved by its A records, by AAAA then A when smtpc's ipv6 flag is on; never by MX); `lmtp:` without a
// host means smtpc's LMTP unix socket (`LMTP_socket`, sendmail X README 3.11). Reads only the
// mailertable's map file.

import type { MapSpec } from "../../config/types.ts";
import { loadMap, type MapLookup } from "../maps/load.ts";
import { isQueryableName, parseDomain } from "./domain.ts";
import { domainKeys } from "./keys.ts";

export type MailertableHost =
  | { kind: "literal"; address: string }
  | { kind: "name"; name: string }
  | { kind: "lmtp_socket" };

export interface MailertableRoute {
  protocol: "esmtp" | "lmtp";
  port: number;
  hosts: MailertableHost[];
  /** `smtps:` / `lmtps:`: TLS from the first byte (RFC 8314 style), no STARTTLS. */
  implicitTls?: boolean;
}

export const DEFAULT_PORT = { esmtp: 25, lmtp: 24 } as const;

/**
 * The protocol words: sendmail X's `esmtp:` and `lmtp:`, and smx's `smtps:` (SMTP over TLS from the first
 * byte, port 465 unless given: a smart host's submissions port) and `lmtps:` (LMTP over TLS, port 24 unless
 * given: the lda's implicit-TLS listener).
 */
const PROTOCOLS: Record<string, { protocol: "esmtp" | "lmtp"; port: number; implicitTls: boolean }> = {
  esmtp: { protocol: "esmtp", port: DEFAULT_PORT.esmtp, implicitTls: false },
  lmtp: { protocol: "lmtp", port: DEFAULT_PORT.lmtp, implicitTls: false },
  smtps: { protocol: "esmtp", port: 465, implicitTls: true },
  lmtps: { protocol: "lmtp", port: DEFAULT_PORT.lmtp, implicitTls: true },
};

/** Parses a mailertable value; throws a RangeError saying what is wrong. */
export function parseMailertableRhs(rhs: string): MailertableRoute {
  let rest = rhs.trim();
  let port: number | undefined;
  const portMatch = /^(\d+)\^/.exec(rest);
  if (portMatch) {
    port = Number(portMatch[1]);
    if (port < 1 || port > 65535) throw new RangeError(`bad port ${portMatch[1]}`);
    rest = rest.slice(portMatch[0].length);
  } else if (rest.includes("^")) {
    throw new RangeError(`bad port before '^' in ${JSON.stringify(rhs)}`);
  }
  let proto = PROTOCOLS.esmtp;
  const protoMatch = /^([A-Za-z]+):/.exec(rest);
  if (protoMatch) {
    const p = PROTOCOLS[protoMatch[1].toLowerCase()];
    if (!p) throw new RangeError(`unknown protocol ${protoMatch[1]}, expected esmtp, lmtp, smtps or lmtps`);
    proto = p;
    rest = rest.slice(protoMatch[0].length);
  }
  const { protocol, implicitTls } = proto;
  const words = rest.split(/[\s,]+/).filter((w) => w !== "");
  if (words.length === 0 && protocol === "lmtp" && !implicitTls && protoMatch) {
    return { protocol, port: port ?? proto.port, hosts: [{ kind: "lmtp_socket" }] };
  }
  if (words.length === 0) throw new RangeError(`no host in ${JSON.stringify(rhs)}`);
  const route: MailertableRoute = { protocol, port: port ?? proto.port, hosts: words.map(parseHost) };
  if (implicitTls) route.implicitTls = true;
  return route;
}

function parseHost(word: string): MailertableHost {
  if (word.startsWith("[")) {
    const d = parseDomain(word);
    if (d?.kind !== "literal") throw new RangeError(`bad address literal ${word}`);
    return { kind: "literal", address: d.address };
  }
  if (!isQueryableName(word)) throw new RangeError(`bad host name ${JSON.stringify(word)}`);
  return { kind: "name", name: word.toLowerCase().replace(/\.$/, "") };
}

export class Mailertable {
  constructor(readonly map: MapLookup) {}

  /**
   * The route for `domain` and the key that matched; the catch-all `.` only when `catchAll` is set
   * (relaying decisions must not treat every domain as local because of it).
   */
  find(domain: string, opts: { catchAll: boolean }): { key: string; route: MailertableRoute } | undefined {
    const keys = domainKeys(domain);
    if (opts.catchAll) keys.push(".");
    for (const key of keys) {
      const rhs = this.map.lookup(key);
      if (rhs === undefined) continue;
      try {
        return { key, route: parseMailertableRhs(rhs) };
      } catch (err) {
        // Checked at load time; a SQLite map swapped underneath us could still hold garbage.
        throw new Error(`Read mailertable ${this.map.file}: ${key}: ${(err as Error).message}`);
      }
    }
    return undefined;
  }

  close(): void {
    this.map.close();
  }
}

/** Loads and checks every entry of the mailertable; throws an Error naming the first bad entry. */
export async function loadMailertable(spec: MapSpec): Promise<Mailertable> {
  const map = await loadMap(spec);
  try {
    for (const [key, rhs] of map.entries()) checkEntry(spec, key, rhs);
  } catch (err) {
    map.close();
    throw err;
  }
  return new Mailertable(map);
}

function checkEntry(spec: MapSpec, key: string, rhs: string): MailertableRoute {
  try {
    return parseMailertableRhs(rhs);
  } catch (err) {
    throw new Error(`Read mailertable ${spec.file}: ${key}: ${(err as Error).message}`);
  }
}

/** Every port the mailertable routes to, always with 25 (MX routes), sorted; for smtpc's permission. */
export async function mailertablePorts(spec: MapSpec): Promise<number[]> {
  const map = await loadMap(spec);
  const ports = new Set<number>([25]);
  try {
    for (const [key, rhs] of map.entries()) ports.add(checkEntry(spec, key, rhs).port);
  } finally {
    map.close();
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * Every IPv6 address literal the mailertable routes to (`[IPv6:2001:db8::1]`), with its port: smtpc's
 * permission names each of these exactly when IPv6 delivery in general is off.
 */
export async function mailertableIpv6Literals(spec: MapSpec): Promise<{ address: string; port: number }[]> {
  const map = await loadMap(spec);
  const out = new Map<string, { address: string; port: number }>();
  try {
    for (const [key, rhs] of map.entries()) {
      const route = checkEntry(spec, key, rhs);
      for (const h of route.hosts) {
        if (h.kind === "literal" && h.address.includes(":")) {
          out.set(`[${h.address}]:${route.port}`, { address: h.address, port: route.port });
        }
      }
    }
  } finally {
    map.close();
  }
  return [...out.values()];
}

/** Whether an entry of the mailertable is `lmtp:` without a host (smtpc's LMTP_socket). */
export async function mailertableUsesLmtpSocket(spec: MapSpec): Promise<boolean> {
  const map = await loadMap(spec);
  try {
    for (const [key, rhs] of map.entries()) {
      if (checkEntry(spec, key, rhs).hosts.some((h) => h.kind === "lmtp_socket")) return true;
    }
    return false;
  } finally {
    map.close();
  }
}
