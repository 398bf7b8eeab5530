// The metrics worker's parts without the MTA: counters that keep growing across a component's restart,
// the status page escaping what the queue holds, the health check's reasons, and the collector asking the
// components at most once per interval however many scrapes come.

import assert from "node:assert/strict";
import { Collector, MIN_INTERVAL, type View } from "../components/metrics/collect.ts";
import { health } from "../components/metrics/health.ts";
import { PrometheusView } from "../components/metrics/prometheus.ts";
import { statusPage } from "../components/metrics/status_page.ts";
import { Endpoint } from "../components/protocol/endpoint.ts";
import type { ComponentStatus } from "../components/protocol/frames.ts";
import type { QmgrSnapshotMessage } from "../components/protocol/messages.ts";
import type { WorkerContext } from "../components/protocol/worker_runtime.ts";
import { Histogram } from "../components/util/histogram.ts";
import { SmtpsCounters } from "../components/smtps/counters.ts";
import { defaultConfig } from "../config/defaults.ts";

function qmgr(
  started: number,
  delivered: number,
  extra: Partial<QmgrSnapshotMessage> = {},
): QmgrSnapshotMessage {
  const empty = () => ({ messages: 0, bytes: 0, age: new Histogram().data() });
  const sent = new Histogram();
  for (let i = 0; i < delivered; i++) sent.observe(2);
  return {
    type: "qmgr.snapshot",
    started,
    counters: { received: delivered, delivered, deferred: 0, bounced: 0, dsn: 0 },
    perMinute: { received: [], delivered: [], deferred: [], bounced: [] },
    delay: { sent: sent.data(), deferred: new Histogram().data(), bounced: new Histogram().data() },
    tlsOut: {},
    queue: {
      recipients: { incoming: 0, active: 0, deferred: 0, held: 0 },
      states: { incoming: empty(), active: empty(), deferred: empty(), hold: empty() },
      domains: [],
    },
    down: [],
    diskLow: false,
    ...extra,
  };
}

function view(q: QmgrSnapshotMessage, components: ComponentStatus[] = []): View {
  return {
    at: 1_000_000,
    qmgr: { ok: true, value: q },
    smtps: { ok: false, reason: "not asked" },
    smtpsComplete: false,
    components: { ok: true, value: components },
  };
}

const value = (text: string, sample: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
};

Deno.test("PrometheusView keeps counters growing when qmgr restarts and counts from 0 again", async () => {
  const p = new PrometheusView();
  p.apply(view(qmgr(1, 5)));
  assert.equal(value(await p.text(), "smx_qmgr_recipients_delivered_total"), 5);
  p.apply(view(qmgr(1, 7)));
  assert.equal(value(await p.text(), "smx_qmgr_recipients_delivered_total"), 7);
  p.apply(view(qmgr(2, 3))); // a new qmgr: 3 since its start
  const text = await p.text();
  assert.equal(value(text, "smx_qmgr_recipients_delivered_total"), 10);
  assert.equal(value(text, 'smx_delivery_delay_seconds_count{status="sent"}'), 10);
  assert.equal(value(text, 'smx_delivery_delay_seconds_bucket{status="sent",le="1"}'), 0);
  assert.equal(value(text, 'smx_delivery_delay_seconds_bucket{status="sent",le="5"}'), 10);
  assert.equal(value(text, 'smx_delivery_delay_seconds_sum{status="sent"}'), 20);
  assert.equal(value(text, 'smx_component_answering{component="smtps"}'), 0);
});

Deno.test("the status page escapes what the queue holds", () => {
  const q = qmgr(1, 0, {
    down: [{ address: "192.0.2.1:25", until: 1_060_000, failures: 3, reason: "<script>alert(1)</script>" }],
  });
  q.queue.domains = [{
    domain: "<b>x</b>.test",
    recipients: 1,
    messages: 1,
    deferred: 1,
    oldest: 0,
    oldestId: "A",
  }];
  const html = statusPage(view(q), "mx<1>");
  assert.ok(!html.includes("<script>alert"), "no markup from the queue");
  assert.ok(html.includes("&#60;script&#62;alert(1)&#60;/script&#62;"));
  assert.ok(html.includes("smx on mx&#60;1&#62;"));
  assert.ok(!html.includes("<b>x</b>"));
  assert.ok(!/<script|src=|href="http/i.test(html), "self-contained: no script, no external asset");
});

Deno.test("health() names every worker that is not ready", () => {
  const c = (name: string, ready: boolean, uptime: number) =>
    ({ name, generation: 2, restarts: 1, ready, uptime }) as ComponentStatus;
  assert.deepEqual(health({ ok: true, value: [c("qmgr", true, 5_000)] }).ok, true);
  const h = health({ ok: true, value: [c("qmgr", true, 5_000), c("smtpc", false, 0), c("smar", false, 10)] });
  assert.equal(h.ok, false);
  assert.deepEqual(h.reasons, ["smtpc is down, waiting to be restarted", "smar is starting"]);
  assert.deepEqual(health({ ok: false, reason: "the MCP did not answer" }).reasons, [
    "the MCP did not answer",
  ]);
});

Deno.test("Collector asks at most once per interval, and concurrent scrapes share one round", async () => {
  let now = 0;
  let asked = 0;
  const ctx = {
    name: "metrics",
    generation: 1,
    config: defaultConfig(),
    endpoint: new Endpoint("metrics"), // no peers: qmgr and smtps answer "not available" at once
    fatal: () => {},
    mcpStatus: () => {
      asked++;
      return Promise.resolve([]);
    },
  } as WorkerContext;
  const c = new Collector(ctx, () => now);
  const [a, b] = await Promise.all([c.view(), c.view()]);
  assert.equal(asked, 1);
  assert.equal(a, b);
  assert.equal(a.qmgr.ok, false);
  now += MIN_INTERVAL - 1;
  await c.view();
  assert.equal(asked, 1, "an answer younger than the interval is served again");
  now += 1;
  await c.view();
  assert.equal(asked, 2);
});

Deno.test("SmtpsCounters reads mail authentication results from the log summary, SPF once", () => {
  const c = new SmtpsCounters();
  c.mailauth("spf", "pass"); // counted at MAIL
  c.mailauthSummary("spf=pass dkim=fail (bad signature) arc=none dmarc=fail(p=reject)", "spf");
  c.rejected("RCPT", 554, "5.7.1");
  c.rejected("RCPT", 554, "5.7.1");
  const s = c.snapshot();
  assert.deepEqual(s.mailauth, { "spf|pass": 1, "dkim|fail": 1, "arc|none": 1, "dmarc|fail": 1 });
  assert.deepEqual(s.rejected, { "RCPT|554|5.7.1": 2 });
});
