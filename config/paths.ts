// Where relative paths of a configuration file point: every path the configuration names (queue
// directories, sockets, maps, TLS files, the log directory, the greylisting database, the mail root) is
// taken relative to the directory of the configuration file, so a configuration means the same whatever
// the current directory (sendmail X README 3.6 takes maps and TLS files from the configuration
// directory; smx takes the queue and socket paths from there too, as it is not started inside a queue
// directory). The built-in configuration keeps its paths relative to the working directory (the
// repository under `deno task start`). Pure: rewrites the Config in place, touches nothing.

import { dirname, isAbsolute, resolve } from "node:path";
import type { Config, FilterSocket, ListenSocket, MapSpec } from "./types.ts";

/** The directory relative paths of the configuration file at `file` are taken from (absolute). */
export function configDirectory(file: string): string {
  return dirname(resolve(file));
}

/** `path` taken from `base` when relative ("" stays "": no file). */
export function underBase(base: string, path: string): string {
  return path === "" || isAbsolute(path) ? path : resolve(base, path);
}

/** Rewrites every relative path of `config` to an absolute one under `base`; returns config. */
export function resolveConfigPaths(config: Config, base: string): Config {
  const at = (p: string) => underBase(base, p);
  /** Rewrites `obj[key]` when it is set (no key is added). */
  const fix = <T extends object>(obj: T, key: keyof T & string) => {
    const v = (obj as Record<string, unknown>)[key];
    if (typeof v === "string") (obj as Record<string, unknown>)[key] = at(v);
  };
  const seen = new Set<MapSpec>();
  const map = (spec: MapSpec | undefined) => {
    if (!spec || seen.has(spec)) return;
    seen.add(spec);
    if (spec.file) spec.file = at(spec.file);
    if (spec.path !== undefined) spec.path = at(spec.path);
    for (const m of spec.maps ?? []) map(m);
  };
  const listen = (sockets: ListenSocket[]) => {
    for (const s of sockets) if (s.type === "unix") s.path = at(s.path);
  };
  const filter = (socket: FilterSocket) => {
    if (socket.type === "unix") socket.path = at(socket.path);
  };

  config.directory = base;
  config.CDB_base_directory = at(config.CDB_base_directory);
  if (config.log) fix(config.log, "directory");
  const q = config.qmgr;
  q.IBDB.base_directory = at(q.IBDB.base_directory);
  q.DEFEDB.base_directory = at(q.DEFEDB.base_directory);
  fix(q.DEFEDB, "log_directory");
  // A relative control socket stays relative: it is taken inside IBDB.base_directory (control_protocol.ts).
  map(q.conf);

  for (const s of config.smtps) {
    listen(s.listen_socket);
    if (s.tls) {
      for (const key of ["cert_file", "key_file", "CAcert_file", "CAcert_directory"] as const) {
        fix(s.tls, key);
      }
    }
    if (s.auth) s.auth.map_file = at(s.auth.map_file);
    map(s.dkim_signing?.map);
    map(s.authentication?.arc_seal?.map);
    for (const f of [...s.policy_milter ?? [], ...s.policy_service ?? []]) filter(f.socket);
  }

  const c = config.smtpc;
  fix(c, "LMTP_socket");
  for (const key of ["CAcert_file", "CAcert_directory", "cert_file", "key_file"] as const) fix(c.tls, key);
  // The authinfo map; its relative SECRET_FILE paths are taken from the map's own directory (authinfo.ts).
  map(c.authinfo);

  const r = config.smar;
  for (const spec of [r.mailertable, r.access_map, r.aliases, r.local_user_map]) map(spec);
  if (r.greylisting) {
    fix(r.greylisting, "main_DB_name");
    fix(r.greylisting, "secondary_DB_name");
  }

  if (config.lda) {
    listen(config.lda.listen_socket);
    config.lda.mail_root = at(config.lda.mail_root);
    map(config.lda.local_user_map);
  }
  return config;
}
