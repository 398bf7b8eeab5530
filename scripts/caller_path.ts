// Paths given on the command line of a `deno task` script mean paths where the user ran the task:
// deno task runs its scripts in the repository and names the caller's directory in INIT_CWD. Reads that
// one environment variable when the task grants it (--allow-env=INIT_CWD); touches nothing else.

import { isAbsolute, resolve } from "node:path";

/** The directory the user ran the command in: INIT_CWD under deno task, else the current directory. */
export function callerDirectory(): string {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: "INIT_CWD" }).state === "granted") {
      const dir = Deno.env.get("INIT_CWD");
      if (dir) return dir;
    }
  } catch {
    // No such permission query (a compiled binary): the current directory.
  }
  return Deno.cwd();
}

/** `path` as the user meant it: relative paths are taken from the directory the command was run in. */
export function callerPath(path: string): string {
  return isAbsolute(path) ? path : resolve(callerDirectory(), path);
}
