// The lda service: loads the local users, creates the mail root and each listed user's Maildir (removing
// stray tmp/ files a crash left behind), listens for LMTP on the lda section's listen sockets and runs one
// LmtpSession per connection, at most max_threads at a time (more get 421). With `tls { flags = {
// implicit }; }` every connection does the TLS handshake first (RFC 8314 style: LMTP over TLS from the
// first byte, for smtpc's `lmtps:` routes); a client that fails it is dropped and logged. reload() (SIGHUP) re-reads the
// users map and takes the new limits; a broken map is refused and the running users kept. stop() stops
// listening, answers 421 to idle sessions and lets sessions in DATA finish their deliveries for a short
// grace time. Has no peers: it answers no messages and sends none. Touches the mail root, the users map
// and its TLS certificate and key (read once at start).

import net from "node:net";
import { formatReply, reply, replyText } from "../mail/reply.ts";
import { failure } from "../protocol/endpoint.ts";
import type { Config, LdaConfig } from "../../config/types.ts";
import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { listenOn, stopServing } from "../smtp_io/listeners.ts";
import { socketLabel } from "../../config/listen.ts";
import { clientIp, endSocket } from "../smtp_io/socket.ts";
import { log } from "../util/log.ts";
import { PRIVATE_DIR } from "../util/private_files.ts";
import { MailStore } from "./delivery.ts";
import { cleanTmp, UniqueNames } from "./maildir.ts";
import { QuotaTracker } from "./quota.ts";
import { LmtpSession } from "./session.ts";
import { loadUsers } from "./users.ts";
// The TLS server side is smtps's (the Deno STARTTLS/implicit TLS handling lives there once).
import { loadTls, tlsInfo, type TlsService, upgrade } from "../smtps/tls.ts";

const COMPONENT = "lda";
/** How long stop() lets sessions in DATA finish before dropping them. */
export const STOP_GRACE_MS = 3_000;

/** Starts the local delivery agent of `ctx.config.lda`. */
export async function start(ctx: WorkerContext): Promise<Component> {
  const { config, endpoint } = ctx;
  endpoint.handle((from, body) => {
    log.warn(COMPONENT, `dropped unexpected ${body.type} from ${from}`);
    return failure(`lda does not handle ${body.type}`);
  });
  if (!config.lda) {
    ctx.fatal("Start lda: the configuration has no lda section");
    return { stop: () => Promise.resolve() };
  }
  let lda: LdaConfig = config.lda;
  let users;
  try {
    users = await loadUsers(lda);
  } catch (err) {
    log.error(COMPONENT, (err as Error).message);
    ctx.fatal((err as Error).message); // a broken users map: a restart cannot cure it
    return { stop: () => Promise.resolve() };
  }
  const store = new MailStore({
    lda,
    users,
    names: new UniqueNames(lda.hostname),
    quota: new QuotaTracker(),
  });
  await Deno.mkdir(lda.mail_root, { recursive: true, mode: PRIVATE_DIR }); // an existing one is left as is
  const prepare = async (listed: Iterable<{ name: string }>) => {
    for (const user of listed) {
      const dir = await store.ensure(user.name);
      const removed = await cleanTmp(dir);
      if (removed > 0) log.info(COMPONENT, `removed ${removed} stale file(s) from ${dir}/tmp`);
    }
  };
  await prepare(users.listed?.values() ?? []);
  let tls: TlsService | undefined;
  if (lda.tls) {
    try {
      tls = await loadTls({ ...lda.tls });
    } catch (err) {
      log.error(COMPONENT, (err as Error).message);
      ctx.fatal((err as Error).message); // a missing certificate: a restart cannot cure it
      return { stop: () => Promise.resolve() };
    }
  }

  const sessions = new Set<LmtpSession>();
  const sockets = new Set<net.Socket>();
  const listeners: net.Server[] = [];
  let stopping = false;
  const busy = reply(421, "4.3.2", `${lda.hostname} Too many sessions, try again later`);
  const closing = reply(421, "4.3.2", `${lda.hostname} Service shutting down`);

  const onConnection = (socket: net.Socket) => {
    socket.on("error", () => {});
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    if (stopping) return void endSocket(socket, formatReply(closing));
    if (sessions.size >= lda.max_threads) {
      log.info(COMPONENT, `CONNECT from unknown[${clientIp(socket)}]: ${replyText(busy)}`);
      return void endSocket(socket, formatReply(busy));
    }
    if (!tls) return void serve(socket);
    const ip = clientIp(socket);
    upgrade(socket, tls, lda.io_timeout).then(
      (secure) => {
        const t = tlsInfo(secure, tls);
        log.info(COMPONENT, `TLS from unknown[${ip}]: ${t.version} ${t.cipher}`);
        if (stopping) return void endSocket(secure, formatReply(closing));
        serve(secure, ip);
      },
      (err) => log.info(COMPONENT, `TLS handshake with unknown[${ip}] failed: ${(err as Error).message}`),
    );
  };
  const serve = (socket: net.Socket, ip?: string) => {
    const session = new LmtpSession(socket, store, lda.hostname, lda.io_timeout, ip);
    sessions.add(session);
    session.run().finally(() => sessions.delete(session));
  };

  try {
    for (const ls of lda.listen_socket) {
      const listener = net.createServer({ allowHalfOpen: true }, onConnection);
      await listenOn(listener, ls, COMPONENT);
      listeners.push(listener);
      const over = tls ? " (implicit TLS)" : "";
      log.info(COMPONENT, `listening for LMTP${over} on ${socketLabel(ls)}, mail root ${lda.mail_root}`);
    }
  } catch (err) {
    for (const l of listeners) l.close();
    throw err;
  }

  return {
    async reload(next: Config) {
      if (!next.lda) throw new Error("Reload lda: the new configuration has no lda section");
      const nextUsers = await loadUsers(next.lda); // a broken map throws: the running users stay
      await prepare(nextUsers.listed?.values() ?? []);
      lda = next.lda;
      store.update(next.lda, nextUsers);
      const count = nextUsers.listed ? `${nextUsers.listed.size} users` : "users from the mail root";
      log.info(COMPONENT, `reloaded: ${count}`);
    },
    async stop() {
      stopping = true;
      await stopServing(listeners, sessions, sockets, STOP_GRACE_MS);
      log.info(COMPONENT, "stopped");
    },
  };
}
