// Loads what smar's policy reads from the configuration: the access map, the mailertable, the aliases
// and local users maps and the greylisting database; builds the Policy over them. On reload each map is
// loaded afresh; one that fails keeps its previous version (the reason is reported), so a broken map
// file never leaves smar without its maps. The local users are smar's local_user_map, else the lda's.
// Touches the map files and the greylisting database.

import type { Config, MapSpec } from "../../config/types.ts";
import { AccessMap } from "./access.ts";
import { Aliases } from "./aliases.ts";
import type { Resolver } from "./dns/resolver.ts";
import { Greylist } from "./greylist.ts";
import { loadMailertable, type Mailertable } from "./mailertable.ts";
import { openMap, type SmarMap } from "./maps.ts";
import { Policy } from "./policy.ts";
import { DEFAULT_PROTECTION } from "./protected.ts";

/** The loaded resources, each with the spec (or settings) it came from. */
export interface Loaded {
  access?: SmarMap;
  mailertable?: Mailertable;
  aliases?: SmarMap;
  localUsers?: SmarMap;
  greylist?: { key: string; db: Greylist };
}

type Slot = "access" | "mailertable" | "aliases" | "localUsers";

/** The map spec of each slot in `config`. */
export function mapSpecs(config: Config): Record<Slot, MapSpec | undefined> {
  const s = config.smar;
  return {
    access: s.access_map,
    mailertable: s.mailertable,
    aliases: s.aliases,
    localUsers: s.local_user_map ?? config.lda?.local_user_map,
  };
}

async function loadSlot(slot: Slot, spec: MapSpec): Promise<SmarMap | Mailertable> {
  switch (slot) {
    case "mailertable":
      return await loadMailertable(spec);
    case "aliases":
      return await openMap(spec, { format: "aliases" });
    case "localUsers":
      return await openMap(spec, { emptyValues: true });
    case "access":
      return await openMap(spec);
  }
}

/**
 * Loads everything `config` names. Without `previous` (start-up) the first failure throws; with it
 * (reload) a failing resource keeps its previous version and the reason goes to `problems`. Resources
 * of `previous` that were replaced or dropped are listed in `retired` for the caller to close.
 */
export async function loadAll(
  config: Config,
  previous?: Loaded,
  now?: () => number,
): Promise<{ loaded: Loaded; problems: string[]; retired: { close(): void }[] }> {
  const loaded: Loaded = {};
  const problems: string[] = [];
  const opened: { close(): void }[] = [];
  const specs = mapSpecs(config);
  try {
    for (const slot of ["access", "mailertable", "aliases", "localUsers"] as const) {
      const spec = specs[slot];
      if (!spec) continue;
      try {
        const r = await loadSlot(slot, spec);
        opened.push(r);
        (loaded as Record<Slot, unknown>)[slot] = r;
      } catch (err) {
        if (!previous) throw err;
        const kept = previous[slot];
        problems.push(`${(err as Error).message}${kept ? ": keeping the map loaded before" : ""}`);
        if (kept) (loaded as Record<Slot, unknown>)[slot] = kept;
      }
    }
    const g = config.smar.greylisting;
    if (g) {
      const key = JSON.stringify(g);
      if (previous?.greylist?.key === key) loaded.greylist = previous.greylist;
      else {
        try {
          const db = new Greylist(g, now);
          opened.push(db);
          loaded.greylist = { key, db };
        } catch (err) {
          if (!previous) throw err;
          problems.push(
            `${(err as Error).message}${previous.greylist ? ": keeping the database open before" : ""}`,
          );
          loaded.greylist = previous.greylist;
        }
      }
    }
  } catch (err) {
    for (const r of opened) r.close();
    throw err;
  }
  const kept = new Set<unknown>([
    loaded.access,
    loaded.mailertable,
    loaded.aliases,
    loaded.localUsers,
    loaded.greylist?.db,
  ]);
  const old = previous
    ? [previous.access, previous.mailertable, previous.aliases, previous.localUsers, previous.greylist?.db]
    : [];
  const retired = old.filter((r): r is NonNullable<typeof r> => r !== undefined && !kept.has(r));
  return { loaded, problems, retired };
}

/** The policy over `loaded` as `config` configures it. */
export function buildPolicy(config: Config, loaded: Loaded, resolver: Pick<Resolver, "query">): Policy {
  const s = config.smar;
  const mailertable = loaded.mailertable;
  const isLocal = (domain: string) =>
    mailertable?.find(domain, { catchAll: false })?.route.protocol === "lmtp";
  return new Policy({
    access: loaded.access ? new AccessMap(loaded.access) : undefined,
    mailertable,
    aliases: loaded.aliases
      ? new Aliases(loaded.aliases, {
        flags: s.alias_flags,
        delimiter: s.address_delimiter,
        hostname: config.hostname,
        isLocal,
      })
      : undefined,
    localUsers: loaded.localUsers,
    resolver,
    greylist: loaded.greylist?.db,
    dnsbl: s.dnsbl ?? [],
    protection: s.protected_recipients ?? DEFAULT_PROTECTION,
    delimiter: s.address_delimiter,
    hostname: config.hostname,
  });
}

/** Closes every resource of `loaded`. */
export function closeAll(loaded: Loaded): void {
  loaded.access?.close();
  loaded.mailertable?.close();
  loaded.aliases?.close();
  loaded.localUsers?.close();
  loaded.greylist?.db.close();
}
