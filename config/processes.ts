// How many smtps workers the MCP starts, from sendmail X's options for them: `processes` of each smtps
// section (README 3.10: "number of processes to start"), bounded by the MCP options `min_processes` and
// `max_processes` of that section (README 3.7). smx's smtps workers share their listen sockets
// (SO_REUSEPORT: the kernel spreads new connections over them), so N workers for a section means N
// threads accepting its connections. Unset, a section gets one worker per two CPU cores (at least one,
// at most DEFAULT_PROCESSES_CAP): qmgr, smar and smtpc stay one thread each and need cores of their own,
// and on a 2-core machine a second smtps worker measured no faster (README, Benchmark). Worker k (1-based) serves every section with at least k processes; a unix listen
// socket is served by worker 1 only (a path cannot be bound twice). Pure functions; touches nothing.

import type { Config, ListenSocket, SmtpsConfig } from "./types.ts";

/** The most smtps workers a section gets when it sets no `processes`. */
export const DEFAULT_PROCESSES_CAP = 4;

/** The number of CPU cores as the runtime reports it (1 when it cannot tell). */
export function cpuCores(): number {
  const n = globalThis.navigator?.hardwareConcurrency;
  return typeof n === "number" && n >= 1 ? Math.floor(n) : 1;
}

/** The default for a section without `processes`: one per two cores, at least 1, at most DEFAULT_PROCESSES_CAP. */
export function defaultProcesses(cores = cpuCores()): number {
  return Math.max(1, Math.min(Math.floor(cores / 2), DEFAULT_PROCESSES_CAP));
}

/** How many smtps workers serve `server`: its `processes`, else the default within min/max_processes. */
export function sectionProcesses(server: SmtpsConfig, cores = cpuCores()): number {
  if (server.processes !== undefined) return server.processes;
  let n = defaultProcesses(cores);
  if (server.min_processes !== undefined) n = Math.max(n, server.min_processes);
  if (server.max_processes !== undefined) n = Math.min(n, server.max_processes);
  return n;
}

/** How many smtps workers the MCP starts: the most any section asks for. */
export function smtpsInstances(config: Config, cores = cpuCores()): number {
  return Math.max(1, ...config.smtps.map((s) => sectionProcesses(s, cores)));
}

/** Whether smtps worker `instance` (1-based) serves `server`. */
export function servesSection(instance: number, server: SmtpsConfig, cores = cpuCores()): boolean {
  return instance <= sectionProcesses(server, cores);
}

/** Whether smtps worker `instance` listens on `socket` (a unix socket has one worker: the first). */
export function servesSocket(instance: number, socket: ListenSocket): boolean {
  return socket.type === "inet" || instance === 1;
}

/**
 * Why `server`'s process options contradict each other (`processes` outside min..max, min above max),
 * or undefined when they agree.
 */
export function processesProblem(server: SmtpsConfig): string | undefined {
  const { processes: n, min_processes: min, max_processes: max } = server;
  const name = `smtps ${server.name}`;
  if (min !== undefined && max !== undefined && min > max) {
    return `min_processes = ${min} of ${name} is above its max_processes = ${max}, expected min <= max`;
  }
  if (n !== undefined && min !== undefined && n < min) {
    return `processes = ${n} of ${name} is below its min_processes = ${min}, expected at least ${min}`;
  }
  if (n !== undefined && max !== undefined && n > max) {
    return `processes = ${n} of ${name} is above its max_processes = ${max}, expected at most ${max}`;
  }
  return undefined;
}
