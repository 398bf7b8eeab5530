// What smar's maps and greylisting need from its permission set, computed from the configuration in
// one place (components/mcp/permissions.ts adds the nameservers): read on every map file (members of
// sequences too, the passwd file, the lda's users map when smar has none), read, write and
// `unix:<absolute path>` net on unix sockets of socket maps (Deno asks all three to connect), net to
// `address:port` of the others, read and write on the greylisting
// database; with MTA_STS, read and write on its policy cache, read on its CAcert_file, and net to port
// 443 (MTA_STS.HTTPS_port) of every IPv4 host, `0.0.0.0/0:443`, for the policy hosts; the same port
// with qmgr's TLS_RPT (smar POSTs its https: reports). Pure; touches nothing.

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
  const sts = config.smar.MTA_STS;
  if (sts) {
    needs.read.push(sts.cache_file);
    needs.write.push(sts.cache_file);
    if (sts.CAcert_file) needs.read.push(sts.CAcert_file);
    // A policy host can be anywhere: any IPv4 address, on the HTTPS port only (as smtpc's port 25).
    needs.net.push(`0.0.0.0/0:${sts.HTTPS_port}`);
  }
  // TLS-RPT's https: reports are POSTed by smar (qmgr has no network): port 443 too.
  if (config.qmgr.TLS_RPT) needs.net.push(`0.0.0.0/0:${sts?.HTTPS_port ?? 443}`);
  const unique = (xs: string[]) => [...new Set(xs)];
  return { read: unique(needs.read), write: unique(needs.write), net: unique(needs.net) };
}
