// Which nameservers smar asks, and what network permission that takes. Entries come from
// config.smar.nameserver (`ip` or `ip:port`, IPv6 as `[ip]:port`) or, when none is configured, from the
// `nameserver` lines of /etc/resolv.conf. Reads /etc/resolv.conf only when asked to.

import ipaddr from "ipaddr.js";

export interface Nameserver {
  ip: string;
  port: number;
  family: 4 | 6;
  /**
   * A validating resolver on a trusted path (smar's DNSSEC_validating_nameserver): its AD bit is
   * believed (DANE needs that); any other server's AD bit proves nothing.
   */
  validating?: boolean;
}

export const RESOLV_CONF = "/etc/resolv.conf";

/** Parses one configured nameserver entry; throws a RangeError on a bad one. */
export function parseNameserver(entry: string): Nameserver {
  const s = entry.trim();
  let host = s;
  let port = 53;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    host = v6[1];
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if (/^[^:]+:\d+$/.test(s)) {
    const i = s.lastIndexOf(":");
    host = s.slice(0, i);
    port = Number(s.slice(i + 1));
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Parse nameserver ${JSON.stringify(entry)}: bad port`);
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return { ip: host, port, family: 4 };
  if (ipaddr.IPv6.isValid(host)) return { ip: ipaddr.IPv6.parse(host).toString(), port, family: 6 };
  throw new RangeError(`Parse nameserver ${JSON.stringify(entry)}: not an IP address`);
}

/** The nameservers listed in resolv.conf text (IPv6 entries with a zone are skipped). */
export function parseResolvConf(text: string): Nameserver[] {
  const out: Nameserver[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m || m[1].includes("%")) continue;
    try {
      const ip = m[1];
      out.push(parseNameserver(ip.includes(":") && !ip.startsWith("[") ? `[${ip}]` : ip));
    } catch {
      // resolv.conf is not ours to police: skip what we cannot use.
    }
  }
  return out;
}

/** The configured nameservers, else those of /etc/resolv.conf, else 127.0.0.1 (as the C resolver does). */
export async function configuredNameservers(
  entries: string[],
  resolvConf = RESOLV_CONF,
): Promise<Nameserver[]> {
  if (entries.length > 0) return entries.map(parseNameserver);
  const found = parseResolvConf(await Deno.readTextFile(resolvConf));
  return found.length > 0 ? found : [{ ip: "127.0.0.1", port: 53, family: 4 }];
}

/**
 * Marks the servers that `entries` (smar's DNSSEC_validating_nameserver) name as validating; throws a
 * RangeError naming an entry that is not one of `servers` (a DANE set-up that would silently not work).
 */
export function markValidating(servers: Nameserver[], entries: string[]): Nameserver[] {
  const wanted = entries.map((e) => ({ entry: e, ns: parseNameserver(e) }));
  for (const w of wanted) {
    if (!servers.some((s) => s.ip === w.ns.ip && s.port === w.ns.port)) {
      throw new RangeError(
        `DNSSEC_validating_nameserver ${w.entry} is not one of the nameservers smar asks (${
          servers.map((s) => hostPort(s.ip, s.port)).join(", ")
        })`,
      );
    }
  }
  return servers.map((s) =>
    wanted.some((w) => w.ns.ip === s.ip && w.ns.port === s.port) ? { ...s, validating: true } : s
  );
}

/** `ip:port` as Deno's net permission spells it. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * The local address a UDP query socket binds to: loopback for a loopback nameserver, else the wildcard.
 * Binding an ephemeral port is checked by Deno as net access to `<bind address>:0`.
 */
export function bindAddress(ns: Nameserver): string {
  if (ns.family === 4) return ns.ip.startsWith("127.") ? "127.0.0.1" : "0.0.0.0";
  return ns.ip === "::1" ? "::1" : "::";
}

/** The net permission entries smar needs: each nameserver (UDP and TCP) plus its UDP bind address. */
export function nameserverNetPermissions(servers: Nameserver[]): string[] {
  const out = new Set<string>();
  for (const ns of servers) out.add(hostPort(ns.ip, ns.port));
  for (const ns of servers) out.add(hostPort(bindAddress(ns), 0));
  return [...out];
}
