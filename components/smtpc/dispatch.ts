// smtpc's one handler and its lifecycle. Receives `qmgr.deliver {ta}` from qmgr and answers
// `smtpc.result` with one result per recipient; anything else gets rpc.failure. Many transactions run at
// once, each on its own link, at most MAX_SESSIONS; the rest wait their turn in arrival order. Links
// outlive their transaction in the connection cache (conn_cache.ts). At start the TLS files and the
// authinfo map are read (tls.ts, authinfo.ts); one that cannot be read is fatal (a configuration
// problem) and every transaction is answered temp; the map's problems are logged. Graceful stop: new transactions are refused (temp), waiting ones answered temp, running ones get
// STOP_GRACE to finish, then are aborted so their undecided recipients are answered temp; idle links get
// a QUIT.

import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { failure } from "../protocol/endpoint.ts";
import {
  type DeliveryTransaction,
  LMTP_SOCKET_ADDRESS,
  type Message,
  type PeerName,
  type SmtpcResult,
} from "../protocol/messages.ts";
import { reasonResult } from "../mail/result.ts";
import { log } from "../util/log.ts";
import { Authinfo } from "./authinfo.ts";
import { ConnectionCache } from "./conn_cache.ts";
import { Delivery, type DeliveryConfig } from "./delivery.ts";
import { deadlines } from "./timeouts.ts";
import { loadTlsSettings, type TlsSettings } from "./tls.ts";

/** Connections open at once; qmgr's per-destination limits normally keep us well below. */
export const MAX_SESSIONS = 256;
/** How long running transactions may go on after a stop request. */
export const STOP_GRACE = 3_000;
/** Defaults of the connection cache options (Postfix's values; a count limit so no link lives forever). */
export const CACHE_DEFAULTS = { idle: 2_000, age: 300_000, count: 100 };

/** Every recipient of `ta` as a temporary failure with `reason`. */
function allTemp(ta: DeliveryTransaction, reason: string): SmtpcResult {
  return {
    type: "smtpc.result",
    taId: ta.taId,
    results: ta.recipients.map((r) => reasonResult(r.index, "temp", "agent", reason)),
  };
}

/**
 * Whether this worker's net permission is unrestricted (the ipv6 flag): the permission then no longer
 * keeps smtpc to its ports, so routeProblem() does.
 */
function netUnrestricted(): boolean {
  return Deno.permissions.querySync({ name: "net" }).state === "granted";
}

/** Why `ta` cannot be attempted at all, or undefined. */
function routeProblem(ta: DeliveryTransaction, ports?: number[]): string | undefined {
  const { port, hosts } = ta.route;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `invalid route: port ${port}`;
  if (ports && !ports.includes(port) && !hosts.every((h) => h.address === LMTP_SOCKET_ADDRESS)) {
    return `invalid route: port ${port} is not one smtpc may connect to (${ports.join(", ")})`;
  }
  if (hosts.length === 0) return "invalid route: no hosts";
  if (ta.recipients.length === 0) return "invalid transaction: no recipients";
  return undefined;
}

export async function start(ctx: WorkerContext): Promise<Component> {
  const { config, endpoint } = ctx;
  const smtpc = config.smtpc;
  let tls: TlsSettings;
  let broken: string | undefined;
  try {
    tls = await loadTlsSettings(smtpc.tls);
  } catch (err) {
    broken = (err as Error).message;
    tls = { level: "none", ca: [] };
    log.error("smtpc", broken);
    ctx.fatal(broken);
  }
  let authinfo: Authinfo | undefined;
  if (smtpc.authinfo && !broken) {
    try {
      const loaded = await Authinfo.load(smtpc.authinfo);
      authinfo = loaded.authinfo;
      for (const e of loaded.errors) log.error("smtpc", e);
      for (const w of loaded.warnings) log.warn("smtpc", w);
    } catch (err) {
      broken = (err as Error).message;
      log.error("smtpc", broken);
      ctx.fatal(broken);
    }
  }
  const cache = new ConnectionCache({
    idleMs: smtpc.connection_cache_time_limit ?? CACHE_DEFAULTS.idle,
    maxAgeMs: smtpc.connection_reuse_time_limit ?? CACHE_DEFAULTS.age,
    maxTransactions: smtpc.connection_reuse_count_limit ?? CACHE_DEFAULTS.count,
    maxIdle: MAX_SESSIONS,
  });
  const cfg: DeliveryConfig = {
    hostname: config.hostname,
    ioTimeout: smtpc.io_timeout,
    deadlines: deadlines(smtpc.io_timeout),
    tls,
    lmtpSocket: smtpc.LMTP_socket,
    authinfo,
    now: Date.now,
  };
  // With an unrestricted net permission (the ipv6 flag), the ports are checked here instead.
  const ports = netUnrestricted() ? smtpc.ports : undefined;
  const running = new Set<Delivery>();
  // Slots: `busy` counts transactions holding one; a finishing transaction hands its slot straight to
  // the first waiter, so the bound holds however requests interleave.
  let busy = 0;
  const waiting: (() => void)[] = [];
  let stopping = false;

  function release(): void {
    const next = waiting.shift();
    if (next) next();
    else busy--;
  }

  async function deliver(ta: DeliveryTransaction): Promise<SmtpcResult> {
    const problem = routeProblem(ta, ports);
    if (problem) {
      log.error("smtpc", `${ta.messageId}: refused transaction ${ta.taId}: ${problem}`);
      return allTemp(ta, problem);
    }
    if (broken) return allTemp(ta, `delivery agent is not configured correctly: ${broken}`);
    if (stopping) return allTemp(ta, "delivery agent is stopping");
    if (busy < MAX_SESSIONS) busy++;
    else await new Promise<void>((go) => waiting.push(go));
    if (stopping) {
      release();
      return allTemp(ta, "delivery agent is stopping");
    }
    const d = new Delivery(ta, cfg, cache);
    running.add(d);
    d.done.finally(() => {
      running.delete(d);
      release();
    });
    return await d.result;
  }

  function handle(from: PeerName, body: Message): Promise<Message> | Message {
    switch (body.type) {
      case "qmgr.deliver":
        if (from !== "qmgr") return failure(`smtpc takes qmgr.deliver only from qmgr, not ${from}`);
        return deliver(body.ta);
      case "smtps.conn_open":
      case "smtps.conn_close":
      case "smtps.commit":
      case "smtps.check_connect":
      case "smtps.check_mail":
      case "smtps.check_rcpt":
      case "smtps.dns_query":
      case "smtps.check_auth":
      case "smar.dns_answer":
      case "qmgr.conn_verdict":
      case "qmgr.committed":
      case "qmgr.commit_failed":
      case "qmgr.disk_state":
      case "qmgr.route":
      case "qmgr.expand":
      case "qmgr.explain":
      case "smar.expansion":
      case "smar.explanation":
      case "smar.verdict":
      case "smar.route":
      case "smtpc.result":
      case "qmgr.dns_query":
      case "qmgr.https_post":
      case "smar.https_posted":
      case "metrics.snapshot":
      case "metrics.queue_list":
      case "qmgr.snapshot":
      case "smtps.snapshot":
      case "qmgr.queue_list":
      case "rpc.failure":
        log.warn("smtpc", `dropped ${body.type} from ${from}: not served by smtpc`);
        return failure(`smtpc does not serve ${body.type}`);
      default: {
        const never: never = body;
        return failure(`smtpc does not serve ${(never as Message).type}`);
      }
    }
  }

  endpoint.handle(handle);

  async function stop(): Promise<void> {
    stopping = true;
    for (const go of waiting.splice(0)) go();
    const all = () => Promise.allSettled([...running].map((d) => d.done));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, STOP_GRACE));
    await Promise.race([all(), grace]);
    clearTimeout(timer);
    for (const d of running) d.abort("delivery agent is stopping");
    await Promise.allSettled([...running].map((d) => d.result));
    // Aborted links close at once; those finished in the grace went to the cache, which says QUIT.
    await Promise.allSettled([...running].map((d) => d.done));
    await cache.close();
    authinfo?.close();
    // Let the endpoint post the answers before the runtime closes it.
    await new Promise((resolve) => setTimeout(resolve, 0));
    log.info("smtpc", "stopped");
  }

  log.info(
    "smtpc",
    `started: io_timeout=${smtpc.io_timeout} ms, ports=${smtpc.ports.join(",")}, tls=${tls.level}` +
      (tls.ca.length > 0 ? ` (${tls.ca.length} CA certificates)` : "") +
      (smtpc.LMTP_socket ? `, LMTP_socket=${smtpc.LMTP_socket}` : "") +
      (authinfo ? `, authinfo=${authinfo.file}` : "") +
      (ports ? ", ipv6 (net unrestricted: ports checked by smtpc)" : ""),
  );
  return { stop };
}
