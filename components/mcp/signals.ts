// What the MTA does on a signal: SIGTERM and SIGINT stop it gracefully (smtps answers 421 4.3.2 to open
// sessions, deliveries in flight finish or are handed back to the queue, qmgr flushes the IBDB last; exit
// code 0), a second one while stopping ends the process at once (nothing acknowledged is lost: the IBDB
// is synced before any 250); SIGHUP reloads the configuration (reload.ts). handleSignal() is what the
// listeners call, so tests drive the same path without sending signals. Touches nothing.

import { log } from "../util/log.ts";
import type { Mta } from "./mta.ts";
import { EX_SOFTWARE } from "./supervisor.ts";

export type MtaSignal = "SIGTERM" | "SIGINT" | "SIGHUP";
export const SIGNALS: readonly MtaSignal[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/** Acts on one signal: stop (SIGTERM, SIGINT) or reload (SIGHUP). Resolves when that is done. */
export function handleSignal(mta: Mta, signal: MtaSignal): Promise<unknown> {
  switch (signal) {
    case "SIGTERM":
    case "SIGINT":
      log.info("mcp", `${signal}: stopping gracefully`);
      return mta.stop();
    case "SIGHUP":
      log.info("mcp", "SIGHUP: reloading the configuration");
      return mta.reload();
    default: {
      const never: never = signal;
      throw new TypeError(`Handle a signal: unexpected signal ${never}`);
    }
  }
}

/**
 * Installs the signal listeners for `mta`; returns the function that removes them. A second SIGTERM or
 * SIGINT while the graceful stop runs calls `exit` at once.
 */
export function listenForSignals(mta: Mta, exit: (code: number) => void = Deno.exit): () => void {
  let stopping = false;
  const listeners = SIGNALS.map((signal) => {
    const fn = () => {
      if (signal !== "SIGHUP" && stopping) {
        log.warn("mcp", `second ${signal} while stopping: exiting at once`);
        exit(EX_SOFTWARE);
        return;
      }
      if (signal !== "SIGHUP") stopping = true;
      void handleSignal(mta, signal);
    };
    Deno.addSignalListener(signal, fn);
    return [signal, fn] as const;
  });
  return () => {
    for (const [signal, fn] of listeners) Deno.removeSignalListener(signal, fn);
  };
}
