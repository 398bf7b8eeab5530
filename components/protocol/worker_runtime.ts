// The part every worker shares: waits for the MCP's init frame, installs peer ports as they come, sends
// heartbeats, and runs the component's start/stop functions. A component's worker.ts only says what it
// may touch and calls runWorker() with its own start function.

import type { Config } from "../../config/types.ts";
import type { McpFrame, WorkerFrame } from "./frames.ts";
import { PROTOCOL_VERSION, type WorkerName } from "./messages.ts";
import { Endpoint } from "./endpoint.ts";
import { log } from "../util/log.ts";

export interface WorkerContext {
  name: WorkerName;
  generation: number;
  config: Config;
  endpoint: Endpoint;
  /** Tells the MCP a restart cannot help (e.g. a broken map file named by the configuration). */
  fatal(reason: string): void;
}

/** What a component's start function returns: how to stop it gracefully. */
export interface Component {
  stop(): Promise<void>;
}

export type StartFunction = (ctx: WorkerContext) => Promise<Component>;

// deno-lint-ignore no-explicit-any
const scope = self as any as {
  postMessage(m: WorkerFrame): void;
  onmessage: ((e: MessageEvent) => void) | null;
  close(): void;
};

/** Runs a component inside a worker: the one entry every worker.ts calls. */
export function runWorker(name: WorkerName, start: StartFunction): void {
  const endpoint = new Endpoint(name);
  let generation = 0;
  let component: Component | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const post = (f: WorkerFrame) => scope.postMessage(f);

  scope.onmessage = async (e: MessageEvent) => {
    const frame = e.data as McpFrame;
    if (frame?.v !== PROTOCOL_VERSION) {
      log.error(name, "dropped a control frame with the wrong protocol version");
      return;
    }
    switch (frame.kind) {
      case "init": {
        generation = frame.generation;
        const ctx: WorkerContext = {
          name,
          generation,
          config: frame.config,
          endpoint,
          fatal: (reason) => post({ v: PROTOCOL_VERSION, kind: "fatal", generation, reason }),
        };
        heartbeat = setInterval(
          () => post({ v: PROTOCOL_VERSION, kind: "heartbeat", generation }),
          frame.config.mcp.heartbeat_interval,
        );
        try {
          component = await start(ctx);
          post({ v: PROTOCOL_VERSION, kind: "ready", generation });
        } catch (err) {
          // Let the MCP see an error event and restart us.
          clearInterval(heartbeat);
          throw err;
        }
        return;
      }
      case "peer":
        endpoint.setPeer(frame.name, frame.port);
        return;
      case "shutdown":
        clearInterval(heartbeat);
        try {
          await component?.stop();
        } finally {
          endpoint.close();
          post({ v: PROTOCOL_VERSION, kind: "stopped", generation });
        }
        return;
      default: {
        const never: never = frame;
        log.error(name, `dropped an unknown control frame ${JSON.stringify(never).slice(0, 80)}`);
      }
    }
  };
}
