// `smx --check -f FILE` (as `postfix check`): loads every map, key, certificate and file the configuration
// names, with the loaders the components themselves use, and reports each problem with the configuration
// file's line and column of the option that names it (and the map file's line, which the map loaders
// put in their messages): smar's maps (mailertable entries checked), the lda's users map, qmgr's
// qmgr_conf map, each smtps section's TLS certificate, key and CAs (an expired certificate too), AUTH
// credentials map and DKIM/ARC key maps with their key files, smtpc's TLS files, and the directories the
// MTA writes (queue, log, mail root, greylisting database: an existing path of the wrong kind, or a parent
// that is missing). Reads only; creates nothing.

import { createPrivateKey, X509Certificate } from "node:crypto";
import { dirname } from "node:path";
import { ConfigError } from "../../config/error.ts";
import { loadConfig } from "../../config/build.ts";
import { parse, type SectionNode } from "../../config/parser.ts";
import { configDirectory, underBase } from "../../config/paths.ts";
import type { Config, MapSpec } from "../../config/types.ts";
import { QmgrConf } from "../qmgr/conf_map.ts";
import { loadMailertable } from "../smar/mailertable.ts";
import { openMap } from "../smar/maps.ts";
import { CredentialsMap } from "../smtps/auth_map.ts";
import { KeyRing } from "../smtps/mailauth/keys.ts";
import { loadTls } from "../smtps/tls.ts";
import { loadTlsSettings } from "../smtpc/tls.ts";

/** Where an option was written: `file:line:col` and the option's dotted name. */
interface Place {
  at: string;
  option: string;
}

/** Every string option of the file by the path it names (resolved as loadConfig resolves it). */
function placesOf(text: string, file: string): Map<string, Place> {
  const base = configDirectory(file);
  const places = new Map<string, Place>();
  const walk = (node: SectionNode, path: string) => {
    for (const e of node.entries) {
      if (e.kind === "section") {
        walk(e, path ? `${path}.${e.keyword}` : e.keyword);
      } else if (e.kind === "option" && e.value.kind === "scalar") {
        const key = underBase(base, e.value.text);
        if (!places.has(key)) {
          places.set(key, { at: `${file}:${e.line}:${e.col}`, option: path ? `${path}.${e.name}` : e.name });
        }
      }
    }
  };
  walk(parse(text, file), "");
  return places;
}

/** One thing to load: the path the configuration names, and how the component loads it. */
interface Item {
  path: string;
  what: string;
  load: () => Promise<unknown>;
}

/** Loads a map as smar does and closes it again. */
async function openAndClose(spec: MapSpec, opts: Parameters<typeof openMap>[1] = {}): Promise<void> {
  if (spec.type === "socket") return; // a server, not a file: asked at run time
  (await openMap(spec, opts)).close();
}

/** A certificate file that parses and has not expired (`now`). */
async function checkCertificate(path: string, now: Date): Promise<void> {
  const pem = await Deno.readTextFile(path);
  const first = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem);
  if (!first) throw new Error(`${path}: no PEM certificate in it`);
  const cert = new X509Certificate(first[0]);
  if (new Date(cert.validTo) < now) throw new Error(`${path}: the certificate expired on ${cert.validTo}`);
  if (new Date(cert.validFrom) > now) {
    throw new Error(`${path}: the certificate is not valid before ${cert.validFrom}`);
  }
}

/** A certificate and a private key that belong together (both PEM). */
async function checkKeyPair(certFile: string, keyFile: string): Promise<void> {
  const pem = await Deno.readTextFile(certFile);
  const first = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem);
  if (!first) return; // reported by checkCertificate
  let key;
  try {
    key = createPrivateKey(await Deno.readTextFile(keyFile));
  } catch (err) {
    throw new Error(`${keyFile}: not a private key: ${(err as Error).message}`);
  }
  if (!new X509Certificate(first[0]).checkPrivateKey(key)) {
    throw new Error(`${keyFile} is not the key of the certificate ${certFile}`);
  }
}

/** A directory the MTA writes (the MCP creates it when missing): a path there must be a directory. */
async function checkWritableDir(path: string): Promise<void> {
  try {
    const st = await Deno.stat(path);
    if (!st.isDirectory) throw new Error(`${path} exists and is not a directory`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** A file the MTA creates (the greylisting database): its directory must be a directory if it exists. */
async function checkFileDir(path: string): Promise<void> {
  try {
    const st = await Deno.stat(path);
    if (st.isDirectory) throw new Error(`${path} is a directory`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await checkWritableDir(dirname(path)).catch((e: Error) => {
      throw new Error(`the directory of ${path}: ${e.message}`);
    });
  }
}

function items(config: Config, now: Date): Item[] {
  const out: Item[] = [];
  const map = (what: string, spec: MapSpec | undefined, load: (s: MapSpec) => Promise<unknown>) => {
    if (!spec) return;
    out.push({
      path: spec.file || spec.path || spec.name,
      what: `${what} map ${spec.name}`,
      load: () => load(spec),
    });
  };
  const s = config.smar;
  map("the mailertable", s.mailertable, async (spec) => (await loadMailertable(spec)).close());
  map("the access", s.access_map, (spec) => openAndClose(spec));
  map("the aliases", s.aliases, (spec) => openAndClose(spec, { format: "aliases" }));
  map("the local users", s.local_user_map, (spec) => openAndClose(spec, { emptyValues: true }));
  map("the lda's users", config.lda?.local_user_map, (spec) => openAndClose(spec, { emptyValues: true }));
  map("qmgr's qmgr_conf", config.qmgr.conf, async (spec) => (await QmgrConf.load(spec, config.qmgr)).close());
  for (const server of config.smtps) {
    const name = `smtps ${server.name}`;
    const tls = server.tls;
    if (tls) {
      out.push({
        path: tls.cert_file,
        what: `${name} TLS certificate`,
        load: () => checkCertificate(tls.cert_file, now),
      });
      out.push({
        path: tls.key_file,
        what: `${name} TLS key`,
        load: async () => {
          await loadTls(tls);
          await checkKeyPair(tls.cert_file, tls.key_file);
        },
      });
    }
    const auth = server.auth;
    if (auth && auth.map_file !== "") {
      out.push({
        path: auth.map_file,
        what: `${name} AUTH credentials map`,
        load: () => new CredentialsMap(auth.map_file).check(),
      });
    }
    map(`${name} DKIM signing key`, server.dkim_signing?.map, (spec) => KeyRing.load(spec));
    map(`${name} ARC sealing key`, server.authentication?.arc_seal?.map, (spec) => KeyRing.load(spec));
  }
  const c = config.smtpc.tls;
  const clientFile = c.cert_file ?? c.CAcert_file ?? c.CAcert_directory;
  if (clientFile) out.push({ path: clientFile, what: "smtpc TLS files", load: () => loadTlsSettings(c) });
  if (c.cert_file) {
    const file = c.cert_file;
    out.push({ path: file, what: "smtpc TLS certificate", load: () => checkCertificate(file, now) });
    const key = c.key_file;
    if (key) out.push({ path: key, what: "smtpc TLS key", load: () => checkKeyPair(file, key) });
  }
  const dirs: [string, string][] = [
    [config.CDB_base_directory, "the CDB directory"],
    [config.qmgr.IBDB.base_directory, "the IBDB directory"],
    [config.qmgr.DEFEDB.base_directory, "the DEFEDB directory"],
  ];
  if (config.log?.directory) dirs.push([config.log.directory, "the log directory"]);
  if (config.lda) dirs.push([config.lda.mail_root, "the lda's mail root"]);
  for (const [path, what] of dirs) out.push({ path, what, load: () => checkWritableDir(path) });
  const grey = s.greylisting?.main_DB_name;
  if (grey) out.push({ path: grey, what: "the greylisting database", load: () => checkFileDir(grey) });
  return out;
}

/**
 * A loader's message naming a map entry (`FILE: KEY: problem`, as the mailertable's and qmgr_conf's
 * checks of each entry say it) with the line of that entry in a text map: `FILE:LINE: KEY: problem`.
 */
async function withMapLine(message: string, file: string): Promise<string> {
  const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`${escaped}\\)?: ([^\\s:]+): `).exec(message);
  if (!m) return message;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return message;
  }
  const key = m[1].toLowerCase();
  const n = text.split("\n").findIndex((l) => l.trim().split(/\s+/)[0]?.toLowerCase() === key);
  if (n < 0) return message;
  return message.replace(`${file}`, `${file}:${n + 1}`);
}

/**
 * The problems of the configuration file `file`, each `file:line:col: what: problem` (a configuration
 * error is the only problem when the file does not parse), and its warnings (options without effect,
 * implausible units). `now` dates certificates.
 */
export async function checkConfiguration(
  file: string,
  now = new Date(),
): Promise<{ problems: string[]; warnings: string[] }> {
  let config: Config;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
    config = await loadConfig(file);
  } catch (err) {
    const problem = err instanceof ConfigError ? err.message : `${file}: ${(err as Error).message}`;
    return { problems: [problem], warnings: [] };
  }
  const places = placesOf(text, file);
  const problems: string[] = [];
  for (const item of items(config, now)) {
    try {
      await item.load();
    } catch (err) {
      const place = places.get(item.path);
      const where = place ? `${place.at}: ${place.option} = "${item.path}"` : `${file}: ${item.path}`;
      problems.push(`${where}: ${item.what}: ${await withMapLine((err as Error).message, item.path)}`);
    }
  }
  const warnings = (config.warnings ?? []).filter((w) => w.level === "warning").map((w) => w.message);
  return { problems, warnings };
}
