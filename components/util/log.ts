// Logging: one line per event, `<time> <component>[ [level]]: <text>`, in the key=value style mail
// operators already parse (`id: from=<a@b>, to=<c@d>, relay=..., status=sent (...)`). Lines go to stderr,
// or to the file configured for this isolate (each worker is its own isolate and logs for one component;
// the main isolate logs for the MCP). The level comes from the configuration (sendmail X's numeric
// Log_Level, see levelOf). Writes only the one log file it is told to open, if any.

export type Level = "error" | "warn" | "info" | "debug";
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** sendmail X's numeric Log_Level as a level: 0-2 errors, 3-5 warnings too, 6-9 events (default 9), 10+ debug. */
export function levelOf(logLevel: number): Level {
  if (logLevel <= 2) return "error";
  if (logLevel <= 5) return "warn";
  if (logLevel <= 9) return "info";
  return "debug";
}

let threshold = ORDER.info;
let file: { path: string; handle: Deno.FsFile } | undefined;
let sink: ((line: string) => void) | undefined;
const encoder = new TextEncoder();

function emit(level: Level, component: string, text: string): void {
  if (ORDER[level] > threshold) return;
  const stamp = new Date().toISOString();
  // Control characters from peers never reach the log raw.
  const line = `${stamp} ${component}${level === "info" ? "" : ` [${level}]`}: ${escapeControls(text)}`;
  if (sink) sink(line);
  if (file) {
    try {
      writeAll(file.handle, encoder.encode(`${line}\n`));
      return;
    } catch (err) {
      console.error(
        `${stamp} ${component} [error]: write the log file ${file.path}: ${(err as Error).message}`,
      );
    }
  }
  console.error(line);
}

function writeAll(handle: Deno.FsFile, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += handle.writeSync(bytes.subarray(done));
}

// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g;

/** Replaces control characters (other than tab) with `\xNN`, so peer-supplied text cannot forge log lines. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export const log = {
  /** Sets the level by name or by sendmail X's number. */
  setLevel(level: Level | number): void {
    threshold = ORDER[typeof level === "number" ? levelOf(level) : level];
  },
  /**
   * Sends the lines to `path` (appended, created when missing), or back to stderr without one. Opening the
   * same path again reopens it (after a log rotation). Throws when the file cannot be opened.
   */
  toFile(path: string | undefined): void {
    const handle = path === undefined ? undefined : Deno.openSync(path, { append: true, create: true });
    file?.handle.close();
    file = handle && path !== undefined ? { path, handle } : undefined;
  },
  /** The level in force. */
  get level(): Level {
    return (Object.keys(ORDER) as Level[]).find((l) => ORDER[l] === threshold)!;
  },
  /** Where the lines go now: a file path, or undefined for stderr. */
  get file(): string | undefined {
    return file?.path;
  },
  /** Also hands every line to `fn` (tests and tools watching the MCP); undefined removes it. */
  setSink(fn: ((line: string) => void) | undefined): void {
    sink = fn;
  },
  error: (c: string, t: string) => emit("error", c, t),
  warn: (c: string, t: string) => emit("warn", c, t),
  info: (c: string, t: string) => emit("info", c, t),
  debug: (c: string, t: string) => emit("debug", c, t),
};
