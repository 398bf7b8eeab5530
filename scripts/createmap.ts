// createmap: builds a SQLite map from the sendmail X text map formats, as `createmap` builds Berkeley DB
// hash files in sendmail X. Usage: `deno task createmap [-F aliases] [-e] hash <in.txt> <out.db>`:
// `LHS<whitespace>RHS` lines (`# comments`), or with `-F aliases` the aliases format (`alias: RHS`,
// continuation lines starting with whitespace); `-e` accepts keys without a value (a list of local
// users). Type `auth` builds smtps's AUTH credentials map: `user password` lines become `user secrets`
// (scripts/createmap_auth.ts; `-m plain,scram-sha-1,scram-sha-256,cram-md5` chooses the secrets, the
// default leaves out cram-md5). Bad lines are reported as `file:line: problem` and nothing is written
// (exit 1). Reads the input, writes only the output file (through a temporary file beside it, renamed
// into place so a running smar never sees half a map).

import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { type MapFormat, parseMapText } from "../components/maps/map_text.ts";
import { hashCredentials, type HashOptions } from "./createmap_auth.ts";

export type CreateMapResult = { ok: true; entries: number } | { ok: false; errors: string[] };

export interface CreateMapOptions {
  format?: MapFormat;
  emptyValues?: boolean;
  /** For type auth: which secrets, how many iterations. */
  auth?: HashOptions;
}

/** Builds `output` from the text map `input`; reports problems instead of throwing on bad input. */
export async function createMap(
  type: string,
  input: string,
  output: string,
  opts: CreateMapOptions = {},
): Promise<CreateMapResult> {
  if (type !== "hash" && type !== "auth") {
    return { ok: false, errors: [`Create map: unsupported map type ${type}, expected hash or auth`] };
  }
  let text: string;
  try {
    text = await Deno.readTextFile(input);
  } catch (err) {
    return { ok: false, errors: [`Create map: cannot read ${input}: ${(err as Error).message}`] };
  }
  const parsed = parseMapText(text, input, opts);
  if (parsed.errors.length > 0) return { ok: false, errors: parsed.errors };
  let entries = parsed.entries;
  if (type === "auth") {
    try {
      entries = await hashCredentials(parsed.entries, opts.auth);
    } catch (err) {
      return { ok: false, errors: [`Create map: ${(err as Error).message}`] };
    }
  }
  const tmp = `${output}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    // A credentials map holds password hashes: only its owner may read it (0600), whatever the umask.
    if (type === "auth") {
      await Deno.writeFile(tmp, new Uint8Array(), { mode: 0o600, createNew: true });
      await Deno.chmod(tmp, 0o600);
    }
    const db = new DatabaseSync(tmp);
    try {
      db.exec("CREATE TABLE map (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
      const insert = db.prepare("INSERT INTO map (key, value) VALUES (?, ?)");
      db.exec("BEGIN");
      for (const [key, value] of entries) insert.run(key, value);
      db.exec("COMMIT");
    } finally {
      db.close();
    }
    await Deno.rename(tmp, output);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    return { ok: false, errors: [`Create map: cannot write ${output}: ${(err as Error).message}`] };
  }
  return { ok: true, entries: entries.size };
}

const USAGE =
  "Usage: deno task createmap [-F aliases] [-e] [-m plain,scram-sha-1,scram-sha-256,cram-md5] hash|auth <in.txt> <out.db>";

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        format: { type: "string", short: "F" },
        "empty-values": { type: "boolean", short: "e" },
        mechanisms: { type: "string", short: "m" },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  const [type, input, output, ...extra] = parsed.positionals;
  const format = parsed.values.format ?? "plain";
  if (!type || !input || !output || extra.length > 0 || (format !== "plain" && format !== "aliases")) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const result = await createMap(type, input, output, {
    format: format as MapFormat,
    emptyValues: parsed.values["empty-values"] === true,
    ...(parsed.values.mechanisms
      ? { auth: { kinds: parsed.values.mechanisms.toLowerCase().split(",") } }
      : {}),
  });
  if (!result.ok) {
    for (const e of result.errors) console.error(e);
    Deno.exit(1);
  }
  console.log(`${output}: ${result.entries} entries`);
}
