// Two helpers for accepted client sockets, shared by the SMTP and LMTP servers and their sessions: ending a
// connection politely (our last words, a half-close, and a destroy if the client never closes its side)
// and the client's address as logs and headers show it. Touches only the socket it is given.

import type { Socket } from "node:net";

/** How long a closing socket may wait for the client's FIN before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/**
 * Sends `text` (if any) and half-closes; resolves once our side is written out. The socket is destroyed if
 * the peer has not closed its side within a grace time, so a silent client cannot keep it open.
 */
export function endSocket(socket: Socket, text?: string): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("finish", () => resolve());
    socket.on("error", () => {});
    if (text && socket.writable) socket.write(text);
    socket.end();
  });
}

/** Sockets accepted on a unix listen socket: their client is on this host. */
const local = new WeakSet<Socket>();

/** Marks `socket` as accepted on a unix socket (clientIp() then gives 127.0.0.1). */
export function markLocal(socket: Socket): void {
  local.add(socket);
}

/**
 * The client address as logs and headers show it (IPv4-mapped IPv6 addresses unwrapped); 127.0.0.1 for a
 * client of a unix socket, which can only be on this host.
 */
export function clientIp(socket: Socket): string {
  if (local.has(socket)) return "127.0.0.1";
  const a = socket.remoteAddress ?? "unknown";
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}
