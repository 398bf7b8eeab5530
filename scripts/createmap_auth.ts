// createmap's `auth` map type, for the AUTH credentials of smtps: the input holds `user password` lines
// (the plain-text password is read once and never stored), the map gets `user secret secret ...` entries
// (components/smtps/sasl_secrets.ts): a salted slow hash (PBKDF2-HMAC-SHA256) for PLAIN and LOGIN, the
// SCRAM-SHA-1 and SCRAM-SHA-256 keys (RFC 5803 format), and, only when asked for (`-m ...,cram-md5`),
// CRAM-MD5's HMAC-MD5 states, which stand for the password towards CRAM-MD5. A value that already is a
// list of such secrets is kept as it is, so a map can be rebuilt from its own dump. Delete the plain-text
// input afterwards.

import { DEFAULT_ITERATIONS, hashPassword } from "../components/smtps/password_hash.ts";
import {
  cramSecret,
  DEFAULT_SCRAM_ITERATIONS,
  parseSecrets,
  scramSecret,
} from "../components/smtps/sasl_secrets.ts";

/** The secret forms createmap can write; `plain` stands for PLAIN and LOGIN. */
export const SECRET_KINDS = ["plain", "scram-sha-1", "scram-sha-256", "cram-md5"];
export const DEFAULT_SECRET_KINDS = ["plain", "scram-sha-1", "scram-sha-256"];

export interface HashOptions {
  /** PBKDF2 iterations of the PLAIN/LOGIN hash. */
  iterations?: number;
  /** SCRAM iterations. */
  scramIterations?: number;
  /** Which secrets to write (SECRET_KINDS). */
  kinds?: string[];
}

/** Whether `value` already is a list of secrets (every blank-separated part one this version knows). */
function isSecretList(value: string): boolean {
  const tokens = value.trim().split(/\s+/);
  return parseSecrets(value).length === tokens.length;
}

/** The entries with every password replaced by its secrets (user names are the map's keys, lower case). */
export async function hashCredentials(
  entries: Map<string, string>,
  opts: HashOptions = {},
): Promise<Map<string, string>> {
  const kinds = opts.kinds ?? DEFAULT_SECRET_KINDS;
  const unknown = kinds.filter((k) => !SECRET_KINDS.includes(k));
  if (unknown.length > 0) throw new RangeError(`Unknown credential kinds: ${unknown.join(", ")}`);
  const scramIterations = opts.scramIterations ?? DEFAULT_SCRAM_ITERATIONS;
  const out = new Map<string, string>();
  for (const [user, password] of entries) {
    if (isSecretList(password)) {
      out.set(user, password);
      continue;
    }
    const secrets: string[] = [];
    if (kinds.includes("plain")) {
      secrets.push(await hashPassword(password, opts.iterations ?? DEFAULT_ITERATIONS));
    }
    if (kinds.includes("scram-sha-1")) secrets.push(await scramSecret("SHA-1", password, scramIterations));
    if (kinds.includes("scram-sha-256")) {
      secrets.push(await scramSecret("SHA-256", password, scramIterations));
    }
    if (kinds.includes("cram-md5")) secrets.push(cramSecret(password));
    out.set(user, secrets.join(" "));
  }
  return out;
}
