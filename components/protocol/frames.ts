// Frames: the envelopes around protocol messages. Two kinds of channel exist:
// - the control channel between the MCP and a worker (the worker's own postMessage), carrying ControlFrame;
// - one MessagePort per pair of workers, wired by the MCP, carrying PeerFrame (requests, responses, notices).
// A restarted worker gets fresh ports; its peers get the new port in a `peer` frame.

import type { Config } from "../../config/types.ts";
import type { Message, PeerName, WorkerName } from "./messages.ts";

/** One worker as the MCP sees it (the answer to `status_request`, for qmgrctl status). */
export interface ComponentStatus {
  name: WorkerName;
  /** Which of several workers of one component (smtps with processes > 1), 1-based; absent when one runs. */
  instance?: number;
  generation: number;
  restarts: number;
  ready: boolean;
  /** How long its current worker has been running (ms). */
  uptime: number;
}

/** MCP -> worker. */
export type McpFrame =
  /** `instance`: which of the component's several workers this is (1-based), absent when it has one. */
  | { v: number; kind: "init"; name: WorkerName; instance?: number; generation: number; config: Config }
  /** A port to `name` (to its worker `instance` when the component runs several). */
  | { v: number; kind: "peer"; name: PeerName; instance?: number; port: MessagePort }
  | { v: number; kind: "shutdown" }
  /** A new configuration (SIGHUP): the worker applies what it can live (log level, maps, ...). */
  | { v: number; kind: "reload"; config: Config }
  /** The answer to a worker's `status_request`. */
  | { v: number; kind: "status"; id: number; components: ComponentStatus[] }
  /** The answer to a worker's `reload_request`: whether the MTA took the new configuration, else why not. */
  | { v: number; kind: "reload_result"; id: number; ok: boolean; reason?: string };

/** Worker -> MCP. */
export type WorkerFrame =
  | { v: number; kind: "ready"; generation: number }
  | { v: number; kind: "heartbeat"; generation: number }
  /**
   * A condition a restart cannot cure: the MCP stops the MTA with `code` (sysexits.h: 78 configuration,
   * the default; 77 permissions; 64 usage). Any other code asks for a restart like a crash.
   */
  | { v: number; kind: "fatal"; generation: number; reason: string; code?: number }
  /** The answer to `reload`: applied, or why not (the worker keeps running with what it had). */
  | { v: number; kind: "reloaded"; generation: number; error?: string }
  /** Asks the MCP for every worker's uptime and restarts (qmgr's control socket shows them). */
  | { v: number; kind: "status_request"; generation: number; id: number }
  /** Asks the MCP to reload the configuration, as SIGHUP does (qmgrctl reload). */
  | { v: number; kind: "reload_request"; generation: number; id: number }
  | { v: number; kind: "stopped"; generation: number };

/** Worker <-> worker over a peer port. */
export type PeerFrame =
  | { v: number; kind: "request"; id: number; body: Message }
  | { v: number; kind: "response"; id: number; body: Message }
  | { v: number; kind: "notify"; body: Message };
