// Delivery results as smtpc reports them and qmgr records them (protocol v2, components/protocol/
// messages.ts): the reply on one line for logs and DSN reasons, its enhanced status, the relay as
// `name[address]:port`, and the destination key (address and port) under which qmgr tracks slow start,
// down marks and the connection cache. Pure functions.

import type { RecipientResult, Relay, ResultOrigin, ResultReply } from "../protocol/messages.ts";

/** A reason of the delivery agent or the router, without reply code. */
export function reasonReply(text: string, code?: number, enhanced?: string): ResultReply {
  const r: ResultReply = { lines: [text] };
  if (code !== undefined) r.code = code;
  if (enhanced !== undefined) r.enhanced = enhanced;
  return r;
}

/** A recipient result of `origin` with a reason text (no server reply). */
export function reasonResult(
  index: number,
  status: RecipientResult["status"],
  origin: ResultOrigin,
  text: string,
): RecipientResult {
  return { index, status, origin, reply: reasonReply(text) };
}

/** The reply on one line, e.g. `550 5.1.1 No such user` or `connect to ...: Connection refused`. */
export function replyLine(r: ResultReply): string {
  const parts: string[] = [];
  if (r.code !== undefined) parts.push(String(r.code));
  if (r.enhanced !== undefined) parts.push(r.enhanced);
  for (const l of r.lines) if (l !== "") parts.push(l);
  return parts.join(" ");
}

/** The enhanced status of a result: the reply's own, else the class default (2.0.0, 4.0.0, 5.0.0). */
export function enhancedOf(r: ResultReply, status: RecipientResult["status"]): string {
  if (r.enhanced !== undefined) return r.enhanced;
  return status === "sent" ? "2.0.0" : status === "temp" ? "4.0.0" : "5.0.0";
}

/** `name[address]:port`, or `name[path]` for a unix socket (port 0): how logs name a server. */
export function relayText(r: Relay | undefined): string {
  if (r === undefined) return "none";
  return r.port === 0 ? `${r.name}[${r.address}]` : `${r.name}[${r.address}]:${r.port}`;
}

/** The key qmgr and smtpc track a destination under: its address and port (`[v6]:port`, a socket alone). */
export function destinationKey(address: string, port: number): string {
  if (address.startsWith("unix:")) return address;
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The address part of a destination key (for the qmgr_conf map's per-address limits). */
export function addressOfKey(key: string): string {
  if (key.startsWith("unix:")) return key;
  if (key.startsWith("[")) return key.slice(1, key.indexOf("]"));
  const colon = key.lastIndexOf(":");
  return colon < 0 ? key : key.slice(0, colon);
}
