// Builds an smtps section's filters from its `policy_milter { }` and `policy_service { }` subsections:
// each one's socket (inet with address and port, or unix with a path), its timeout, flags and default
// action, with the defaults of Postfix where the sendmail X README gives none (milter timeout 30s,
// policy timeout 100s). A policy service's default_action must be an action the service could answer
// (components/smtps/policy_action.ts reads it at run time). Touches nothing. Throws ConfigError via `fail`.

import type { Pos } from "./error.ts";
import type { Block } from "./read.ts";
import type { FilterSocket, PolicyMilterConfig, PolicyServiceConfig } from "./types.ts";

type Fail = (pos: Pos, detail: string) => never;

const SECOND = 1000;

/** Postfix's defaults: milter_command_timeout 30s, smtpd_policy_service_timeout 100s. */
export const MILTER_TIMEOUT = 30 * SECOND;
export const POLICY_TIMEOUT = 100 * SECOND;
/** Postfix's smtpd_policy_service_default_action, with the status of a policy failure. */
export const POLICY_DEFAULT_ACTION = "451 4.7.1 Policy service unavailable, try again later";

/** The first words an access-style policy action may start with (Postfix access(5)). */
const POLICY_ACTIONS = [
  "ok",
  "dunno",
  "reject",
  "defer",
  "defer_if_permit",
  "defer_if_reject",
  "prepend",
  "hold",
  "discard",
  "redirect",
  "filter",
  "warn",
  "info",
];

/** True when `action` is a policy action smtps understands (a known word or a 4xx/5xx reply). */
export function isPolicyAction(action: string): boolean {
  const word = action.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  return POLICY_ACTIONS.includes(word) || /^[45]\d\d$/.test(word);
}

/** The `policy_milter { }` subsection as configuration. */
export function buildMilter(block: Block, fail: Fail): PolicyMilterConfig {
  const flags = (block.values.flags as string[] | undefined) ?? [];
  if (flags.length > 1) {
    // The two flags contradict each other (end the session, or go on without the milter).
    const at = block.node.entries.find((e) => e.kind === "option" && e.name.toLowerCase() === "flags");
    fail(
      at ?? block.node,
      `conflicting flags abort and accept_but_reconnect in ${block.label}, expected one`,
    );
  }
  return {
    socket: filterSocket(block, fail),
    timeout: (block.values.timeout as number | undefined) ?? MILTER_TIMEOUT,
    flags,
    default_action: (block.values.default_action as PolicyMilterConfig["default_action"] | undefined) ??
      "tempfail",
  };
}

/** The `policy_service { }` subsection as configuration. */
export function buildPolicyService(block: Block, fail: Fail): PolicyServiceConfig {
  const action = (block.values.default_action as string | undefined) ?? POLICY_DEFAULT_ACTION;
  if (!isPolicyAction(action)) {
    const at = block.node.entries.find((e) =>
      e.kind === "option" && e.name.toLowerCase() === "default_action"
    );
    fail(
      at ?? block.node,
      `bad default_action ${
        JSON.stringify(action)
      } in ${block.label}, expected an action like DUNNO, DEFER or "451 4.7.1 text"`,
    );
  }
  return {
    socket: filterSocket(block, fail),
    timeout: (block.values.timeout as number | undefined) ?? POLICY_TIMEOUT,
    default_action: action,
    stages: (block.values.stages as string[] | undefined) ?? ["rcpt"],
  };
}

function filterSocket(block: Block, fail: Fail): FilterSocket {
  const socket = block.blocks.find((b) => b.keyword === "socket");
  if (!socket) {
    fail(block.node, `missing section socket in ${block.label}, expected socket { type = inet; ... }`);
  }
  const v = socket!.values;
  const need = (option: string, form: string) => {
    if (v[option] === undefined) {
      fail(socket!.node, `missing option ${option} in ${socket!.label}, expected ${form}`);
    }
  };
  const type = v.type as string | undefined;
  if (type === undefined) {
    return fail(
      socket!.node,
      `missing option type in ${socket!.label}, expected type = inet; or type = unix;`,
    );
  }
  if (type === "unix") {
    need("path", "path = /path/to/socket;");
    for (const option of ["address", "port"]) {
      if (v[option] !== undefined) {
        fail(
          socket!.node,
          `unexpected option ${option} in ${socket!.label} of type unix, expected path only`,
        );
      }
    }
    return { type: "unix", path: v.path as string };
  }
  need("address", "address = 127.0.0.1;");
  need("port", "port = 8891;");
  if (v.path !== undefined) {
    fail(socket!.node, `unexpected option path in ${socket!.label} of type inet, expected address and port`);
  }
  return { type: "inet", address: v.address as string, port: v.port as number };
}
