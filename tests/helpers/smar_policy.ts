// Builds smar's Policy for unit tests from map texts held in memory and a fake resolver answering from a
// table (no sockets, no files): `policyOf({ access: "cltaddr:10 relay", mailertable: "...", dns })`.

import { parseMapText } from "../../components/maps/map_text.ts";
import { memoryMap } from "../../components/maps/load.ts";
import { syncMap } from "../../components/smar/maps.ts";
import { AccessMap } from "../../components/smar/access.ts";
import { Aliases } from "../../components/smar/aliases.ts";
import { Mailertable } from "../../components/smar/mailertable.ts";
import { Policy, type PolicyDeps } from "../../components/smar/policy.ts";
import { DEFAULT_PROTECTION } from "../../components/smar/protected.ts";
import type { DnsResult } from "../../components/smar/dns/resolver.ts";
import type { QueryType, ResourceRecord } from "../../components/smar/dns/packet.ts";
import type { Verdict } from "../../components/protocol/messages.ts";

/** A map from text; throws on a bad line. */
export function textMap(name: string, text: string, format: "plain" | "aliases" = "plain") {
  const { entries, errors } = parseMapText(text, name, { format, emptyValues: true });
  if (errors.length > 0) throw new Error(errors.join("; "));
  return memoryMap(name, name, entries);
}

/** DNS answers by `TYPE name`: records, "nxdomain", "nodata" or "temp". */
export type FakeDns = Record<string, ResourceRecord[] | "nxdomain" | "nodata" | "temp">;

/** A resolver answering from `table` (anything else is NXDOMAIN); records every question. */
export function fakeResolver(table: FakeDns) {
  const asked: string[] = [];
  return {
    asked,
    query(name: string, type: QueryType): Promise<DnsResult> {
      const key = `${type} ${name.toLowerCase()}`;
      asked.push(key);
      const a = table[key];
      if (a === undefined || a === "nxdomain") return Promise.resolve({ kind: "nxdomain" });
      if (a === "nodata") return Promise.resolve({ kind: "nodata" });
      if (a === "temp") return Promise.resolve({ kind: "temp", reason: `${key}: SERVFAIL` });
      return Promise.resolve({ kind: "answer", records: a });
    },
  };
}

export const A = (name: string, address: string): ResourceRecord => ({ type: "A", name, ttl: 60, address });
export const MX = (name: string, exchange: string, preference = 10): ResourceRecord => ({
  type: "MX",
  name,
  ttl: 60,
  preference,
  exchange,
});
export const PTR = (name: string, target: string): ResourceRecord => ({ type: "PTR", name, ttl: 60, target });

export interface PolicyTexts {
  access?: string;
  mailertable?: string;
  aliases?: string;
  aliasFlags?: string[];
  users?: string;
  dns?: FakeDns;
  more?: Partial<PolicyDeps>;
}

/** A Policy over the given map texts. */
export function policyOf(t: PolicyTexts): Policy & { dns: ReturnType<typeof fakeResolver> } {
  const resolver = fakeResolver(t.dns ?? {});
  const mailertable = t.mailertable !== undefined
    ? new Mailertable(textMap("mailertable", t.mailertable))
    : undefined;
  const isLocal = (d: string) => mailertable?.find(d, { catchAll: false })?.route.protocol === "lmtp";
  const policy = new Policy({
    access: t.access !== undefined ? new AccessMap(syncMap(textMap("access", t.access))) : undefined,
    mailertable,
    aliases: t.aliases !== undefined
      ? new Aliases(syncMap(textMap("aliases", t.aliases, "aliases")), {
        flags: t.aliasFlags ?? [],
        delimiter: "+",
        hostname: "localhost",
        isLocal,
      })
      : undefined,
    localUsers: t.users !== undefined ? syncMap(textMap("users", t.users)) : undefined,
    resolver,
    dnsbl: [],
    protection: DEFAULT_PROTECTION,
    delimiter: "+",
    hostname: "localhost",
    ...t.more,
  });
  return Object.assign(policy, { dns: resolver });
}

/** A verdict as one comparable line: `accept`, `reject 550 5.7.1 Relay access denied`, plus flags. */
export function show(v: Verdict): string {
  const parts: string[] = [v.action];
  if (v.reply) parts.push(`${v.reply.code} ${v.reply.status} ${v.reply.text}`);
  if (v.discard) parts.push("discard");
  if (v.dropRecipient) parts.push("drop");
  if (v.recipients) parts.push(`-> ${v.recipients.join(", ")}`);
  if (v.dataReply) parts.push(`DATA ${v.dataReply.code}`);
  return parts.join(" ");
}
