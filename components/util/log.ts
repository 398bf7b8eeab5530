// Logging: one line per event in syslog form, `Mmm dd hh:mm:ss HOST TAG[PID]: [warning: |error: ]TEXT`,
// the form mail operators' tools read (pflogsumm, fail2ban, logwatch). TAG is the component's ident: by
// default `smx/<component>`, except the SMTP server, which logs as `smx/smtpd` because those tools
// recognise the SMTP server's lines by that process name (Postfix's `smtpd`); the name before the slash
// is smx's, never Postfix's. Lines go to stderr, or to the file configured for this isolate (each worker
// is its own isolate and logs for one component; the main isolate logs for the MCP), and also to a syslog
// server when one is configured (RFC 3164 over UDP or TCP, see syslog.ts). The level comes from the
// configuration (sendmail X's numeric Log_Level, see levelOf). Writes only the one log file it is told to
// open, if any, and sends only to the one syslog server it is told about.

import {
  FACILITIES,
  logFacilities,
  logIdents,
  logOptions,
  type SyslogTarget,
  syslogTarget,
} from "../../config/log_settings.ts";
import type { Config } from "../../config/types.ts";
import { SyslogTransport } from "./syslog.ts";

export type Level = "error" | "warn" | "info" | "debug";
const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };
/** syslog(3) severities of our levels. */
const SEVERITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };
/** What a line's text starts with at each level (Postfix's `warning:` and `error:`). */
const PREFIX: Record<Level, string> = { error: "error: ", warn: "warning: ", info: "", debug: "" };

/** The ident a component logs under when its `log { ident }` names none. */
export function defaultIdent(component: string): string {
  return `smx/${component === "smtps" ? "smtpd" : component}`;
}

/** sendmail X's numeric Log_Level as a level: 0-2 errors, 3-5 warnings too, 6-9 events (default 9), 10+ debug. */
export function levelOf(logLevel: number): Level {
  if (logLevel <= 2) return "error";
  if (logLevel <= 5) return "warn";
  if (logLevel <= 9) return "info";
  return "debug";
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The syslog time stamp (RFC 3164 4.1.2), local time: `Dec  4 18:34:40`. */
export function syslogStamp(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, " ")} ${two(d.getHours())}:${
    two(d.getMinutes())
  }:${two(d.getSeconds())}`;
}

let threshold = ORDER.info;
let file: { path: string; handle: Deno.FsFile } | undefined;
let sink: ((line: string) => void) | undefined;
let host = "localhost";
let facility = FACILITIES.mail;
let syslog: SyslogTransport | undefined;
const idents = new Map<string, string>();
/** Facilities of components whose own `log { facility }` differs from the global one. */
const facilities = new Map<string, number>();
/** openlog(3) options by component, where the configuration sets some. */
const logOptionsOf = new Map<string, string[]>();
const encoder = new TextEncoder();

function emit(level: Level, component: string, text: string): void {
  if (ORDER[level] > threshold) return;
  const now = new Date();
  // openlog(3)'s options: `pid` puts the process id in the tag (smx's default when none are set),
  // `perror` also copies each line to stderr when the lines go to a log file.
  const options = logOptionsOf.get(component);
  const pid = options === undefined || options.includes("pid") ? `[${Deno.pid}]` : "";
  const tag = `${idents.get(component) ?? defaultIdent(component)}${pid}`;
  // Control characters from peers never reach the log raw.
  const message = `${tag}: ${PREFIX[level]}${escapeControls(text)}`;
  const line = `${syslogStamp(now)} ${host} ${message}`;
  if (sink) sink(line);
  syslog?.send(`<${(facilities.get(component) ?? facility) * 8 + SEVERITY[level]}>${line}`);
  if (file) {
    try {
      writeAll(file.handle, encoder.encode(`${line}\n`));
      if (options?.includes("perror")) console.error(line);
      return;
    } catch (err) {
      console.error(
        `${syslogStamp(now)} ${host} ${tag}: error: write the log file ${file.path}: ${
          (err as Error).message
        }`,
      );
    }
  }
  console.error(line);
}

function writeAll(handle: Deno.FsFile, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += handle.writeSync(bytes.subarray(done));
}

// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g;

/** Replaces control characters (other than tab) with `\xNN`, so peer-supplied text cannot forge log lines. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export interface LogIdentity {
  /** The HOST field of each line (the configuration's `hostname`). */
  host?: string;
  /** The syslog facility by name (`mail`, `daemon`, `local0`, ...). */
  facility?: string;
  /** Component name -> ident (`log { ident }` of its section). */
  idents?: Record<string, string>;
  /** Component name -> facility (`log { facility }` of its section), over `facility`. */
  facilities?: Record<string, string>;
  /** Component name -> openlog(3) options (`log { options }`); replaces what was set before. */
  options?: Record<string, string[]>;
}

function facilityNumber(name: string): number {
  const f = FACILITIES[name.toLowerCase()];
  if (f === undefined) throw new RangeError(`Unknown syslog facility: ${name}`);
  return f;
}

export const log = {
  /** Sets the level by name or by sendmail X's number. */
  setLevel(level: Level | number): void {
    threshold = ORDER[typeof level === "number" ? levelOf(level) : level];
  },
  /** Sets what each line says about where it comes from; absent fields keep their value. */
  setIdentity(id: LogIdentity): void {
    if (id.host !== undefined) host = id.host;
    if (id.facility !== undefined) facility = facilityNumber(id.facility);
    if (id.idents) { for (const [c, i] of Object.entries(id.idents)) idents.set(c, i); }
    if (id.facilities) {
      facilities.clear();
      for (const [c, f] of Object.entries(id.facilities)) facilities.set(c, facilityNumber(f));
    }
    if (id.options) {
      logOptionsOf.clear();
      for (const [c, o] of Object.entries(id.options)) logOptionsOf.set(c, o);
    }
  },
  /**
   * Sends the lines to `path` (appended, created when missing), or back to stderr without one. Opening the
   * same path again reopens it (after a log rotation). Throws when the file cannot be opened.
   */
  toFile(path: string | undefined): void {
    const handle = path === undefined ? undefined : Deno.openSync(path, { append: true, create: true });
    file?.handle.close();
    file = handle && path !== undefined ? { path, handle } : undefined;
  },
  /** Also sends every line to a syslog server; undefined stops that (and closes the socket). */
  toSyslog(target: SyslogTarget | undefined): void {
    if (syslog && target && syslog.sameAs(target)) return;
    syslog?.close();
    syslog = target ? new SyslogTransport(target) : undefined;
  },
  /** Resolves once the lines handed to the syslog server so far are sent (tests, shutdown). */
  async flushSyslog(): Promise<void> {
    await syslog?.flush();
  },
  /** The level in force. */
  get level(): Level {
    return (Object.keys(ORDER) as Level[]).find((l) => ORDER[l] === threshold)!;
  },
  /** Where the lines go now: a file path, or undefined for stderr. */
  get file(): string | undefined {
    return file?.path;
  },
  /** Also hands every line to `fn` (tests and tools watching the MCP); undefined removes it. */
  setSink(fn: ((line: string) => void) | undefined): void {
    sink = fn;
  },
  error: (c: string, t: string) => emit("error", c, t),
  warn: (c: string, t: string) => emit("warn", c, t),
  info: (c: string, t: string) => emit("info", c, t),
  debug: (c: string, t: string) => emit("debug", c, t),
};

/** What the configuration says about the origin of log lines: host, facilities, idents, options. */
export function logIdentity(config: Config): LogIdentity {
  return {
    host: config.hostname,
    facility: config.log?.facility ?? "mail",
    idents: logIdents(config),
    facilities: logFacilities(config),
    options: logOptions(config),
  };
}

/** Takes the host name, facility, idents and syslog server from the configuration (start and reload). */
export function applyLogIdentity(config: Config): void {
  log.setIdentity(logIdentity(config));
  log.toSyslog(syslogTarget(config));
}
