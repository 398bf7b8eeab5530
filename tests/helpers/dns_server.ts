// A small authoritative DNS server for tests: answers from a fixed record list over UDP and TCP on one
// 127.0.0.1 port. A name with records but none of the type asked gets NOERROR with no answers (NODATA);
// a name without records that lies under a name with records, or above one (an empty non-terminal), gets
// NODATA too; any other name gets NXDOMAIN. CNAMEs are followed within the record list. Options make it
// answer SERVFAIL, set the TC bit on UDP (forcing TCP), stay silent (timeouts), or set the AD bit (as a
// validating resolver does for answers it validated with DNSSEC). TLSA records (RFC 6698) take their
// association data in hex. Records every query, with whether it asked for AD.

import dgram from "node:dgram";
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";

export interface DnsRecord {
  name: string;
  type: "A" | "AAAA" | "MX" | "TXT" | "PTR" | "CNAME" | "TLSA";
  data:
    | string
    | { preference: number; exchange: string }
    | { usage: number; selector: number; matchingType: number; hex: string };
  ttl?: number;
}

export interface DnsServer {
  port: number;
  /** "127.0.0.1:<port>", as config.smar.nameserver takes it. */
  address: string;
  /** Every question received, over UDP or TCP, in order; `ad`: the query had the AD bit. */
  queries: { name: string; type: string; ad?: boolean }[];
  close(): Promise<void>;
}

export interface DnsServerOptions {
  /** Names answered with SERVFAIL. */
  servfail?: string[];
  /** Answer UDP with the TC bit set and no records, forcing the client to TCP. */
  truncate?: boolean;
  /** Names never answered (the client times out). */
  drop?: string[];
  /** Answers for these names (true: every answer) carry the AD bit: "validated with DNSSEC". */
  authenticated?: string[] | true;
}

interface Question {
  name: string;
  type: string;
}

const lower = (n: string) => n.toLowerCase().replace(/\.$/, "");

/** Starts the server on a free port (the same number for UDP and TCP). */
export async function startDnsServer(records: DnsRecord[], opts: DnsServerOptions = {}): Promise<DnsServer> {
  const queries: { name: string; type: string; ad?: boolean }[] = [];
  const authenticated = opts.authenticated === true ? true : new Set((opts.authenticated ?? []).map(lower));
  const servfail = new Set((opts.servfail ?? []).map(lower));
  const drop = new Set((opts.drop ?? []).map(lower));

  /** The response bytes for a query packet, or undefined to stay silent. */
  const respond = (bytes: Uint8Array, overUdp: boolean): Uint8Array | undefined => {
    let query: { id: number; questions?: Question[]; flag_ad?: boolean };
    try {
      query = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch {
      return undefined;
    }
    const q = query.questions?.[0];
    if (!q) return undefined;
    queries.push({ name: q.name, type: q.type, ...(query.flag_ad ? { ad: true } : {}) });
    const name = lower(q.name);
    if (drop.has(name)) return undefined;
    const base = { type: "response", id: query.id, questions: [q] };
    if (servfail.has(name)) return dnsPacket.encode({ ...base, flags: 2 });
    if (overUdp && opts.truncate) {
      return dnsPacket.encode({
        ...base,
        flags: dnsPacket.TRUNCATED_RESPONSE | dnsPacket.AUTHORITATIVE_ANSWER,
      });
    }
    const { rcode, answers } = lookup(records, name, q.type);
    const ad = authenticated === true || authenticated.has(name) ? dnsPacket.AUTHENTIC_DATA : 0;
    return dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | ad | rcode, answers });
  };

  const { udp, tcp, port } = await bindBoth();
  udp.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
    const out = respond(msg, true);
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });

  const conns = new Set<Deno.Conn>();
  const serveTcp = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      while (true) {
        const head = await readExactly(conn, 2);
        if (!head) return;
        const body = await readExactly(conn, new DataView(head.buffer).getUint16(0));
        if (!body) return;
        const out = respond(body, false);
        if (!out) continue;
        const framed = new Uint8Array(out.length + 2);
        new DataView(framed.buffer).setUint16(0, out.length);
        framed.set(out, 2);
        await conn.write(framed);
      }
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed by close()
      }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of tcp) serveTcp(conn);
    } catch {
      // listener closed
    }
  })();

  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    async close() {
      tcp.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await accepting;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}

function lookup(records: DnsRecord[], name: string, type: string): { rcode: number; answers: unknown[] } {
  const answers: unknown[] = [];
  let current = name;
  for (let hops = 0; hops < 8; hops++) {
    const here = records.filter((r) => lower(r.name) === current);
    const wanted = here.filter((r) => r.type === type);
    if (wanted.length > 0) {
      answers.push(...wanted.map(toAnswer));
      break;
    }
    const cname = here.find((r) => r.type === "CNAME");
    if (!cname || type === "CNAME") break;
    answers.push(toAnswer(cname));
    current = lower(cname.data as string);
  }
  if (answers.length > 0) return { rcode: 0, answers };
  const exists = records.some((r) => {
    const n = lower(r.name);
    return n === name || name.endsWith(`.${n}`) || n.endsWith(`.${name}`);
  });
  return { rcode: exists ? 0 : 3, answers: [] };
}

function toAnswer(r: DnsRecord): unknown {
  let data: unknown = r.data;
  if (r.type === "TXT" && typeof r.data === "string") {
    const chunks: string[] = [];
    for (let i = 0; i < r.data.length; i += 255) chunks.push(r.data.slice(i, i + 255));
    data = chunks.length > 0 ? chunks : [""];
  }
  if (r.type === "TLSA" && typeof r.data === "object" && "hex" in r.data) {
    const { usage, selector, matchingType, hex } = r.data;
    data = { usage, selector, matchingType, certificate: Buffer.from(hex, "hex") };
  }
  return { name: r.name, type: r.type, ttl: r.ttl ?? 300, class: "IN", data };
}

/** A UDP socket and a TCP listener on the same 127.0.0.1 port (retrying when the TCP port is taken). */
async function bindBoth(): Promise<{ udp: dgram.Socket; tcp: Deno.TcpListener; port: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(0, "127.0.0.1", () => resolve());
    });
    const port = udp.address().port;
    try {
      return { udp, tcp: Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }), port };
    } catch (err) {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  throw new Error("Start test DNS server: no port free for both UDP and TCP");
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | undefined> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    if (got === null) return undefined;
    off += got;
  }
  return out;
}
