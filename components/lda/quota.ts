// Per-user quota: how many bytes a user's Maildir holds (new/ and cur/ of the inbox and of every `.folder`;
// tmp/ is transient and not counted), against the user's quota from the users map. The usage is counted
// from the `,S=size` in file names (a stat only for names without one), at most once per `rescanMs` per
// user, and deliveries made since are added, so a busy mailbox is not rescanned for every message. Two
// deliveries checked at the same moment may both fit and together overrun the quota a little (a soft
// quota, as with Maildir++). Reads directories under the Maildirs it is asked about; writes nothing.

import { join } from "node:path";
import { sizeFromName } from "./maildir.ts";

interface Usage {
  bytes: number;
  countedAt: number;
}

export class QuotaTracker {
  readonly #usage = new Map<string, Usage>();

  constructor(readonly now: () => number = Date.now, readonly rescanMs = 60_000) {}

  /** Bytes in the Maildir `maildir` of `user`, counted afresh when the last count is too old. */
  async usage(user: string, maildir: string): Promise<number> {
    const known = this.#usage.get(user);
    if (known && this.now() - known.countedAt < this.rescanMs) return known.bytes;
    const bytes = await maildirSize(maildir);
    this.#usage.set(user, { bytes, countedAt: this.now() });
    return bytes;
  }

  /** Whether `size` more bytes would stay within `quota` (0: no quota). */
  async fits(user: string, maildir: string, quota: number, size: number): Promise<boolean> {
    if (quota === 0) return true;
    return (await this.usage(user, maildir)) + size <= quota;
  }

  /** Counts a delivery just made. */
  add(user: string, size: number): void {
    const known = this.#usage.get(user);
    if (known) known.bytes += size;
  }
}

/** The bytes of the messages in a Maildir and its folders. */
export async function maildirSize(maildir: string): Promise<number> {
  let total = 0;
  const folders = [maildir];
  try {
    for await (const e of Deno.readDir(maildir)) {
      if (e.isDirectory && e.name.startsWith(".") && e.name !== "." && e.name !== "..") {
        folders.push(join(maildir, e.name));
      }
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  for (const folder of folders) {
    for (const sub of ["new", "cur"]) total += await filesSize(join(folder, sub));
  }
  return total;
}

async function filesSize(dir: string): Promise<number> {
  let total = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(".")) continue;
      const named = sizeFromName(e.name);
      if (named !== undefined) total += named;
      else if (e.isFile) total += await Deno.stat(join(dir, e.name)).then((st) => st.size, () => 0);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return total;
}
