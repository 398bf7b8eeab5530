// The metrics component: an HTTP server on its listen sockets (Deno.serve), read-only:
//   GET /metrics    Prometheus text (prometheus.ts)
//   GET /healthz    200 when every worker is ready, else 503 with the reasons (health.ts)
//   GET /           the status page (status_page.ts)
//   GET /api/queue  what `qmgrctl list --json` prints (its filters as query parameters)
// HEAD is answered like GET without the body; any other method gets 405, any other path 404. What it
// shows it asks the components through collect.ts, which bounds how often they are asked: a scraper
// costs qmgr at most one snapshot a second, and a slow one holds only its own connection here.
// Receives: HTTP requests, the components' answers. Sends: questions to qmgr, smtps and the MCP.

import type { Config } from "../../config/types.ts";
import { socketLabel } from "../../config/listen.ts";
import { parseTime } from "../../config/values.ts";
import { failure } from "../protocol/endpoint.ts";
import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { queueList } from "../qmgr/client.ts";
import { ListenError } from "../smtp_io/listeners.ts";
import { log } from "../util/log.ts";
import { ANSWER_TIMEOUT, Collector } from "./collect.ts";
import { health } from "./health.ts";
import { PrometheusView } from "./prometheus.ts";
import { statusPage } from "./status_page.ts";

const COMPONENT = "metrics";
/** How long stop() waits for answers still being sent (ms). */
const STOP_GRACE_MS = 1_000;
/** The filters of /api/queue, as qmgrctl list takes them; `age` is a time (30m, 2h), `limit` a count. */
const QUEUE_FILTERS = ["sender", "recipient", "domain", "state", "age", "limit"];

/** Answers one request; exported for tests of the routing. */
export async function route(
  req: Request,
  d: { collector: Collector; prometheus: PrometheusView; hostname: string; ctx: WorkerContext },
): Promise<Response> {
  const url = new URL(req.url);
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, `Method ${req.method} not allowed: this server is read-only\n`, { Allow: "GET, HEAD" });
  }
  switch (url.pathname) {
    case "/metrics": {
      d.prometheus.apply(await d.collector.view());
      return new Response(await d.prometheus.text(), {
        headers: { "Content-Type": d.prometheus.contentType, "Cache-Control": "no-store" },
      });
    }
    case "/healthz": {
      const h = health(await d.collector.status());
      const head = h.ok ? "ok" : `not ready: ${h.reasons.join("; ")}`;
      return text(h.ok ? 200 : 503, [head, ...h.lines].join("\n") + "\n");
    }
    case "/":
      return new Response(statusPage(await d.collector.view(), d.hostname), {
        headers: { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" },
      });
    case "/api/queue":
      return await apiQueue(url, d.ctx);
    default:
      return text(404, `Not found: ${url.pathname} (try /, /metrics, /healthz or /api/queue)\n`);
  }
}

/** /api/queue?state=deferred&domain=example.com&age=1h&limit=100: the list command's answer as JSON. */
async function apiQueue(url: URL, ctx: WorkerContext): Promise<Response> {
  const args: Record<string, string | number> = {};
  for (const [key, value] of url.searchParams) {
    if (!QUEUE_FILTERS.includes(key)) {
      return json(400, { error: `unknown parameter ${key}, expected one of ${QUEUE_FILTERS.join(", ")}` });
    }
    if (key === "age") {
      const age = parseTime(value);
      if (age === undefined || age < 0) return json(400, { error: `age: bad time ${value}, e.g. 30m or 2h` });
      args.age = age;
    } else if (key === "limit") {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) return json(400, { error: `limit: expected a count, not ${value}` });
      args.limit = n;
    } else {
      args[key] = value;
    }
  }
  const answer = await queueList(ctx.endpoint, args, ANSWER_TIMEOUT * 5);
  if (answer.type === "rpc.failure") return json(503, { error: `qmgr did not answer: ${answer.reason}` });
  if (!answer.ok) return json(400, { error: answer.error ?? "list failed" });
  return json(200, answer.result);
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "Content-Type": "text/plain; charset=utf-8", ...headers } });
}

function json(status: number, value: unknown): Response {
  return new Response(JSON.stringify(value, null, 2) + "\n", {
    status,
    headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" },
  });
}

/** Starts the HTTP server on every listen socket of the metrics section. */
export async function start(ctx: WorkerContext): Promise<Component> {
  const config: Config = ctx.config;
  const metrics = config.metrics;
  if (!metrics) throw new Error("Start metrics: the configuration has no metrics section");
  // Nothing reaches the metrics worker by messages but answers to its own questions.
  ctx.endpoint.handle((from, body) => {
    log.warn(COMPONENT, `dropped unexpected ${body.type} from ${from}`);
    return failure(`metrics does not serve ${body.type}`);
  });
  const deps = {
    collector: new Collector(ctx),
    prometheus: new PrometheusView(),
    hostname: config.hostname,
    ctx,
  };
  const handler = async (req: Request) => {
    try {
      const res = await route(req, deps);
      return req.method === "HEAD" ? new Response(null, { status: res.status, headers: res.headers }) : res;
    } catch (err) {
      log.error(
        COMPONENT,
        `${req.method} ${new URL(req.url).pathname} failed: ${(err as Error).stack ?? err}`,
      );
      return text(500, "Internal error: see the metrics log\n");
    }
  };
  const servers: Deno.HttpServer[] = [];
  const abort = new AbortController();
  try {
    for (const ls of metrics.listen_socket) {
      const label = socketLabel(ls);
      const opts = {
        signal: abort.signal,
        onListen: () =>
          log.info(COMPONENT, `serving /metrics, /healthz, / and /api/queue on http://${label}/`),
        onError: (err: unknown) => {
          log.error(COMPONENT, `request failed: ${(err as Error).message}`);
          return text(500, "Internal error\n");
        },
      };
      servers.push(
        ls.type === "inet"
          ? Deno.serve({ ...opts, hostname: ls.address, port: ls.port }, handler)
          : Deno.serve({ ...opts, path: ls.path }, handler),
      );
    }
  } catch (err) {
    abort.abort();
    await Promise.allSettled(servers.map((s) => s.finished));
    if (err instanceof Deno.errors.AddrInUse) {
      throw new ListenError(`cannot listen on ${listLabels(config)}: address already in use`, 69);
    }
    throw err;
  }
  return {
    async stop() {
      // A scraper that does not read its answer must not hold up the MTA's stop for long.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled(servers.map((s) => s.shutdown())),
        new Promise((resolve) => timer = setTimeout(resolve, STOP_GRACE_MS)),
      ]);
      clearTimeout(timer);
      log.info(COMPONENT, "stopped");
    },
  };
}

function listLabels(config: Config): string {
  return (config.metrics?.listen_socket ?? []).map(socketLabel).join(", ");
}
