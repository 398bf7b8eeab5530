// The content database (CDB): one file per message under CDB_base_directory, in 16 subdirectories 0-F
// chosen by the last digit of the queue id. smtps writes and syncs a file before the 250; smtpc reads it;
// qmgr deletes it when every recipient is done, and removes orphans at start.

import { join } from "node:path";
import { ensurePrivateDir } from "../util/private_files.ts";

export const CDB_SUBDIRS = "0123456789ABCDEF".split("");

/** The path of the CDB file for queue id `id`. */
export function cdbPath(base: string, id: string): string {
  return join(base, id.slice(-1), id);
}

/** Creates the base directory and its 16 subdirectories when missing, all mode 0700 (existing ones too). */
export async function ensureCdbDirs(base: string): Promise<void> {
  await ensurePrivateDir(base);
  for (const d of CDB_SUBDIRS) await ensurePrivateDir(join(base, d));
}
