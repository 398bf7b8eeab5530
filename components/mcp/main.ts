// The entry of `deno task start`: runs the MTA in the foreground until SIGTERM/SIGINT, a fatal condition,
// or a crash loop, and exits with the code runMain() gives. See cli.ts for the command line.

import { runMain } from "./cli.ts";

Deno.exit(await runMain(Deno.args));
