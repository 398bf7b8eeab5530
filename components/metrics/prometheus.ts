// The Prometheus text of /metrics (npm:prom-client), names `smx_*` after postfix_exporter's: what smtps
// counts (connections, messages received, refusals by stage/code/status, SASL failures, TLS sessions, mail
// authentication results), what qmgr counts (recipients delivered, deferred, bounced, DSNs, outgoing TLS,
// the delay histograms), the queue now (messages, recipients and bytes per state, the age histogram, the
// oldest message), destinations down, the disk's free space, and each worker's readiness and restarts.
// The components keep plain counters since they started; this file turns them into counters that only
// grow while the MTA runs, whatever restarts: a component whose `started` changed counts from 0 again,
// and what it counts is added to what was counted before. Pure memory.

import client from "prom-client";
import type { HistogramData, LabelledCounts } from "../protocol/messages.ts";
import type { View } from "./collect.ts";
import { workerLabel } from "./health.ts";

type Labels = Record<string, string>;

/**
 * A histogram whose buckets are set from a component's data instead of observed here. prom-client's
 * Histogram can only observe, so this is a metric of its own: the registry asks any metric for get(),
 * which answers the series in prom-client's form (bucket counts cumulative, `le` labels, sum, count).
 */
class SetHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series = new Map<string, { labels: Labels; data: HistogramData }>();

  constructor(readonly name: string, readonly help: string, registry: client.Registry) {
    registry.registerMetric(this as unknown as client.Metric<string>);
  }

  /** The data for these labels from now on. */
  setData(labels: Labels, data: HistogramData): void {
    this.#series.set(JSON.stringify(labels), { labels, data });
  }

  reset(): void {
    this.#series.clear();
  }

  get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const { labels, data } of this.#series.values()) {
      let cumulative = 0;
      data.bounds.forEach((le, i) => {
        cumulative += data.counts[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      });
      cumulative += data.counts[data.bounds.length];
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { ...labels, le: "+Inf" },
        value: cumulative,
      });
      values.push({ metricName: `${this.name}_sum`, labels, value: data.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: cumulative });
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }
}

/**
 * Totals that survive a component's restart: each source's counts are added to what came before, and the
 * sources (several smtps workers) are added up per key.
 */
class Totals {
  readonly #started = new Map<string, number>();
  readonly #last = new Map<string, number>();
  readonly #sum = new Map<string, number>();

  /** The source's epoch: a new `started` means its counters began again at 0. */
  epoch(source: string, started: number): void {
    if (this.#started.get(source) === started) return;
    this.#started.set(source, started);
    for (const k of [...this.#last.keys()]) if (k.startsWith(`${source}\0`)) this.#last.delete(k);
  }

  /**
   * Takes `raw` (the source's count since it started) and returns the key's total since this worker
   * started, over every source.
   */
  add(source: string, key: string, raw: number): number {
    const k = `${source}\0${key}`;
    const before = this.#last.get(k) ?? 0;
    this.#last.set(k, raw);
    const total = (this.#sum.get(key) ?? 0) + Math.max(0, raw - before);
    this.#sum.set(key, total);
    return total;
  }
}

export class PrometheusView {
  readonly registry = new client.Registry();
  readonly #totals = new Totals();
  readonly #counters = new Map<string, client.Counter<string>>();
  readonly #gauges = new Map<string, client.Gauge<string>>();
  readonly #histograms = new Map<string, SetHistogram>();

  constructor() {
    const r = this.registry;
    const counter = (name: string, help: string, labelNames: string[] = []) =>
      this.#counters.set(name, new client.Counter({ name, help, labelNames, registers: [r] }));
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      this.#gauges.set(name, new client.Gauge({ name, help, labelNames, registers: [r] }));
    const histogram = (name: string, help: string) =>
      this.#histograms.set(name, new SetHistogram(name, help, r));

    counter("smx_smtpd_connects_total", "Connections smtps accepted.");
    gauge("smx_smtpd_sessions", "SMTP sessions open now.");
    counter(
      "smx_smtpd_messages_processed_total",
      "Messages smtps received (answered 250 after DATA or BDAT), by AUTH mechanism.",
      ["sasl_method"],
    );
    counter(
      "smx_smtpd_messages_rejected_total",
      "Policy refusals of smtps (NOQUEUE: reject lines), by stage, reply code and enhanced status.",
      ["stage", "code", "status"],
    );
    counter("smx_smtpd_sasl_authentication_failures_total", "Failed AUTH attempts, by mechanism.", [
      "sasl_method",
    ]);
    counter("smx_smtpd_tls_connections_total", "TLS sessions smtps negotiated.", [
      "trust",
      "protocol",
      "cipher",
    ]);
    counter(
      "smx_mailauth_results_total",
      "Mail authentication results of received mail (SPF, DKIM, DMARC, ARC).",
      [
        "method",
        "result",
      ],
    );
    counter("smx_qmgr_messages_received_total", "Messages qmgr committed to the queue.");
    counter("smx_qmgr_recipients_delivered_total", "Recipients delivered (status=sent).");
    counter("smx_qmgr_recipients_deferred_total", "Delivery attempts deferred (status=deferred).");
    counter("smx_qmgr_recipients_bounced_total", "Recipients bounced (status=bounced).");
    counter("smx_qmgr_dsn_sent_total", "Delivery status notifications qmgr made.");
    counter("smx_smtp_tls_connections_total", "TLS sessions smtpc negotiated, as it reported them.", [
      "trust",
      "protocol",
      "cipher",
    ]);
    histogram(
      "smx_delivery_delay_seconds",
      "Time from a message's arrival to each recipient's result, by status (sent, deferred, bounced).",
    );
    gauge("smx_queue_messages", "Messages in the queue, by state.", ["state"]);
    gauge("smx_queue_size_bytes", "Bytes of the messages in the queue, by state.", ["state"]);
    gauge("smx_queue_recipients", "Open recipients in the queue, by state.", ["state"]);
    gauge("smx_queue_oldest_message_age_seconds", "Age of the oldest message in each state.", ["state"]);
    histogram("smx_queue_message_age_seconds", "Age of the messages in the queue, by state.");
    gauge("smx_destinations_down", "Destinations (address:port) marked down now.");
    gauge("smx_disk_free_bytes", "Free space of the queue's file system at qmgr's last probe.");
    gauge("smx_disk_low", "1 while the queue's disk is below min_disk_space (smtps answers MAIL with 452).");
    gauge("smx_component_up", "1 when the worker is running and ready.", ["component"]);
    counter("smx_component_restarts_total", "Restarts of each worker since the MTA started.", ["component"]);
    gauge("smx_component_uptime_seconds", "How long each worker's current generation has been running.", [
      "component",
    ]);
    gauge("smx_component_answering", "1 when the component answered the metrics worker's last question.", [
      "component",
    ]);
  }

  /** Lays the view's answers over the metrics. */
  apply(view: View): void {
    const g = (n: string) => this.#gauges.get(n)!;
    const h = (n: string) => this.#histograms.get(n)!;
    g("smx_component_answering").set({ component: "qmgr" }, view.qmgr.ok ? 1 : 0);
    g("smx_component_answering").set({ component: "smtps" }, view.smtps.ok && view.smtpsComplete ? 1 : 0);

    if (view.smtps.ok) {
      // Each smtps worker counts on its own: its own epoch, its counts added to the others'.
      let sessions = 0;
      for (const { peer, snapshot: s } of view.smtps.value) {
        this.#totals.epoch(peer, s.started);
        this.#count(peer, "smx_smtpd_connects_total", {}, s.connects);
        sessions += s.sessions;
        this.#countAll(peer, "smx_smtpd_messages_processed_total", ["sasl_method"], s.messages);
        this.#countAll(peer, "smx_smtpd_messages_rejected_total", ["stage", "code", "status"], s.rejected);
        this.#countAll(peer, "smx_smtpd_sasl_authentication_failures_total", ["sasl_method"], s.saslFailures);
        this.#countAll(peer, "smx_smtpd_tls_connections_total", ["trust", "protocol", "cipher"], s.tls);
        this.#countAll(peer, "smx_mailauth_results_total", ["method", "result"], s.mailauth);
      }
      g("smx_smtpd_sessions").set(sessions);
    }
    if (view.qmgr.ok) {
      const q = view.qmgr.value;
      this.#totals.epoch("qmgr", q.started);
      this.#count("qmgr", "smx_qmgr_messages_received_total", {}, q.counters.received);
      this.#count("qmgr", "smx_qmgr_recipients_delivered_total", {}, q.counters.delivered);
      this.#count("qmgr", "smx_qmgr_recipients_deferred_total", {}, q.counters.deferred);
      this.#count("qmgr", "smx_qmgr_recipients_bounced_total", {}, q.counters.bounced);
      this.#count("qmgr", "smx_qmgr_dsn_sent_total", {}, q.counters.dsn);
      this.#countAll("qmgr", "smx_smtp_tls_connections_total", ["trust", "protocol", "cipher"], q.tlsOut);
      for (const status of ["sent", "deferred", "bounced"] as const) {
        h("smx_delivery_delay_seconds").setData(
          { status },
          this.#histogramTotal(`delay.${status}`, q.delay[status]),
        );
      }
      for (const [state, s] of Object.entries(q.queue.states)) {
        g("smx_queue_messages").set({ state }, s.messages);
        g("smx_queue_size_bytes").set({ state }, s.bytes);
        g("smx_queue_oldest_message_age_seconds").set(
          { state },
          s.oldest === undefined ? 0 : Math.max(0, (view.at - s.oldest) / 1000),
        );
        h("smx_queue_message_age_seconds").setData({ state }, s.age);
      }
      const r = q.queue.recipients;
      const recipients = { incoming: r.incoming, active: r.active, deferred: r.deferred, hold: r.held };
      for (const [state, n] of Object.entries(recipients)) g("smx_queue_recipients").set({ state }, n);
      g("smx_destinations_down").set(q.down.length);
      if (q.diskFree !== undefined) g("smx_disk_free_bytes").set(q.diskFree);
      g("smx_disk_low").set(q.diskLow ? 1 : 0);
    }
    if (view.components.ok) {
      for (const c of view.components.value) {
        const labels = { component: workerLabel(c) };
        g("smx_component_up").set(labels, c.ready ? 1 : 0);
        g("smx_component_uptime_seconds").set(labels, c.uptime / 1000);
        // The MCP's count only grows while the MTA runs: it is the total already.
        const restarts = this.#counters.get("smx_component_restarts_total")!;
        restarts.remove(labels);
        restarts.inc(labels, c.restarts);
      }
    }
  }

  /** The Prometheus text exposition of everything applied so far. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #count(source: string, name: string, labels: Labels, raw: number): void {
    const key = `${name}${JSON.stringify(labels)}`;
    const counter = this.#counters.get(name)!;
    const total = this.#totals.add(source, key, raw);
    // prom-client counters only grow by inc(): set the total by resetting this series first.
    counter.remove(labels);
    counter.inc(labels, total);
  }

  #countAll(source: string, name: string, labelNames: string[], counts: LabelledCounts): void {
    for (const [joined, raw] of Object.entries(counts)) {
      const values = joined.split("|");
      const labels = Object.fromEntries(labelNames.map((l, i) => [l, values[i] ?? ""]));
      this.#count(source, name, labels, raw);
    }
  }

  /** A histogram of counts since qmgr started, as totals since this worker started. */
  #histogramTotal(key: string, data: HistogramData): HistogramData {
    const counts = data.counts.map((n, i) => this.#totals.add("qmgr", `${key}.${i}`, n));
    return { bounds: data.bounds, counts, sum: this.#totals.add("qmgr", `${key}.sum`, data.sum) };
  }
}
