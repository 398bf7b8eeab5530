// qmgrctl's human-readable output: aligned tables and short key/value blocks for the answers of qmgr's
// control socket (scripts/qmgrctl.ts prints them, or the raw JSON with --json). Pure: touches nothing.

import type { CheckReport } from "../components/qmgr/queue_check.ts";

const MINUTE = 60_000;

/** `2024-05-01 12:00:00` (UTC), or "-" for no time. */
export function when(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

/** A duration like `3d 4h`, `12m 5s` or `800ms` (the two largest units). */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const units: [string, number][] = [["d", 24 * 60 * MINUTE], ["h", 60 * MINUTE], ["m", MINUTE], ["s", 1000]];
  const parts: string[] = [];
  let rest = ms;
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 || parts.length > 0) parts.push(`${n}${u}`);
    rest -= n * size;
    if (parts.length === 2) break;
  }
  return parts.filter((p) => !/^0/.test(p)).join(" ") || "0s";
}

/** A byte count with a unit: `512 B`, `4.2 KB`, `1.3 MB`. */
export function bytes(n: number | undefined): string {
  if (n === undefined) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Cuts text to `max` characters (with an ellipsis). */
export function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Left-aligned columns under a header line; numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  return cells.map((r) =>
    r.map((c, i) => numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ").trimEnd()
  ).join("\n");
}

/** `key: value` lines with the keys aligned. */
export function block(pairs: [string, string | number][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${v}`).join("\n");
}

// The answers as qmgr sends them (components/qmgr/control_commands.ts), as far as the output needs them.

interface ComponentRow {
  name: string;
  /** One of several workers of the component (smtps with processes > 1), shown as `smtps@2`. */
  instance?: number;
  generation: number;
  restarts: number;
  ready: boolean;
  uptime: number;
}

/** Destinations `status` prints at most (down and probing ones first). */
export const MAX_DESTINATION_ROWS = 50;

/** One destination (address:port) of the OCC as status reports it. */
export interface DestinationRow {
  address: string;
  state: "up" | "down" | "probe";
  window: number;
  max: number;
  active: number;
  downUntil?: number;
  failures: number;
  reason?: string;
}

export interface StatusAnswer {
  qmgr: { started: number; uptime: number };
  components: ComponentRow[] | "unknown";
  queue: Record<string, number>;
  activeQueue: { entries: number; max: number };
  noticesWaiting: number;
  occ: {
    entries: number;
    max: number;
    down: { address: string; downUntil?: number; failures: number }[];
    destinations?: DestinationRow[];
  };
  disk: { guard: boolean; low: boolean; free?: number; min: number; ok: number };
  perMinute: Record<string, number>;
}

export function formatStatus(s: StatusAnswer): string {
  const parts: string[] = [];
  if (s.components === "unknown") {
    parts.push(`components: unknown (the MCP did not answer); qmgr up ${duration(s.qmgr.uptime)}`);
  } else {
    parts.push(table(
      ["component", "state", "uptime", "restarts", "generation"],
      s.components.map((c) => [
        c.instance === undefined ? c.name : `${c.name}@${c.instance}`,
        c.ready ? "running" : "starting",
        c.ready ? duration(c.uptime) : "-",
        c.restarts,
        c.generation,
      ]),
    ));
  }
  const q = s.queue;
  parts.push(block([
    ["messages", q.messages],
    ["recipients", `${q.incoming} incoming, ${q.active} active, ${q.deferred} deferred, ${q.held} on hold`],
    ["active queue", `${s.activeQueue.entries} of ${s.activeQueue.max}`],
    ["DSNs waiting", s.noticesWaiting],
    ["connection cache", `${s.occ.entries} of ${s.occ.max} destinations, ${s.occ.down.length} down`],
    [
      "disk",
      s.disk.guard
        ? `${bytes(s.disk.free)} free${s.disk.low ? " - LOW: new mail refused" : ""} (min ${
          bytes(s.disk.min)
        })`
        : "guard off",
    ],
    ["per minute", Object.entries(s.perMinute).map(([k, v]) => `${k} ${v}`).join(", ")],
  ]));
  // The destinations worth a look: not up, or with transactions running (--json lists every one).
  const dests = s.occ.destinations?.filter((d) => d.state !== "up" || d.active > 0)
    .sort((a, b) => (a.state === "up" ? 1 : 0) - (b.state === "up" ? 1 : 0))
    .slice(0, MAX_DESTINATION_ROWS);
  if (dests && dests.length > 0) {
    parts.push(table(
      ["destination", "state", "window", "active", "failures", "until", "last error"],
      dests.map((d) => [
        d.address,
        d.state === "probe" ? "probing" : d.state,
        `${d.window}/${d.max}`,
        d.active,
        d.failures,
        d.downUntil ? when(d.downUntil) : "-",
        d.reason ?? "-",
      ]),
    ));
  } else if (s.occ.down.length > 0) {
    parts.push(table(
      ["host down", "until", "failures"],
      s.occ.down.map((d) => [d.address, when(d.downUntil), d.failures]),
    ));
  }
  return parts.join("\n\n");
}

export interface ListAnswer {
  rows: {
    id: string;
    arrival: number;
    size: number;
    sender: string;
    recipients: number;
    state: string;
    nextTry?: number;
    lastError?: string;
    holdReason?: string;
  }[];
  more: boolean;
}

/** The list as a table; `filtered` says whether the request asked for some messages only. */
export function formatList(l: ListAnswer, filtered = false): string {
  if (l.rows.length === 0) return filtered ? "no message in the queue matches" : "the queue is empty";
  const t = table(
    ["id", "arrival", "size", "sender", "rcpts", "state", "next try", "last error"],
    l.rows.map((r) => [
      r.id,
      when(r.arrival),
      r.size,
      cut(r.sender === "" ? "<>" : r.sender, 40),
      r.recipients,
      r.state,
      when(r.nextTry),
      cut(r.lastError ?? (r.holdReason !== undefined ? `quarantine: ${r.holdReason}` : ""), 60),
    ]),
  );
  return l.more ? `${t}\n(more messages match: use --limit)` : t;
}

export interface ShowAnswer {
  id: string;
  cdbPath: string;
  size: number;
  arrival: number;
  sender: string;
  clientIp: string;
  clientHelo: string;
  bodyType?: string;
  smtputf8: boolean;
  envid?: string;
  ret?: string;
  held: boolean;
  /** Why a milter or policy service quarantined it. */
  holdReason?: string;
  header?: string;
  /** With `show --body`: the whole content (latin1), as the CDB file holds it. */
  content?: { text: string; size: number; truncated: boolean };
  recipients: {
    index: number;
    address: string;
    notify?: string[];
    orcpt?: string;
    state: string;
    tries: number;
    nextTry?: number;
    lastReply?: string;
    lastRelay?: string;
    noticePending: boolean;
    history: { at: number; status: string; relay?: string; reply: string }[];
  }[];
}

export function formatShow(m: ShowAnswer): string {
  const env = block([
    [
      "id",
      m.id + (m.held ? ` (on hold${m.holdReason !== undefined ? `, quarantine: ${m.holdReason}` : ""})` : ""),
    ],
    ["arrival", when(m.arrival)],
    ["size", `${m.size} bytes`],
    ["sender", m.sender === "" ? "<>" : `<${m.sender}>`],
    ["client", `${m.clientHelo} [${m.clientIp}]`],
    ["body", `${m.bodyType ?? "7BIT"}${m.smtputf8 ? ", SMTPUTF8" : ""}`],
    ["DSN", `envid=${m.envid ?? "-"}, ret=${m.ret ?? "-"}`],
    ["content", m.cdbPath],
  ]);
  const rcpts = m.recipients.map((r) => {
    const head = `<${r.address}> ${r.state}, tries ${r.tries}` +
      (r.nextTry !== undefined ? `, next try ${when(r.nextTry)}` : "") +
      (r.notify ? `, notify=${r.notify.join(",")}` : "") + (r.orcpt ? `, orcpt=${r.orcpt}` : "") +
      (r.noticePending ? ", DSN pending" : "");
    const lines = r.history.map((h) => `    ${when(h.at)} ${h.status} via ${h.relay ?? "none"}: ${h.reply}`);
    return [head, ...lines].join("\n");
  });
  return [
    env,
    "",
    "recipients:",
    ...rcpts.map((r) => `  ${r}`),
    "",
    ...(m.content
      ? [
        `content (${m.content.size} bytes${
          m.content.truncated ? `, the first ${m.content.text.length} shown` : ""
        }):`,
        m.content.text.replace(/\r\n/g, "\n").replace(/\n$/, ""),
      ]
      : ["header:", m.header ?? "(content missing)"]),
  ]
    .join("\n");
}

export interface StatsAnswer {
  since: number;
  counters: Record<string, { total: number; perMinute: { last1: number; last5: number; last60: number } }>;
}

export function formatStats(s: StatsAnswer): string {
  return `since ${when(s.since)}\n` + table(
    ["counter", "total", "last 1 min", "last 5 min (per min)", "last 60 min (per min)"],
    Object.entries(s.counters).map(([k, v]) => [
      k,
      v.total,
      v.perMinute.last1,
      v.perMinute.last5,
      v.perMinute.last60,
    ]),
  );
}

/** True when a check found nothing wrong, or repaired what it found. */
export function checkClean(c: CheckReport): boolean {
  if (c.repaired) return !c.repaired.rebuild;
  const n = c.counts;
  return c.database === "ok" && n.lost + n.orphans + n.unfinished + n.unusable + n.differs === 0;
}

/** `qmgrctl check`: the database's verdict, then each kind of disagreement with the files it concerns. */
export function formatCheck(c: CheckReport): string {
  const lines = [
    `database: ${c.database}`,
    `${c.messages} messages in the database, ${c.files} queue files` +
    (c.young > 0 ? ` (${c.young} younger than a minute not judged)` : ""),
  ];
  const kinds: [keyof CheckReport["counts"], string][] = [
    ["lost", "lost (the database has them, their file is missing or unfinished)"],
    ["orphans", "orphans (complete files the database does not know)"],
    ["unfinished", "unfinished files (sessions cut before their 250)"],
    ["unusable", "unusable files (no envelope, or an unreadable one)"],
    ["differs", "differ (the file's envelope and the database disagree)"],
  ];
  for (const [k, what] of kinds) {
    if (c.counts[k] === 0) continue;
    lines.push(`${c.counts[k]} ${what}:`);
    for (const x of c[k]) lines.push(`  ${x}`);
    if (c[k].length < c.counts[k]) lines.push(`  ... ${c.counts[k] - c[k].length} more`);
  }
  if (c.repaired) {
    const r = c.repaired;
    lines.push(
      r.rebuild
        ? "repair: the database is rebuilt from the queue files (qmgr restarts)"
        : `repair: ${r.requeued} queued again, ${r.failed} failed with a DSN, ${r.removed} unfinished removed`,
    );
  } else if (!checkClean(c)) {
    lines.push("run `qmgrctl check --repair` to repair");
  } else {
    lines.push("the queue is consistent");
  }
  return lines.join("\n");
}

/** What explain answers: the envelope asked about and smar's steps. */
export interface ExplainAnswer {
  client: string;
  helo: string | null;
  sender: string;
  recipients: string[];
  server: string;
  steps: { stage: string; kind: string; text: string }[];
}

/** explain's steps under a heading per stage, each stage's verdict marked with `=>`. */
export function formatExplain(a: ExplainAnswer): string {
  const out = [
    `explain: client [${a.client}]${a.helo ? ` helo ${a.helo}` : ""}, from <${a.sender}>, to ${
      a.recipients.map((r) => `<${r}>`).join(", ")
    }, as smtps ${a.server} (nothing is sent or written)`,
  ];
  let stage: string | undefined;
  for (const step of a.steps) {
    if (step.stage !== stage) {
      stage = step.stage;
      out.push("", stage);
    }
    out.push(`  ${step.kind === "verdict" ? "=> " : ""}${step.text}`);
  }
  return out.join("\n");
}
