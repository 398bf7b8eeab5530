// qmgrctl (`deno task qmgrctl <command>`): inspects and steers the queue through qmgr's control socket.
// Sends one JSON request line and prints the answer as a table (or the raw JSON with --json). The task
// may read files and use unix sockets (the socket's path is only known once `-f FILE` is read; Deno's
// unix: permission names one path); run with less, it says which deno run line grants what it needs.
// Exit codes: 0 ok, 1 qmgr refused the request (an unknown id ...), 2 check found problems (and did
// not repair them), 64 usage, 69 no MTA running,
// 77 missing permissions, 78 a bad configuration file. Touches: the control socket (and the configuration file with --config).

import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { defaultConfig, loadConfig } from "../config/mod.ts";
import { parseTime } from "../config/values.ts";
import { callerPath } from "./caller_path.ts";
import {
  type ControlAnswer,
  type ControlRequest,
  controlSocketPath,
  LineSplitter,
} from "../components/qmgr/control_protocol.ts";
import type { CheckReport } from "../components/qmgr/queue_check.ts";
import {
  checkClean,
  type ExplainAnswer,
  formatCheck,
  formatExplain,
  formatList,
  formatShow,
  formatStats,
  formatStatus,
  type ListAnswer,
  type ShowAnswer,
  type StatsAnswer,
  type StatusAnswer,
} from "./qmgrctl_format.ts";

export const USAGE = `usage: deno task qmgrctl [-f FILE | --socket PATH] [--json] COMMAND
commands:
  status                      components (uptime, restarts), queue sizes, rates
  list [FILTER] [--limit N]   messages, oldest first
  show ID [--body]            envelope, each recipient's state and history, the header (--body: the
                              whole message, as postcat -bh shows it)
  flush [ID | @domain]        retry now (all deferred mail without an argument)
  hold TARGET                 keep messages from delivery (postsuper -h)
  release TARGET              let held messages go again (postsuper -H)
  requeue TARGET              lift holds and retry now, down marks forgotten (postsuper -r)
  delete TARGET               remove messages, no notice to the sender (postsuper -d)
  bounce TARGET               return messages to their senders with a DSN
  stats                       received, delivered, deferred, bounced: totals and per-minute rates
  reload                      read the configuration again (what SIGHUP does)
  check [--repair]            compare the database with the queue files (an fsck for the queue);
                              --repair queues orphans again, fails lost messages with a DSN,
                              removes unfinished files, rebuilds a damaged database
  explain --client IP [--helo NAME] --from ADDR --to ADDR [--to ADDR...] [--server NAME] [--auth USER]
                              every policy decision for that envelope, step by step (each map key
                              tried and its answer, DNS answers, aliases, local users, greylisting,
                              routes and next hops), as smtps section NAME (default the first) would
                              have them made (--auth: as if USER had authenticated with a
                              trusted mechanism); sends no mail and writes nothing
TARGET: one or more queue ids, ALL, - (queue ids read from standard input, one a line, as
  postqueue -j | jq or mailq output gives them), @domain (like --domain), or a FILTER
FILTER: --sender S  --recipient R (parts of the address)  --domain D (a recipient domain)
  --state incoming|active|deferred|hold  --age TIME (older than, e.g. 1h)
-f FILE: the configuration whose control socket to use (default: the built-in configuration's)`;

export const EX_USAGE = 64;
export const EX_UNAVAILABLE = 69;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Standard input as text (for `-`); absent: the process's. */
  stdin?(): Promise<string>;
}

const consoleIo: Io = { out: (t) => console.log(t), err: (t) => console.error(t) };

async function readStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

/** Ids per request: a request line stays well inside the control socket's MAX_LINE. */
const IDS_PER_REQUEST = 1000;
/** Longest answer qmgrctl reads (show --body of a big message). */
const MAX_ANSWER = 64 * 1024 * 1024;

const FILTER_OPTIONS = {
  sender: { type: "string" },
  recipient: { type: "string" },
  domain: { type: "string" },
  state: { type: "string" },
  age: { type: "string" },
} as const;

/** The filter options of list and the bulk commands as request arguments. */
function filterArgs(command: string, values: Record<string, string | boolean | undefined>) {
  const args: Record<string, unknown> = {};
  for (const k of ["sender", "recipient", "domain", "state"] as const) {
    if (values[k] !== undefined) args[k] = values[k];
  }
  if (values.age !== undefined) {
    const age = parseTime(String(values.age));
    if (age === undefined || age < 0) {
      throw new UsageError(`${command} --age: bad time ${values.age}, e.g. 30m or 2h`);
    }
    args.age = age;
  }
  return args;
}

/** Queue ids in text: the first word of each line that is one (mailq-style lines, one id a line, JSON). */
export function idsIn(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?<![0-9A-Za-z])([0-9A-F]{16,40})(?![0-9A-Za-z])/g)) out.push(m[1]);
  return out;
}

/** Why the control socket could not be used. */
export class ControlError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
    this.name = "ControlError";
  }
}

/** Sends one request to the control socket at `path` and returns qmgr's answer. */
export async function request(path: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlAnswer> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    const e = err as Error;
    if (e instanceof Deno.errors.NotFound) {
      throw new ControlError(
        `Connect to qmgr at ${path}: no MTA is running (no control socket there)`,
        EX_UNAVAILABLE,
      );
    }
    if (e instanceof Deno.errors.ConnectionRefused) {
      throw new ControlError(
        `Connect to qmgr at ${path}: no MTA is running (the socket is stale)`,
        EX_UNAVAILABLE,
      );
    }
    if (e.name === "NotCapable") {
      throw new ControlError(
        `Connect to qmgr at ${path}: this process may not use the socket: run it as\n  deno run ` +
          `--allow-read=${path} --allow-write=${path} --allow-net=unix:${
            resolve(path)
          } scripts/qmgrctl.ts ...`,
        EX_NOPERM,
      );
    }
    throw new ControlError(`Connect to qmgr at ${path}: ${e.message}`, EX_UNAVAILABLE);
  }
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const line = new TextEncoder().encode(JSON.stringify(req) + "\n");
    let off = 0;
    while (off < line.length) off += await conn.write(line.subarray(off));
    const split = new LineSplitter(MAX_ANSWER);
    const buf = new Uint8Array(256 * 1024);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      const [first] = split.push(buf.subarray(0, n));
      if (first !== undefined) return JSON.parse(first) as ControlAnswer;
    }
    throw new ControlError(`Ask qmgr at ${path}: the connection ended without an answer`, EX_UNAVAILABLE);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

class UsageError extends Error {}

/** The request a command line asks for. */
export function buildRequest(command: string, rest: string[]): ControlRequest {
  switch (command) {
    case "status":
    case "stats":
    case "reload":
      if (rest.length > 0) throw new UsageError(`${command} takes no arguments`);
      return { command };
    case "check":
      if (rest.some((a) => a !== "--repair")) throw new UsageError("check takes only --repair");
      return { command, args: { repair: rest.includes("--repair") } };
    case "show": {
      const body = rest.includes("--body");
      const ids = rest.filter((a) => a !== "--body");
      if (ids.length !== 1) throw new UsageError("show takes one queue id");
      return { command, args: { id: ids[0], ...(body ? { body: true } : {}) } };
    }
    case "hold":
    case "release":
    case "delete":
    case "bounce":
    case "requeue": {
      const { values, positionals } = parseArgs({
        args: rest,
        options: FILTER_OPTIONS,
        strict: true,
        allowPositionals: true,
      });
      const filter = filterArgs(command, values);
      const domains = positionals.filter((p) => p.startsWith("@"));
      const words = positionals.filter((p) => !p.startsWith("@"));
      if (domains.length > 1) throw new UsageError(`${command} takes one @domain`);
      if (domains.length === 1) filter.domain = domains[0].slice(1);
      const hasFilter = Object.keys(filter).length > 0;
      if (words.length === 0 && !hasFilter) {
        throw new UsageError(`${command} needs queue ids, ALL, - or a filter`);
      }
      if (words.length > 0 && hasFilter) {
        throw new UsageError(`${command}: give queue ids or a filter, not both`);
      }
      if (words.length === 1 && words[0] === "ALL") return { command, args: { all: true } };
      if (words.includes("ALL")) throw new UsageError(`${command} ALL takes nothing else`);
      if (hasFilter) return { command, args: { filter } };
      if (words.length === 1 && words[0] !== "-") return { command, args: { id: words[0] } };
      return { command, args: { ids: words } }; // "-" is replaced by the ids read from stdin
    }
    case "flush": {
      if (rest.length > 1) throw new UsageError("flush takes at most one queue id or @domain");
      if (rest.length === 0) return { command };
      return rest[0].startsWith("@")
        ? { command, args: { domain: rest[0].slice(1) } }
        : { command, args: { id: rest[0] } };
    }
    case "list": {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...FILTER_OPTIONS, limit: { type: "string" } },
        strict: true,
        allowPositionals: true,
      });
      if (positionals.length > 0) throw new UsageError(`list takes options only, not ${positionals[0]}`);
      const args = filterArgs("list", values);
      if (values.limit !== undefined) {
        const limit = Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1) {
          throw new UsageError(`list --limit: bad number ${values.limit}`);
        }
        args.limit = limit;
      }
      return { command, args };
    }
    case "explain": {
      const { values, positionals } = parseArgs({
        args: rest,
        options: {
          client: { type: "string" },
          helo: { type: "string" },
          from: { type: "string" },
          to: { type: "string", multiple: true },
          server: { type: "string" },
          auth: { type: "string" },
        },
        strict: true,
        allowPositionals: true,
      });
      if (positionals.length > 0) throw new UsageError(`explain takes options only, not ${positionals[0]}`);
      if (values.client === undefined) throw new UsageError("explain needs --client IP");
      if (values.from === undefined) {
        throw new UsageError("explain needs --from ADDRESS (<> for the null sender)");
      }
      if (!values.to?.length) throw new UsageError("explain needs --to ADDRESS (one or more)");
      const args: Record<string, unknown> = { client: values.client, from: values.from, to: values.to };
      if (values.helo !== undefined) args.helo = values.helo;
      if (values.server !== undefined) args.server = values.server;
      if (values.auth !== undefined) args.auth = values.auth;
      return { command, args };
    }
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

/** Human-readable text of a successful answer. */
export function formatAnswer(req: ControlRequest, result: unknown): string {
  const command = req.command;
  switch (command) {
    case "status":
      return formatStatus(result as StatusAnswer);
    case "list":
      return formatList(result as ListAnswer, Object.keys(req.args ?? {}).some((k) => k !== "limit"));
    case "show":
      return formatShow(result as ShowAnswer);
    case "stats":
      return formatStats(result as StatsAnswer);
    case "flush":
      return `${(result as { recipients: number }).recipients} recipients due now`;
    case "reload":
      return "configuration reloaded";
    case "check":
      return formatCheck(result as CheckReport);
    case "explain":
      return formatExplain(result as ExplainAnswer);
    case "hold":
    case "release":
    case "delete":
    case "bounce":
    case "requeue": {
      const verb = {
        hold: "on hold",
        release: "released",
        delete: "deleted",
        bounce: "returned to the sender",
        requeue: "requeued",
      };
      const r = result as { messages?: number; recipients: number; unknown?: string[] };
      const lines = (r.unknown ?? []).map((id) => `${id}: no such message in the queue`);
      const count = r.messages === undefined ? "" : `${r.messages} messages, `;
      return [...lines, `${verb[command]}: ${count}${r.recipients} recipients`].join("\n");
    }
  }
}

/** Sends `req`; a long list of ids goes in several requests whose counts are added up. */
async function sendBatched(socket: string, req: ControlRequest): Promise<ControlAnswer> {
  const ids = req.args?.ids as string[] | undefined;
  if (ids === undefined || ids.length <= IDS_PER_REQUEST) return await request(socket, req);
  const sum = { messages: 0, recipients: 0, unknown: [] as string[] };
  for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) {
    const a = await request(socket, { ...req, args: { ids: ids.slice(i, i + IDS_PER_REQUEST) } });
    if (!a.ok) return a;
    const r = a.result as typeof sum;
    sum.messages += r.messages;
    sum.recipients += r.recipients;
    sum.unknown.push(...r.unknown);
  }
  return { ok: true, result: sum };
}

/** Runs qmgrctl with `args` (the command line after the task name); returns the exit code. */
export async function qmgrctl(args: string[], io: Io = consoleIo): Promise<number> {
  let socket: string;
  let json: boolean;
  let req: ControlRequest;
  try {
    // Options before the command are qmgrctl's own; what follows the command is the command's.
    let at = 0;
    while (at < args.length && args[at].startsWith("-")) {
      at += /^(--socket|-s|--config|-f)$/.test(args[at]) ? 2 : 1;
    }
    const { values } = parseArgs({
      args: args.slice(0, at),
      options: {
        socket: { type: "string", short: "s" },
        config: { type: "string", short: "f" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    if (at >= args.length) throw new UsageError("missing command");
    const rest = args.slice(at + 1);
    json = values.json === true || rest.includes("--json");
    req = buildRequest(args[at], rest.filter((a) => a !== "--json"));
    if (values.socket !== undefined) socket = callerPath(values.socket);
    else if (values.config !== undefined) {
      socket = controlSocketPath(await loadConfig(callerPath(values.config)));
    } else socket = controlSocketPath(defaultConfig());
  } catch (err) {
    if (err instanceof UsageError || (err as Error).name === "TypeError") {
      io.err(`qmgrctl: ${(err as Error).message}\n${USAGE}`);
      return EX_USAGE;
    }
    io.err(`qmgrctl: ${(err as Error).message}`);
    const name = (err as Error).name;
    return name === "NotCapable" ? EX_NOPERM : name === "ConfigError" ? EX_CONFIG : EX_USAGE;
  }
  const ids = req.args?.ids as string[] | undefined;
  if (ids?.includes("-")) {
    const read = idsIn(await (io.stdin ?? readStdin)());
    req = { ...req, args: { ids: [...ids.filter((i) => i !== "-"), ...read] } };
  }
  let answer: ControlAnswer;
  try {
    answer = await sendBatched(socket, req);
  } catch (err) {
    io.err(`qmgrctl: ${(err as Error).message}`);
    return err instanceof ControlError ? err.code : EX_UNAVAILABLE;
  }
  if (!answer.ok) {
    io.err(`qmgrctl: ${answer.error}`);
    return 1;
  }
  io.out(json ? JSON.stringify(answer.result, null, 2) : formatAnswer(req, answer.result));
  if (req.command === "check" && !checkClean(answer.result as CheckReport)) return 2;
  const unknown = (answer.result as { unknown?: unknown[] } | null)?.unknown;
  return Array.isArray(unknown) && unknown.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await qmgrctl(Deno.args));
