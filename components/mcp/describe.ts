// What `-VV` adds to the effective configuration: what the MCP derives from it, as comments: each
// component's log level (as a name), restart dependencies, start action and log destination (and how many
// smtps workers serve each section), and the
// nameservers and ports the files named by the configuration give. Reads the mailertable and
// /etc/resolv.conf when it may; says so when it may not.

import { logFile, serviceOptions } from "../../config/service.ts";
import { sectionProcesses, smtpsInstances } from "../../config/processes.ts";
import type { Config } from "../../config/types.ts";
import { COMPONENTS, SERVICES, type WorkerName } from "../protocol/messages.ts";
import { configuredNameservers, hostPort } from "../smar/dns/nameservers.ts";
import { mailertablePorts } from "../smar/mailertable.ts";
import { levelOf } from "../util/log.ts";
import { RESOLV_CONF } from "./permissions.ts";

/** The derived values as smx.conf comments. */
export async function describeDerived(config: Config, resolvConf = RESOLV_CONF): Promise<string> {
  const names: (WorkerName | "mcp")[] = ["mcp", ...COMPONENTS];
  for (const s of SERVICES) if ((config as unknown as Record<string, unknown>)[s]) names.push(s);
  const lines = ["# Derived by the MCP:"];
  for (const name of names) {
    const o = serviceOptions(config, name);
    const deps = o.restart_dependencies.length ? o.restart_dependencies.join(", ") : "none";
    const parts = [`log_level ${o.log_level} (${levelOf(o.log_level)})`];
    if (name !== "mcp") parts.push(`restart_dependencies ${deps}`, `start_action ${o.start_action}`);
    if (name === "smtps") {
      const each = config.smtps.map((s) => `${s.name} ${sectionProcesses(s)}`).join(", ");
      parts.push(`workers ${smtpsInstances(config)} (${each})`);
    }
    parts.push(`logs to ${logFile(config, name) ?? "stderr"}`);
    lines.push(`#   ${name}: ${parts.join(", ")}`);
  }
  const from = config.smar.nameserver.length ? "configured" : `from ${resolvConf}`;
  lines.push(
    `#   nameservers (${from}): ${await attempt(async () =>
      (await configuredNameservers(config.smar.nameserver, resolvConf)).map((ns) => hostPort(ns.ip, ns.port))
    )}`,
  );
  const ports = async () => {
    const set = new Set([25, ...config.smtpc.ports]);
    if (config.smar.mailertable) {
      for (const p of await mailertablePorts(config.smar.mailertable)) {
        set.add(p);
      }
    }
    return [...set].sort((a, b) => a - b).map(String);
  };
  lines.push(`#   ports smtpc may connect to (25 and the mailertable's): ${await attempt(ports)}`);
  return lines.join("\n");
}

async function attempt(fn: () => Promise<string[]>): Promise<string> {
  try {
    const items = await fn();
    return items.length ? items.join(", ") : "none";
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}
