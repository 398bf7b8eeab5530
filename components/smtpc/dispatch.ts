// smtpc's one handler and its lifecycle. Receives `qmgr.deliver {ta}` from qmgr and answers
// `smtpc.result` with one result per recipient; anything else gets rpc.failure. Many transactions run at
// once, each on its own connection, at most MAX_SESSIONS; the rest wait their turn in arrival order.
// Graceful stop: new transactions are refused (temp), waiting ones answered temp, running ones get
// STOP_GRACE to finish, then are aborted so their undecided recipients are answered temp.

import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { failure } from "../protocol/endpoint.ts";
import type { ComponentName, DeliveryTransaction, Message, SmtpcResult } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { Delivery } from "./delivery.ts";

/** Connections open at once; qmgr's per-destination limits normally keep us well below. */
export const MAX_SESSIONS = 256;
/** How long running transactions may go on after a stop request. */
export const STOP_GRACE = 3_000;

/** Every recipient of `ta` as a temporary failure with `reason`. */
function allTemp(ta: DeliveryTransaction, reason: string): SmtpcResult {
  return {
    type: "smtpc.result",
    taId: ta.taId,
    results: ta.recipients.map((r) => ({ index: r.index, status: "temp", reply: reason })),
  };
}

/** Why `ta` cannot be attempted at all, or undefined. */
function routeProblem(ta: DeliveryTransaction): string | undefined {
  const { port, hosts } = ta.route;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `invalid route: port ${port}`;
  if (hosts.length === 0) return "invalid route: no hosts";
  if (ta.recipients.length === 0) return "invalid transaction: no recipients";
  return undefined;
}

export function start(ctx: WorkerContext): Promise<Component> {
  const { config, endpoint } = ctx;
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
    const problem = routeProblem(ta);
    if (problem) {
      log.error("smtpc", `${ta.messageId}: refused transaction ${ta.taId}: ${problem}`);
      return allTemp(ta, problem);
    }
    if (stopping) return allTemp(ta, "delivery agent is stopping");
    if (busy < MAX_SESSIONS) busy++;
    else await new Promise<void>((go) => waiting.push(go));
    if (stopping) {
      release();
      return allTemp(ta, "delivery agent is stopping");
    }
    const d = new Delivery(ta, { hostname: config.hostname, ioTimeout: config.smtpc.io_timeout });
    running.add(d);
    d.done.finally(() => {
      running.delete(d);
      release();
    });
    return await d.result;
  }

  function handle(from: ComponentName, body: Message): Promise<Message> | Message {
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
      case "qmgr.conn_verdict":
      case "qmgr.committed":
      case "qmgr.commit_failed":
      case "qmgr.route":
      case "smar.verdict":
      case "smar.route":
      case "smtpc.result":
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
    // Let the endpoint post the answers before the runtime closes it.
    await new Promise((resolve) => setTimeout(resolve, 0));
    log.info("smtpc", "stopped");
  }

  log.info(
    "smtpc",
    `started: io_timeout=${config.smtpc.io_timeout} ms, ports=${config.smtpc.ports.join(",")}`,
  );
  return Promise.resolve({ stop });
}
