// The status page (GET /): one self-contained HTML page (inline CSS and SVG, no script, no external
// asset; it reloads itself every 30 s) that an operator reads at a glance: the health of every worker,
// the queue by state and by destination domain with the oldest message, the last hour's accepted,
// delivered and deferred mail per minute as a chart, the destinations marked down, and today's counts.
// Every value from the queue is escaped. Pure: renders a View.

import type { QmgrSnapshotMessage, SmtpsSnapshotMessage } from "../protocol/messages.ts";
import { lineChart } from "./chart.ts";
import type { View } from "./collect.ts";
import { health, workerLabel } from "./health.ts";

const STATES = [
  ["incoming", "Incoming", "waiting for a first delivery attempt"],
  ["active", "Active", "being delivered now"],
  ["deferred", "Deferred", "waiting for a retry"],
  ["hold", "Held", "kept until released (qmgrctl release)"],
] as const;

/** The page for `view`; `hostname` names the MTA. */
export function statusPage(view: View, hostname: string): string {
  const h = health(view.components);
  const q = view.qmgr.ok ? view.qmgr.value : undefined;
  const s = view.smtps.ok ? sumSmtps(view.smtps.value.map((w) => w.snapshot)) : undefined;
  const body = [
    `<header><h1>smx on ${esc(hostname)}</h1>`,
    `<p class="badge ${h.ok ? "ok" : "bad"}" id="health">${h.ok ? "healthy" : "not healthy"}</p>`,
    `<p class="muted">as of ${esc(new Date(view.at).toISOString().replace("T", " ").slice(0, 19))} UTC` +
    ` &middot; this page reloads every 30 s</p></header>`,
    components(view),
    q ? queue(q, view.at) : unavailable("Queue", view.qmgr.ok ? "" : view.qmgr.reason),
    q ? chart(q) : "",
    q ? domains(q, view.at) : "",
    q ? down(q, view.at) : "",
    totals(q, s),
  ].join("\n");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>smx status: ${esc(hostname)}</title>
<style>${CSS}</style></head>
<body>
${body}
</body></html>
`;
}

function components(view: View): string {
  if (!view.components.ok) return unavailable("Components", view.components.reason);
  const rows = view.components.value.map((c) => {
    const state = c.ready ? "ready" : c.uptime === 0 ? "down" : "starting";
    const name = workerLabel(c);
    return `<tr data-component="${esc(name)}"><td>${esc(name)}</td>` +
      `<td><span class="dot ${state}"></span><span class="state">${state}</span></td>` +
      `<td class="n">${c.generation}</td><td class="n">${c.restarts}</td>` +
      `<td class="n">${c.uptime ? duration(c.uptime) : "&ndash;"}</td></tr>`;
  }).join("");
  return section(
    "Components",
    `<table id="components"><thead><tr><th>worker</th><th>health</th><th class="n">generation</th>` +
      `<th class="n">restarts</th><th class="n">up</th></tr></thead><tbody>${rows}</tbody></table>`,
  );
}

function queue(q: QmgrSnapshotMessage, at: number): string {
  const rcpt = q.queue.recipients;
  const recipients: Record<string, number> = {
    incoming: rcpt.incoming,
    active: rcpt.active,
    deferred: rcpt.deferred,
    hold: rcpt.held,
  };
  const total = STATES.reduce((n, [k]) => n + q.queue.states[k].messages, 0);
  const cards = STATES.map(([key, label, what]) => {
    const st = q.queue.states[key];
    return `<div class="card ${key}" id="queue-${key}" title="${what}">` +
      `<div class="label">${label}</div>` +
      `<div class="big" id="queue-${key}-messages">${st.messages}</div>` +
      `<div class="muted">${plural(st.messages, "message")} &middot; ` +
      `<span id="queue-${key}-recipients">${recipients[key]}</span>` +
      ` ${recipients[key] === 1 ? "recipient" : "recipients"} &middot; ${bytes(st.bytes)}</div>` +
      `<div class="muted">oldest: ${
        st.oldest === undefined ? "&ndash;" : `${duration(at - st.oldest)} ago`
      }</div>` +
      `</div>`;
  }).join("");
  const disk = q.diskFree === undefined
    ? ""
    : `<p class="${q.diskLow ? "warn" : "muted"}">queue disk: ${bytes(q.diskFree)} free${
      q.diskLow ? " &mdash; low: smtps refuses new mail with 452" : ""
    }</p>`;
  return section(
    `Queue <span class="muted" id="queue-total">${total} ${plural(total, "message")}</span>`,
    `<div class="cards">${cards}</div>${disk}`,
  );
}

function chart(q: QmgrSnapshotMessage): string {
  const svg = lineChart([
    { label: "accepted", color: "#2b6cb0", values: q.perMinute.received },
    { label: "delivered", color: "#2f855a", values: q.perMinute.delivered },
    { label: "deferred", color: "#c05621", values: q.perMinute.deferred },
  ], "messages accepted, recipients delivered and deferred per minute, last hour");
  return section("Last hour, per minute", svg);
}

function domains(q: QmgrSnapshotMessage, at: number): string {
  if (q.queue.domains.length === 0) {
    return section("Queue by destination", `<p class="muted" id="domains-empty">no mail waiting</p>`);
  }
  const rows = q.queue.domains.map((d) =>
    `<tr data-domain="${esc(d.domain)}"><td>${esc(d.domain)}</td><td class="n">${d.recipients}</td>` +
    `<td class="n">${d.messages}</td><td class="n">${d.deferred}</td>` +
    `<td>${duration(at - d.oldest)} <span class="muted mono">${esc(d.oldestId)}</span></td></tr>`
  ).join("");
  return section(
    "Queue by destination",
    `<table id="domains"><thead><tr><th>domain</th><th class="n">recipients</th><th class="n">messages</th>` +
      `<th class="n">deferred</th><th>oldest message</th></tr></thead><tbody>${rows}</tbody></table>`,
  );
}

function down(q: QmgrSnapshotMessage, at: number): string {
  if (q.down.length === 0) {
    return section("Destinations down", `<p class="muted" id="down-none">none</p>`);
  }
  const rows = q.down.map((d) =>
    `<tr data-down="${esc(d.address)}"><td class="mono">${esc(d.address)}</td>` +
    `<td class="n">${d.failures}</td><td>${duration(Math.max(0, d.until - at))}</td>` +
    `<td>${esc(d.reason ?? "")}</td></tr>`
  ).join("");
  return section(
    `Destinations down <span class="muted">${q.down.length}</span>`,
    `<table id="down"><thead><tr><th>address</th><th class="n">failures</th><th>retry in</th>` +
      `<th>last error</th></tr></thead><tbody>${rows}</tbody></table>`,
  );
}

function totals(q: QmgrSnapshotMessage | undefined, s: SmtpsSnapshotMessage | undefined): string {
  const sum = (c: Record<string, number> | undefined) => Object.values(c ?? {}).reduce((a, b) => a + b, 0);
  const items: [string, string, number | undefined][] = [
    ["connections", "connects", s?.connects],
    ["accepted", "received", q?.counters.received],
    ["rejected", "rejected", s ? sum(s.rejected) : undefined],
    ["delivered", "delivered", q?.counters.delivered],
    ["deferred", "deferred", q?.counters.deferred],
    ["bounced", "bounced", q?.counters.bounced],
    ["AUTH failures", "sasl-failures", s ? sum(s.saslFailures) : undefined],
  ];
  const cells = items.map(([label, id, n]) =>
    `<div class="card small"><div class="label">${label}</div>` +
    `<div class="big" id="total-${id}">${n === undefined ? "&ndash;" : n}</div></div>`
  ).join("");
  return section(
    `Since the components started`,
    `<div class="cards">${cells}</div><p class="muted">Prometheus: <a href="/metrics">/metrics</a> &middot; ` +
      `health: <a href="/healthz">/healthz</a> &middot; queue as JSON: <a href="/api/queue">/api/queue</a></p>`,
  );
}

/** The word as it goes with the count, without the count: "message", "messages". */
function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}

/** The counters of several smtps workers added up. */
function sumSmtps(all: SmtpsSnapshotMessage[]): SmtpsSnapshotMessage {
  const add = (a: Record<string, number>, b: Record<string, number>) => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const zero: SmtpsSnapshotMessage = {
    type: "smtps.snapshot",
    started: 0,
    connects: 0,
    sessions: 0,
    messages: {},
    rejected: {},
    saslFailures: {},
    tls: {},
    mailauth: {},
  };
  return all.reduce((sum, s) => ({
    ...sum,
    connects: sum.connects + s.connects,
    sessions: sum.sessions + s.sessions,
    messages: add(sum.messages, s.messages),
    rejected: add(sum.rejected, s.rejected),
    saslFailures: add(sum.saslFailures, s.saslFailures),
    tls: add(sum.tls, s.tls),
    mailauth: add(sum.mailauth, s.mailauth),
  }), zero);
}

function unavailable(title: string, reason: string): string {
  return section(title, `<p class="warn">not available: ${esc(reason)}</p>`);
}

function section(title: string, html: string): string {
  return `<section><h2>${title}</h2>${html}</section>`;
}

/** `2h 5m`, `3m 12s`, `40 s`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:980px;padding:16px 20px;color:#1a202c;background:#f7fafc}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:12px}
h1{font-size:22px;margin:0}h2{font-size:16px;margin:0 0 8px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #edf2f7}
th{font-weight:600;color:#4a5568}.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#718096;font-weight:normal}.mono{font-family:ui-monospace,monospace;font-size:12px}
.warn{color:#c05621}.badge{padding:2px 10px;border-radius:12px;font-weight:600;margin:0}
.badge.ok{background:#c6f6d5;color:#22543d}.badge.bad{background:#fed7d7;color:#822727}
.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:6px}
.dot.ready{background:#38a169}.dot.starting{background:#d69e2e}.dot.down{background:#e53e3e}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{flex:1 1 180px;border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px}
.card.small{flex:1 1 110px}.card .label{color:#4a5568;font-weight:600}.big{font-size:26px;font-weight:700}
.card.deferred .big{color:#c05621}.card.hold .big{color:#6b46c1}.card.active .big{color:#2b6cb0}
.chart text{font-size:11px;fill:#4a5568}.chart .grid{stroke:#e2e8f0}
`;
