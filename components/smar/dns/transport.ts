// One DNS exchange with one nameserver: a query over UDP from a fresh random port, matched by id,
// question and source, and the same query over TCP when the answer comes back truncated (TC bit).
// Touches the network: UDP bind on `<bind address>:0`, UDP and TCP to `<nameserver>:<port>` only.

import dgram from "node:dgram";
import {
  canonicalName,
  type DecodedResponse,
  decodeResponse,
  encodeQuery,
  type QueryType,
} from "./packet.ts";
import { bindAddress, hostPort, type Nameserver } from "./nameservers.ts";

export type Exchange =
  | { kind: "response"; response: DecodedResponse }
  | { kind: "timeout" }
  | { kind: "error"; reason: string };

/** A random 16-bit query id: answers are matched by it, so it must not be guessable. */
export function randomId(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0];
}

/** Asks `ns` one question within `timeoutMs` (per transport); never throws. */
export async function exchange(
  ns: Nameserver,
  name: string,
  type: QueryType,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Exchange> {
  const id = randomId();
  const query = encodeQuery(id, name, type, ns.validating === true);
  const matches = (r: DecodedResponse) =>
    r.isResponse && r.id === id && r.question !== undefined &&
    canonicalName(r.question.name) === canonicalName(name) && r.question.type === type;
  const udp = await udpExchange(ns, query, matches, timeoutMs, signal);
  if (udp.kind !== "response" || !udp.response.truncated) return udp;
  return await tcpExchange(ns, query, matches, timeoutMs, signal);
}

function granted(host: string): boolean {
  // A denied bind throws asynchronously inside node:dgram, out of our reach: ask first.
  return Deno.permissions.querySync({ name: "net", host }).state === "granted";
}

function udpExchange(
  ns: Nameserver,
  query: Uint8Array,
  matches: (r: DecodedResponse) => boolean,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Exchange> {
  const local = bindAddress(ns);
  for (const host of [hostPort(local, 0), hostPort(ns.ip, ns.port)]) {
    if (!granted(host)) {
      return Promise.resolve({ kind: "error", reason: `no network permission for ${host}` });
    }
  }
  if (signal.aborted) return Promise.resolve({ kind: "error", reason: "resolver stopped" });
  return new Promise((resolve) => {
    const sock = dgram.createSocket(ns.family === 4 ? "udp4" : "udp6");
    let done = false;
    const finish = (x: Exchange) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve(x);
    };
    const onAbort = () => finish({ kind: "error", reason: "resolver stopped" });
    const timer = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
    signal.addEventListener("abort", onAbort);
    sock.on("error", (e: Error) => finish({ kind: "error", reason: e.message }));
    sock.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
      if (rinfo.port !== ns.port || rinfo.address !== ns.ip) return; // not from the server we asked
      let r: DecodedResponse;
      try {
        r = decodeResponse(msg);
      } catch {
        return; // garbage: keep waiting for the real answer
      }
      if (matches(r)) finish({ kind: "response", response: r });
    });
    sock.bind(0, local, () => {
      sock.send(query, ns.port, ns.ip, (err: Error | null) => {
        if (err) finish({ kind: "error", reason: `send to ${hostPort(ns.ip, ns.port)}: ${err.message}` });
      });
    });
  });
}

async function tcpExchange(
  ns: Nameserver,
  query: Uint8Array,
  matches: (r: DecodedResponse) => boolean,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Exchange> {
  let conn: Deno.TcpConn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn?.close();
    conn = undefined;
  }, timeoutMs);
  const onAbort = () => {
    conn?.close();
    conn = undefined;
  };
  signal.addEventListener("abort", onAbort);
  try {
    const c = await Deno.connect({ hostname: ns.ip, port: ns.port, transport: "tcp" });
    if (timedOut || signal.aborted) {
      c.close();
      return timedOut ? { kind: "timeout" } : { kind: "error", reason: "resolver stopped" };
    }
    conn = c;
    const framed = new Uint8Array(2 + query.length);
    new DataView(framed.buffer).setUint16(0, query.length);
    framed.set(query, 2);
    await writeAll(c, framed);
    const head = await readExactly(c, 2);
    const r = decodeResponse(await readExactly(c, new DataView(head.buffer).getUint16(0)));
    if (!matches(r)) return { kind: "error", reason: "TCP answer does not match the question" };
    return { kind: "response", response: r };
  } catch (err) {
    if (timedOut) return { kind: "timeout" };
    if (signal.aborted) return { kind: "error", reason: "resolver stopped" };
    return { kind: "error", reason: `TCP query to ${hostPort(ns.ip, ns.port)}: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    conn?.close();
  }
}

async function writeAll(c: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await c.write(bytes.subarray(off));
}

async function readExactly(c: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await c.read(out.subarray(off));
    if (got === null) throw new Error("connection closed before the whole answer arrived");
    off += got;
  }
  return out;
}
