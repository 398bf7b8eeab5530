// What smar's maps and greylisting need from its permission set, computed from the configuration in
// one place (components/mcp/permissions.ts adds the nameservers): read on every map file (members of
// sequences too, the passwd file, the lda's users map when smar has none), read, write and
// `unix:<absolute path>` net on unix sockets of socket maps (Deno asks all three to connect), net to
// `address:port` of the others, read and write on the greylisting
// database. Pure; touches nothing.

import { resolve } from "node:path";
import type { Config, MapSpec } from "../../config/types.ts";
import { hostPort } from "./dns/nameservers.ts";
import { mapSpecs } from "./load.ts";

export interface SmarNeeds {
  read: string[];
  write: string[];
  net: string[];
}

/** The files, sockets and hosts smar's maps and greylisting database need. */
export function smarNeeds(config: Config): SmarNeeds {
  const needs: SmarNeeds = { read: [], write: [], net: [] };
  const add = (spec: MapSpec | undefined) => {
    if (!spec) return;
    switch (spec.type) {
      case "hash":
      case "passwd":
        needs.read.push(spec.file);
        break;
      case "socket":
        if (spec.path !== undefined) {
          needs.read.push(spec.path);
          needs.write.push(spec.path);
          needs.net.push(`unix:${resolve(spec.path)}`);
        } else needs.net.push(hostPort(spec.address!, spec.port!));
        break;
      case "sequence":
        spec.maps?.forEach(add);
        break;
    }
  };
  const specs = mapSpecs(config);
  [specs.mailertable, specs.access, specs.aliases, specs.localUsers].forEach(add);
  const grey = config.smar.greylisting;
  if (grey) {
    needs.read.push(grey.main_DB_name);
    needs.write.push(grey.main_DB_name);
  }
  const unique = (xs: string[]) => [...new Set(xs)];
  return { read: unique(needs.read), write: unique(needs.write), net: unique(needs.net) };
}
