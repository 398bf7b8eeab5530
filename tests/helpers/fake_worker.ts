// A stand-in for any component, for supervisor tests: the supervisor starts it under a component's name
// through its injectable worker URL. What it does is read from the config it receives (`fake` key, see
// FakePlan), per generation, so a test can make generation 1 crash and generation 2 behave.
// Behaving, it plays a tiny smtps/smar pair: "smtps" listens on its first listen_socket and answers each
// connection with the text of smar's verdict on the client, "smar" answers with `smar#<generation>`.
// It touches only what its permission set allows (the test gives smtps its listen address).

import type { Config, InetListenSocket } from "../../config/types.ts";
import type { WorkerFrame } from "../../components/protocol/frames.ts";
import { type Message, PROTOCOL_VERSION, type WorkerName } from "../../components/protocol/messages.ts";
import { type Component, runWorker, type WorkerContext } from "../../components/protocol/worker_runtime.ts";

/**
 * - ok: behave; throw: fail in start (an error event); crash: throw 50 ms after ready (an uncaught error);
 * - exit: call Deno.exit() 50 ms after ready (no event at all); silent: report ready, then never a heartbeat;
 * - fatal: report a fatal condition; stranger: send every frame with another generation number;
 * - tempfail: report a failure with exit code 75 (EX_TEMPFAIL: a restart may help);
 * - noperm: try to read a file outside its permission set while starting (NotCapable);
 * - reloader: ask the MCP for a reload, then report its answer as a failure with exit code 75.
 */
export type FakeMode =
  | "ok"
  | "throw"
  | "crash"
  | "exit"
  | "silent"
  | "fatal"
  | "stranger"
  | "tempfail"
  | "noperm"
  | "reloader";

/** Per component: the mode of each generation, and of any generation not listed. */
export type FakePlan = Partial<
  Record<WorkerName, { generations?: Record<number, FakeMode>; mode?: FakeMode }>
>;

/** The config a fake worker reads its plan from. */
export type FakeConfig = Config & { fake?: FakePlan };

/** The URL the supervisor should start for every component. */
export const FAKE_WORKER_URL = new URL("./fake_worker.ts", import.meta.url);

function modeOf(config: FakeConfig, name: WorkerName, generation: number): FakeMode {
  const plan = config.fake?.[name];
  return plan?.generations?.[generation] ?? plan?.mode ?? "ok";
}

// deno-lint-ignore no-explicit-any
const scope = self as any as {
  postMessage(f: WorkerFrame): void;
  onmessage: ((e: MessageEvent) => void) | null;
};

/** Modes that do not follow the worker runtime's rules take over the control channel themselves. */
function rogue(e: MessageEvent): boolean {
  const f = e.data;
  if (f?.kind !== "init") return false;
  const mode = modeOf(f.config, f.name, f.generation);
  if (mode === "silent") {
    scope.postMessage({ v: PROTOCOL_VERSION, kind: "ready", generation: f.generation });
    scope.onmessage = null;
    return true;
  }
  if (mode === "stranger") {
    const generation = f.generation + 100;
    scope.postMessage({ v: PROTOCOL_VERSION, kind: "ready", generation });
    setInterval(() => scope.postMessage({ v: PROTOCOL_VERSION, kind: "heartbeat", generation }), 20);
    scope.onmessage = null;
    return true;
  }
  return false;
}

function start(ctx: WorkerContext): Promise<Component> {
  const mode = modeOf(ctx.config as FakeConfig, ctx.name, ctx.generation);
  switch (mode) {
    case "throw":
      throw new Error(`${ctx.name}#${ctx.generation} failed to start on purpose`);
    case "reloader":
      setTimeout(() => {
        ctx.mcpReload?.(5000).then((r) => ctx.fatal(`reload answered ${JSON.stringify(r)}`, 75));
      }, 50);
      break;
    case "tempfail":
      setTimeout(() => ctx.fatal("the disk is full on purpose", 75), 50);
      break;
    case "noperm":
      return Deno.readTextFile("/etc/hostname").then(() => ({ stop: () => Promise.resolve() }));
    case "fatal":
      ctx.fatal("the map file is broken on purpose");
      break;
    case "crash":
      setTimeout(() => {
        throw new Error(`${ctx.name}#${ctx.generation} crashed on purpose`);
      }, 50);
      break;
    case "exit":
      setTimeout(() => Deno.exit(3), 50);
      break;
  }
  ctx.endpoint.handle((_from, body: Message): Message | void => {
    if (body.type !== "smtps.check_connect") return;
    return {
      type: "smar.verdict",
      verdict: { action: "accept", reply: { code: 250, status: "2.0.0", text: `smar#${ctx.generation}` } },
    };
  });
  if (ctx.name !== "smtps") return Promise.resolve({ stop: () => Promise.resolve() });
  const sock = ctx.config.smtps[0].listen_socket[0] as InetListenSocket;
  const listener = Deno.listen({ hostname: sock.address, port: sock.port });
  (async () => {
    for await (const conn of listener) {
      const m = await ctx.endpoint.request("smar", { type: "smtps.check_connect", ip: "127.0.0.1" }, 2000);
      const text = m.type === "smar.verdict"
        ? m.verdict.reply?.text
        : m.type === "rpc.failure"
        ? m.reason
        : m.type;
      await conn.write(new TextEncoder().encode(`${text}\r\n`)).catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  return Promise.resolve({
    stop: () => {
      listener.close();
      return Promise.resolve();
    },
  });
}

// The init frame names the component this fake plays: only then is the worker runtime set up under it.
scope.onmessage = (e: MessageEvent) => {
  if (rogue(e)) return;
  runWorker(e.data?.name ?? "smtps", start);
  scope.onmessage?.(e);
};
