// The listening side of the SMTP and LMTP servers: opening a listen socket, TCP or unix (a failure to
// listen rejects, naming the address; a later listener error is logged), and the graceful stop they
// share. A unix socket replaces a stale socket file at its path (never another kind of file) and gets the
// mode its umask gives. Touches only the listeners, sessions and sockets it is given, and the unix
// socket's path.

import type net from "node:net";
import type { ListenSocket } from "../../config/types.ts";
import { socketLabel } from "../../config/listen.ts";
import { log } from "../util/log.ts";
import { markLocal } from "./socket.ts";

/** What stopServing() needs of a session. */
export interface StoppableSession {
  /** Resolves when the session is over (the same promise on every call). */
  run(): Promise<void>;
  /** Graceful stop: an idle session ends at once, a busy one after its current message. */
  requestStop(): void;
  /** Hard stop: drops the connection. */
  abort(): void;
}

/**
 * A listen socket that cannot be opened for a reason a restart cannot cure (the address is taken, not
 * ours, or the port needs privileges): the worker reports it as fatal with `code`, a sysexits code, and
 * the MTA stops with one line saying why instead of restarting the component in a loop.
 */
export class ListenError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
    this.name = "ListenError";
  }
}

/** sysexits.h codes and words for the listen failures a restart cannot cure. */
const LISTEN_FAILURES: Record<string, [number, string]> = {
  EADDRINUSE: [69, "address already in use"], // EX_UNAVAILABLE: another program has it
  EACCES: [77, "permission denied"], // EX_NOPERM: a port below 1024 without the privilege
  EADDRNOTAVAIL: [78, "address not available on this host"], // EX_CONFIG
};

/** How a TCP listen socket is opened. */
export interface ListenOptions {
  /**
   * SO_REUSEPORT: several workers (or processes of the same user) listen on the one address and port,
   * and the kernel spreads new connections over them (Linux hashes each connection to one listener).
   */
  reusePort?: boolean;
}

/** Starts `server` listening on `host`:`port`; later listener errors are logged for `component`. */
export function listen(
  server: net.Server,
  host: string,
  port: number,
  component: string,
  opts: ListenOptions = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      const known = LISTEN_FAILURES[(err as NodeJS.ErrnoException).code ?? ""];
      reject(
        known
          ? new ListenError(`cannot listen on ${host}:${port}: ${known[1]}`, known[0])
          : new Error(`Listen on ${host}:${port}: ${err.message}`),
      );
    };
    server.once("error", onError);
    server.listen({ host, port, ...(opts.reusePort ? { reusePort: true } : {}) }, () => {
      server.off("error", onError);
      server.on("error", (err) => log.error(component, `listener ${host}:${port} failed: ${err.message}`));
      resolve();
    });
  });
}

/** Starts `server` listening on `socket` (TCP or unix) for `component`; `opts` apply to TCP. */
export async function listenOn(
  server: net.Server,
  socket: ListenSocket,
  component: string,
  opts: ListenOptions = {},
): Promise<void> {
  if (socket.type === "inet") return listen(server, socket.address, socket.port, component, opts);
  const label = socketLabel(socket);
  try {
    const info = await Deno.lstat(socket.path);
    if (!info.isSocket) throw new Error(`Listen on ${label}: a file that is not a socket is there`);
    await Deno.remove(socket.path); // a stale socket of an earlier run
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  // A client of a unix socket is on this host: it counts as 127.0.0.1 (clientIp()).
  server.prependListener("connection", (s: net.Socket) => markLocal(s));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`Listen on ${label}: ${err.message}`));
    server.once("error", onError);
    server.listen({ path: socket.path }, () => {
      server.off("error", onError);
      server.on("error", (err) => log.error(component, `listener ${label} failed: ${err.message}`));
      resolve();
    });
  });
  try {
    await Deno.chmod(socket.path, 0o777 & ~socket.umask);
  } catch (err) {
    server.close();
    throw new Error(`Listen on ${label}: set its mode: ${(err as Error).message}`);
  }
}

/**
 * Stops serving: closes the listeners, asks every session to stop, gives busy ones `graceMs` to finish,
 * then drops the rest and destroys every socket still open (closing ones whose client never sent its FIN).
 */
export async function stopServing(
  listeners: net.Server[],
  sessions: ReadonlySet<StoppableSession>,
  sockets: ReadonlySet<net.Socket>,
  graceMs: number,
): Promise<void> {
  const closed = listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
  for (const s of sessions) s.requestStop();
  const running = () => Promise.all([...sessions].map((s) => s.run()));
  await within(running(), graceMs);
  for (const s of sessions) s.abort();
  await within(running(), 1_000);
  for (const socket of sockets) socket.destroy();
  await within(Promise.all(closed), 1_000);
}

/** Resolves when `p` settles or after `ms`, whichever comes first (the timer never outlives the wait). */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise((r) => timer = setTimeout(r, ms))]);
  clearTimeout(timer);
}
