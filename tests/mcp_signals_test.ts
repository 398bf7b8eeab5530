// What the MTA does on a signal, without sending one: handleSignal() stops on SIGTERM and SIGINT and
// reloads on SIGHUP; listenForSignals() installs a listener per signal (Deno.addSignalListener stubbed),
// and a second stop signal while stopping exits at once with EX_SOFTWARE; its return value removes them.

import assert from "node:assert/strict";
import { mock } from "node:test";
import { handleSignal, listenForSignals, SIGNALS } from "../components/mcp/signals.ts";
import type { Mta } from "../components/mcp/mta.ts";
import { EX_SOFTWARE } from "../components/mcp/supervisor.ts";

/** An Mta that records what it was asked to do. */
function fakeMta(calls: string[]): Mta {
  return {
    stop: () => {
      calls.push("stop");
      return Promise.resolve({ code: 0, reason: "stop requested" });
    },
    reload: () => {
      calls.push("reload");
      return Promise.resolve({ ok: true });
    },
  } as unknown as Mta;
}

Deno.test("handleSignal() stops the MTA on SIGTERM and SIGINT and reloads it on SIGHUP", async () => {
  const calls: string[] = [];
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) await handleSignal(fakeMta(calls), signal);
  assert.deepEqual(calls, ["stop", "stop", "reload"]);
});

Deno.test("listenForSignals() acts on each signal, exits at a second stop signal, and removes its listeners", () => {
  const listeners = new Map<string, () => void>();
  const add = mock.method(
    Deno,
    "addSignalListener",
    (s: Deno.Signal, fn: () => void) => listeners.set(s, fn),
  );
  const remove = mock.method(Deno, "removeSignalListener", (s: Deno.Signal) => listeners.delete(s));
  try {
    const calls: string[] = [];
    const exits: number[] = [];
    const off = listenForSignals(fakeMta(calls), (code) => exits.push(code));
    assert.deepEqual([...listeners.keys()].sort(), [...SIGNALS].sort());
    listeners.get("SIGHUP")!();
    listeners.get("SIGHUP")!(); // a reload never counts as stopping
    assert.deepEqual(exits, []);
    listeners.get("SIGTERM")!();
    assert.deepEqual(calls, ["reload", "reload", "stop"]);
    listeners.get("SIGINT")!(); // while stopping: at once
    assert.deepEqual(exits, [EX_SOFTWARE]);
    assert.deepEqual(calls, ["reload", "reload", "stop"], "the second stop signal does not stop again");
    off();
    assert.equal(listeners.size, 0);
  } finally {
    add.mock.restore();
    remove.mock.restore();
  }
});
