// The control socket's protocol, shared by qmgr (control.ts) and qmgrctl (scripts/qmgrctl.ts): one JSON
// object per line each way. A request is {"command": NAME, "args": {...}}; the answer is {"ok": true,
// "result": ...} or {"ok": false, "error": "..."}. A line is at most MAX_LINE bytes. Where the socket is:
// control_socket, taken inside IBDB.base_directory when relative.

import { isAbsolute, join } from "node:path";
import type { Config } from "../../config/types.ts";

export const MAX_LINE = 64 * 1024;

export const COMMANDS = [
  "status",
  "list",
  "show",
  "flush",
  "hold",
  "release",
  "delete",
  "bounce",
  "requeue",
  "stats",
  "reload",
  "check",
  "explain",
] as const;
export type Command = typeof COMMANDS[number];

export interface ControlRequest {
  command: Command;
  args?: Record<string, unknown>;
}

export type ControlAnswer = { ok: true; result: unknown } | { ok: false; error: string };

/** The control socket's path for `config`. */
export function controlSocketPath(config: Config): string {
  const p = config.qmgr.control_socket;
  return isAbsolute(p) ? p : join(config.qmgr.IBDB.base_directory, p);
}

/** Splits bytes into lines (LF, an optional CR before it dropped); keeps the unfinished rest. */
export class LineSplitter {
  #buf = "";
  readonly #decoder = new TextDecoder();

  /** `max`: the longest line taken (qmgr's requests: MAX_LINE; qmgrctl reads longer answers). */
  constructor(readonly max = MAX_LINE) {}

  /** The complete lines in `chunk`; throws a RangeError once a line grows beyond MAX_LINE. */
  push(chunk: Uint8Array): string[] {
    this.#buf += this.#decoder.decode(chunk, { stream: true });
    const lines = this.#buf.split("\n");
    this.#buf = lines.pop()!;
    if (this.#buf.length > this.max || lines.some((l) => l.length > this.max)) {
      throw new RangeError(`Read a control line: longer than ${this.max} bytes`);
    }
    return lines.map((l) => l.replace(/\r$/, ""));
  }
}
