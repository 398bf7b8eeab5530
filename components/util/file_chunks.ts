// Reads a file from an offset in chunks: the queue's content files are read this way wherever a message
// is passed on or scanned (the milters' view, mail authentication, the stored copy). The file is closed
// when the reading ends, also when a caller stops early (break in for await).

const CHUNK = 64 * 1024;

/** The bytes of the file at `path` from byte `start` on, in chunks of at most `size` bytes (each its own copy). */
export async function* fileChunks(path: string, start = 0, size = CHUNK): AsyncGenerator<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(size);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) return;
      yield buf.slice(0, n);
    }
  } finally {
    file.close();
  }
}
