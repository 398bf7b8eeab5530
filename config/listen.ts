// listen_socket sections of smx.conf (smtps and lda): `type = inet` with a port and an optional address
// (none: every local IPv4 address, 0.0.0.0, as the README says) or `type = unix` with a path and an
// optional umask, user and group. Also how a socket is named in messages and whether two sockets clash.
// Touches nothing. Throws ConfigError through `fail`.

import type { Pos } from "./error.ts";
import type { Block } from "./read.ts";
import type { ListenSocket } from "./types.ts";

type Fail = (pos: Pos, detail: string) => never;

/** The umask of a unix listen socket when the section gives none: only the owner may connect. */
export const DEFAULT_SOCKET_UMASK = 0o077;

const INET_OPTIONS = ["type", "address", "port"];
const UNIX_OPTIONS = ["type", "path", "umask", "user", "group"];

/** One listen_socket section as a ListenSocket (type inet unless it says unix). */
export function buildListenSocket(block: Block, fail: Fail): ListenSocket {
  const v = block.values;
  const type = (v.type as "inet" | "unix" | undefined) ?? "inet";
  const allowed = type === "inet" ? INET_OPTIONS : UNIX_OPTIONS;
  for (const option of Object.keys(v)) {
    if (!allowed.includes(option)) {
      const at = block.node.entries.find((e) =>
        e.kind === "option" && e.name.toLowerCase() === option.toLowerCase()
      );
      fail(
        at ?? block.node,
        `option ${option} does not apply to a ${type} socket in ${block.label}, expected ${
          allowed.filter((o) => o !== "type").join(", ")
        }`,
      );
    }
  }
  if (type === "unix") {
    if (v.path === undefined) {
      fail(block.node, `missing option path in ${block.label}, expected path = "socket path"; for type unix`);
    }
    const socket: ListenSocket = {
      type,
      path: v.path as string,
      umask: (v.umask as number | undefined) ?? DEFAULT_SOCKET_UMASK,
    };
    if (v.user !== undefined) socket.user = v.user as string;
    if (v.group !== undefined) socket.group = v.group as string;
    return socket;
  }
  if (v.port === undefined) fail(block.node, `missing option port in ${block.label}, expected port = value;`);
  return { type, address: (v.address as string | undefined) ?? "0.0.0.0", port: v.port as number };
}

/** `127.0.0.1:25`, `[::1]:25` or `unix:var/smtps.sock`: how logs and messages name a socket. */
export function socketLabel(socket: ListenSocket): string {
  if (socket.type === "unix") return `unix:${socket.path}`;
  return socket.address.includes(":")
    ? `[${socket.address}]:${socket.port}`
    : `${socket.address}:${socket.port}`;
}

/** Whether two sockets cannot both be listened on: the same path, or one port on overlapping addresses. */
export function socketsClash(a: ListenSocket, b: ListenSocket): boolean {
  if (a.type === "unix" || b.type === "unix") {
    return a.type === "unix" && b.type === "unix" && a.path === b.path;
  }
  const wildcard = (x: string) => x === "0.0.0.0" || x === "::";
  return a.port === b.port && (a.address === b.address || wildcard(a.address) || wildcard(b.address));
}
