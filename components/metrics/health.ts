// The health check (/healthz): healthy when the MCP answers and every worker it runs is ready; otherwise
// the reasons, one per worker that is not. Pure.

import type { ComponentStatus } from "../protocol/frames.ts";
import type { Answer } from "./collect.ts";

export interface Health {
  ok: boolean;
  /** One line per worker: `qmgr ready (generation 1, 0 restarts, up 42 s)`, or why not. */
  lines: string[];
  /** Why not healthy (empty when ok). */
  reasons: string[];
}

/** A worker as the metrics worker names it: `qmgr`, or `smtps@2` for one of several workers. */
export function workerLabel(c: ComponentStatus): string {
  return c.instance === undefined ? c.name : `${c.name}@${c.instance}`;
}

/** The health of the MTA as the MCP's status says it. */
export function health(status: Answer<ComponentStatus[]>): Health {
  if (!status.ok) return { ok: false, lines: [], reasons: [status.reason] };
  const lines: string[] = [];
  const reasons: string[] = [];
  for (const c of status.value) {
    const about = `generation ${c.generation}, ${c.restarts} restart${c.restarts === 1 ? "" : "s"}`;
    if (c.ready) {
      lines.push(`${workerLabel(c)} ready (${about}, up ${Math.round(c.uptime / 1000)} s)`);
      continue;
    }
    const name = workerLabel(c);
    const why = c.uptime === 0 ? `${name} is down, waiting to be restarted` : `${name} is starting`;
    lines.push(`${why} (${about})`);
    reasons.push(why);
  }
  return { ok: reasons.length === 0, lines, reasons };
}
