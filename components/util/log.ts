// Logging: one line per event on stderr, `<time> <component>: <text>`, in the key=value style mail
// operators already parse (`id: from=<a@b>, to=<c@d>, relay=..., status=sent (...)`).
// The level is process-wide per worker (each worker is its own isolate) and set from the configuration.

export type Level = "error" | "warn" | "info" | "debug";
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

let threshold = ORDER.info;

function emit(level: Level, component: string, text: string): void {
  if (ORDER[level] > threshold) return;
  const stamp = new Date().toISOString();
  // Control characters from peers never reach the log raw.
  const clean = escapeControls(text);
  console.error(`${stamp} ${component}${level === "info" ? "" : ` [${level}]`}: ${clean}`);
}

// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** Replaces control characters (other than tab) with `\xNN`, so peer-supplied text cannot forge log lines. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export const log = {
  setLevel(level: Level): void {
    threshold = ORDER[level];
  },
  error: (c: string, t: string) => emit("error", c, t),
  warn: (c: string, t: string) => emit("warn", c, t),
  info: (c: string, t: string) => emit("info", c, t),
  debug: (c: string, t: string) => emit("debug", c, t),
};
