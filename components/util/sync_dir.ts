// Making the names created or renamed in a directory durable: fsync of the directory itself, which a
// file's own fsync does not cover. Used wherever mail is handed on only once it is on disk (the CDB
// content file, a DSN's file, a Maildir delivery). Touches only the directory it is given.

/** Syncs a directory so the names created or renamed in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const f = await Deno.open(dir, { read: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
}
