// The smtps component: listens on every listen_socket of every `smtps` section (one worker serves them
// all, each section with its own limits, TLS context and AUTH map, prepared once in env.ts), enforces
// max_threads per section with its stress mode (stress.ts), and runs one Session per connection. stop() stops listening, sends 421 to idle
// sessions and gives busy ones (in DATA or commit) a short grace time. reload() gives new sessions a new
// configuration of the same sections on the same sockets (limits, flags, TLS files re-read, AUTH map);
// sessions already open keep theirs. Receives connections; sends nothing to peers itself (sessions use the
// client stubs) and hears qmgr's disk notices. With processes > 1 (config/processes.ts) this is one of
// several smtps workers: each opens its sections' inet sockets with SO_REUSEPORT, so the kernel spreads
// the connections over them; a unix socket is the first worker's alone. max_threads and stress mode count
// this worker's sessions (sendmail X's threads are per process); qmgr's limits per client stay global.

import net from "node:net";
import { ensureCdbDirs } from "../mail/cdb.ts";
import { formatReply, replyText } from "../mail/reply.ts";
import { failure, peerId } from "../protocol/endpoint.ts";
import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import type { Config } from "../../config/types.ts";
import { listenOn, stopServing } from "../smtp_io/listeners.ts";
import { sectionProcesses, servesSection, servesSocket, smtpsInstances } from "../../config/processes.ts";
import { setQueueIdSeries } from "../mail/queue_id.ts";
import { socketLabel } from "../../config/listen.ts";
import { log } from "../util/log.ts";
import { R } from "./replies.ts";
import { type QueueStatus, queueStatus, type SessionEnv, sessionEnv } from "./env.ts";
import { Session } from "./session.ts";
import { SmtpsCounters } from "./counters.ts";
import { SessionSlots } from "./stress.ts";
import { clientIp, endSocket } from "../smtp_io/socket.ts";

const COMPONENT = "smtps";
/** How long stop() lets sessions in DATA or commit finish before dropping them. */
export const STOP_GRACE_MS = 3_000;

/** The sections and their sockets, which a reload cannot change. */
function layout(c: Config): string {
  return c.smtps.map((s) => `${s.name}*${sectionProcesses(s)}@${s.listen_socket.map(socketLabel).join(",")}`)
    .join(" ");
}

/** Starts every configured SMTP server; the returned stop() ends them gracefully. */
export async function start(ctx: WorkerContext): Promise<Component> {
  const { config, endpoint } = ctx;
  const q = config.qmgr;
  const instance = ctx.instance ?? 1;
  const shared = smtpsInstances(config) > 1; // other smtps workers listen on the same sockets
  const worker = ctx.instance === undefined ? undefined : peerId("smtps", ctx.instance);
  const on = worker ? ` (${worker})` : "";
  if (ctx.instance !== undefined) setQueueIdSeries(ctx.instance);
  const queue: QueueStatus = queueStatus(config.CDB_base_directory, q.min_disk_space, q.ok_disk_space);
  const counters = new SmtpsCounters();
  // smtps answers the metrics worker's snapshot requests; everything else it needs it asks for. It
  // listens to qmgr's disk notices.
  endpoint.handle((from, body) => {
    if (body.type === "metrics.snapshot" && from === "metrics") return counters.snapshot();
    if (body.type === "qmgr.disk_state") {
      if (body.low !== queue.diskLow) {
        log.warn(COMPONENT, `queue disk ${body.low ? "low" : "fine again"} (${body.free} bytes free)`);
      }
      queue.diskLow = body.low;
      return;
    }
    log.warn(COMPONENT, `dropped unexpected ${body.type} from ${from}`);
    return failure(`smtps does not handle ${body.type}`);
  });
  await ensureCdbDirs(config.CDB_base_directory);

  const sessions = new Set<Session>();
  const sockets = new Set<net.Socket>();
  const listeners: net.Server[] = [];
  let stopping = false;

  /** Each section's current environment; reload() swaps it for the sessions that start afterwards. */
  const serve = (holder: { env: SessionEnv }) => {
    const slots = new SessionSlots(() => holder.env.server);
    return (socket: net.Socket) => {
      const env = holder.env;
      const server = env.server;
      socket.on("error", () => {}); // the session's input reports it; never let it escape
      counters.connects++;
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      if (stopping) return void endSocket(socket, formatReply(R.shuttingDown(server.hostname)));
      const admitted = slots.admit(clientIp(socket));
      if (!admitted.ok) {
        log.info(
          COMPONENT,
          `CONNECT from unknown[${clientIp(socket)}]: ${
            replyText(admitted.reply)
          }; server=${server.name}; ${admitted.reason}`,
        );
        return void endSocket(socket, formatReply(admitted.reply));
      }
      const session = new Session(socket, env);
      sessions.add(session);
      counters.sessions++;
      slots.add(session);
      session.run().finally(() => {
        slots.remove(session, session.evicted);
        sessions.delete(session);
        counters.sessions--;
      });
    };
  };

  // The TLS files and AUTH maps first: a missing one is a configuration error no restart can cure.
  const prepare = async (c: Config) => {
    const envs: SessionEnv[] = [];
    for (const server of c.smtps) {
      const env = await sessionEnv(server, endpoint, config.CDB_base_directory, queue, undefined, counters);
      if (worker) env.worker = worker;
      envs.push(env);
    }
    return envs;
  };
  const holders: { env: SessionEnv }[] = [];
  try {
    for (const env of await prepare(config)) holders.push({ env });
  } catch (err) {
    const reason = `Start smtps: ${(err as Error).message}`;
    log.error(COMPONENT, reason);
    ctx.fatal(reason);
    return { stop: () => Promise.resolve() };
  }
  try {
    for (const holder of holders) {
      const server = holder.env.server;
      if (!servesSection(instance, server)) continue;
      const onConnection = serve(holder);
      for (const ls of server.listen_socket) {
        if (!servesSocket(instance, ls)) continue;
        const listener = net.createServer({ allowHalfOpen: true }, onConnection);
        await listenOn(listener, ls, COMPONENT, { reusePort: shared });
        listeners.push(listener);
        log.info(COMPONENT, `${server.name} (id ${server.id}): listening on ${socketLabel(ls)}${on}`);
      }
    }
  } catch (err) {
    for (const l of listeners) l.close();
    throw err;
  }

  let current = config;
  return {
    async reload(next: Config) {
      if (layout(next) !== layout(current)) {
        throw new Error("Reload smtps: its sections or their listen sockets changed, which needs a restart");
      }
      const envs = await prepare(next); // throws, naming the file, when a TLS file or AUTH map is unreadable
      envs.forEach((env, i) => holders[i].env = env);
      current = next;
      log.info(COMPONENT, `reloaded: ${envs.map((e) => e.server.name).join(", ")}`);
    },
    async stop() {
      stopping = true;
      await stopServing(listeners, sessions, sockets, STOP_GRACE_MS);
      log.info(COMPONENT, "stopped");
    },
  };
}
