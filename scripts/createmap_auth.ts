// createmap's `auth` map type, for the AUTH credentials of smtps: the input holds `user password` lines
// (the plain-text password is read once and never stored), the map gets `user hash` entries with a salted
// slow hash (PBKDF2-HMAC-SHA256, components/smtps/password_hash.ts). A value that already is such a hash
// is kept as it is, so a map can be rebuilt from a file of hashes. Delete the plain-text input afterwards.

import { DEFAULT_ITERATIONS, hashPassword, isPasswordHash } from "../components/smtps/password_hash.ts";

/** The entries with every password replaced by its hash (user names are the map's keys, in lower case). */
export async function hashCredentials(
  entries: Map<string, string>,
  iterations = DEFAULT_ITERATIONS,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [user, password] of entries) {
    out.set(user, isPasswordHash(password) ? password : await hashPassword(password, iterations));
  }
  return out;
}
