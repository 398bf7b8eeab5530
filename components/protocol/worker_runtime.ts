// The part every worker shares: waits for the MCP's init frame, installs peer ports as they come, sends
// heartbeats, applies its log settings, and runs the component's start/stop/reload functions. A
// component's worker.ts only says what it may touch and calls runWorker() with its own start function.
// A start that fails for want of a permission or on a bad configuration is reported as `fatal` (a
// restart cannot cure it); any other failure is an error event, and the MCP restarts the worker.

import type { Config } from "../../config/types.ts";
import { logFile, serviceOptions } from "../../config/service.ts";
import type { ComponentStatus, McpFrame, WorkerFrame } from "./frames.ts";
import { PROTOCOL_VERSION, type WorkerName } from "./messages.ts";
import { Endpoint } from "./endpoint.ts";
import { applyLogIdentity, log } from "../util/log.ts";

/** sysexits.h codes a worker reports with `fatal`: the MCP stops the MTA instead of restarting. */
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

export interface WorkerContext {
  name: WorkerName;
  /** Which of the component's several workers this is (1-based; smtps with processes > 1), else absent. */
  instance?: number;
  generation: number;
  config: Config;
  endpoint: Endpoint;
  /**
   * Tells the MCP a restart cannot help (e.g. a broken map file named by the configuration); `code` is
   * the exit code the MTA stops with (EX_CONFIG when absent).
   */
  fatal(reason: string, code?: number): void;
  /**
   * Asks the MCP for every worker's uptime and restart count; undefined when no answer comes within
   * `timeoutMs` (a worker run without the MCP, as in component tests).
   */
  mcpStatus?(timeoutMs?: number): Promise<ComponentStatus[] | undefined>;
  /**
   * Asks the MCP to reload the configuration as SIGHUP does; resolves with its outcome, or undefined when
   * no answer came in time (default 30 s).
   */
  mcpReload?(timeoutMs?: number): Promise<{ ok: boolean; reason?: string } | undefined>;
}

/** What a component's start function returns: how to stop it gracefully, and how to reload. */
export interface Component {
  stop(): Promise<void>;
  /**
   * Applies a new configuration (SIGHUP) as far as it can live: re-reads maps, takes new limits. What
   * needs other permissions (sockets, paths) the MCP never sends here: it refuses such a reload. A
   * component without it keeps its configuration until its next restart. A throw is logged and reported.
   */
  reload?(config: Config): Promise<void>;
}

export type StartFunction = (ctx: WorkerContext) => Promise<Component>;

// deno-lint-ignore no-explicit-any
const scope = self as any as {
  postMessage(m: WorkerFrame): void;
  onmessage: ((e: MessageEvent) => void) | null;
  close(): void;
};

/** Sets this worker's log level and log file from the configuration; throws when the file cannot be opened. */
function applyLog(name: WorkerName, config: Config): void {
  log.setLevel(serviceOptions(config, name).log_level);
  applyLogIdentity(config);
  const path = logFile(config, name);
  try {
    log.toFile(path);
  } catch (err) {
    throw new Error(`Open the log file ${path}: ${(err as Error).message}`);
  }
}

/** The exit code for a start failure a restart cannot cure, or undefined when a restart may help. */
function fatalCode(err: unknown): number | undefined {
  const name = (err as Error)?.name;
  if (name === "ListenError") return (err as Error & { code: number }).code;
  if (name === "NotCapable") return EX_NOPERM;
  if (name === "ConfigError") return EX_CONFIG;
  return undefined;
}

/** Runs a component inside a worker: the one entry every worker.ts calls. */
export function runWorker(name: WorkerName, start: StartFunction): void {
  const endpoint = new Endpoint(name);
  let generation = 0;
  let component: Component | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const post = (f: WorkerFrame) => scope.postMessage(f);
  const fatal = (reason: string, code = EX_CONFIG) =>
    post({ v: PROTOCOL_VERSION, kind: "fatal", generation, reason, code });
  const statusWaiters = new Map<number, (c: ComponentStatus[] | undefined) => void>();
  let statusSeq = 0;
  const mcpStatus = (timeoutMs = 1_000) =>
    new Promise<ComponentStatus[] | undefined>((resolve) => {
      const id = ++statusSeq;
      const timer = setTimeout(() => {
        statusWaiters.delete(id);
        resolve(undefined);
      }, timeoutMs);
      statusWaiters.set(id, (c) => {
        clearTimeout(timer);
        statusWaiters.delete(id);
        resolve(c);
      });
      post({ v: PROTOCOL_VERSION, kind: "status_request", generation, id });
    });

  const reloadWaiters = new Map<number, (r: { ok: boolean; reason?: string } | undefined) => void>();
  const mcpReload = (timeoutMs = 30_000) =>
    new Promise<{ ok: boolean; reason?: string } | undefined>((resolve) => {
      const id = ++statusSeq;
      const timer = setTimeout(() => {
        reloadWaiters.delete(id);
        resolve(undefined);
      }, timeoutMs);
      reloadWaiters.set(id, (r) => {
        clearTimeout(timer);
        reloadWaiters.delete(id);
        resolve(r);
      });
      post({ v: PROTOCOL_VERSION, kind: "reload_request", generation, id });
    });

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
          ...(frame.instance !== undefined ? { instance: frame.instance } : {}),
          generation,
          config: frame.config,
          endpoint,
          fatal,
          mcpStatus,
          mcpReload,
        };
        heartbeat = setInterval(
          () => post({ v: PROTOCOL_VERSION, kind: "heartbeat", generation }),
          frame.config.mcp.heartbeat_interval,
        );
        try {
          applyLog(name, frame.config);
        } catch (err) {
          fatal((err as Error).message);
          return;
        }
        try {
          component = await start(ctx);
          post({ v: PROTOCOL_VERSION, kind: "ready", generation });
        } catch (err) {
          const code = fatalCode(err);
          if (code !== undefined) {
            log.error(name, `start failed, a restart cannot help: ${(err as Error).message}`);
            fatal((err as Error).message, code);
            return;
          }
          // Let the MCP see an error event and restart us.
          clearInterval(heartbeat);
          throw err;
        }
        return;
      }
      case "peer":
        endpoint.setPeer(frame.name, frame.port, frame.instance);
        return;
      case "status":
        statusWaiters.get(frame.id)?.(frame.components);
        return;
      case "reload_result":
        reloadWaiters.get(frame.id)?.({ ok: frame.ok, ...(frame.reason ? { reason: frame.reason } : {}) });
        return;
      case "reload": {
        let error: string | undefined;
        try {
          applyLog(name, frame.config);
          await component?.reload?.(frame.config);
          log.info(name, component?.reload ? "configuration reloaded" : "log settings reloaded");
        } catch (err) {
          error = (err as Error).message;
          log.error(name, `reload failed, keeping the running configuration: ${error}`);
        }
        post({ v: PROTOCOL_VERSION, kind: "reloaded", generation, ...(error ? { error } : {}) });
        return;
      }
      case "shutdown":
        clearInterval(heartbeat);
        for (const answer of [...statusWaiters.values()]) answer(undefined);
        for (const answer of [...reloadWaiters.values()]) answer(undefined);
        try {
          await component?.stop();
        } finally {
          endpoint.close();
          log.toFile(undefined);
          log.toSyslog(undefined);
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
