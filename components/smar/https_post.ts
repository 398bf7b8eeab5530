// HTTPS POST for qmgr (qmgr.https_post): TLS-RPT reports to an `https:` rua (RFC 8460 5.4). The host's
// address comes from smar's own resolver, the certificate is checked against the URL's host name
// (built-in roots plus MTA_STS.CAcert_file), no redirect is followed, and a 2xx status is success.
// Connects to the URL's host and port (the net permission allows 443, MTA_STS.HTTPS_port in tests).

import type { SmarHttpsPosted } from "../protocol/messages.ts";
import { fromBase64 } from "../mail/tlsrpt.ts";
import type { DnsResult } from "./dns/resolver.ts";

export interface PostOptions {
  resolver: { query(name: string, type: "A"): Promise<DnsResult> };
  caCerts: string[];
  timeoutMs: number;
}

/** POSTs `body` (base64) to `url`; never throws. */
export async function httpsPost(
  url: string,
  contentType: string,
  body: string,
  o: PostOptions,
): Promise<SmarHttpsPosted> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { type: "smar.https_posted", ok: false, reason: `bad URL ${url}` };
  }
  if (u.protocol !== "https:") return { type: "smar.https_posted", ok: false, reason: `not https: ${url}` };
  const host = u.hostname;
  const port = Number(u.port || 443);
  const a = await o.resolver.query(host, "A");
  const address = a.kind === "answer" ? a.records.find((r) => r.type === "A") : undefined;
  if (!address || address.type !== "A") {
    return { type: "smar.https_posted", ok: false, reason: `look up ${host}: no address (${a.kind})` };
  }
  const bytes = fromBase64(body);
  const cancel = new AbortController();
  let conn: Deno.Conn | undefined;
  const timer = setTimeout(() => {
    cancel.abort();
    try {
      conn?.close();
    } catch {
      // closed already
    }
  }, o.timeoutMs);
  try {
    const tcp = await Deno.connect({ hostname: address.address, port, signal: cancel.signal });
    conn = tcp;
    const tls = await Deno.startTls(tcp, {
      hostname: host,
      caCerts: o.caCerts.length ? o.caCerts : undefined,
    });
    conn = tls;
    const head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: smx\r\n` +
      `Content-Type: ${contentType}\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`;
    const out = new Uint8Array([...new TextEncoder().encode(head), ...bytes]);
    let off = 0;
    while (off < out.length) off += await tls.write(out.subarray(off));
    const buf = new Uint8Array(4096);
    let got = "";
    while (!got.includes("\r\n")) {
      const n = await tls.read(buf);
      if (n === null) break;
      got += new TextDecoder().decode(buf.subarray(0, n));
      if (got.length > 4096) break;
    }
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
    if (!m) return { type: "smar.https_posted", ok: false, reason: "no HTTP status line in the answer" };
    const status = Number(m[1]);
    return status >= 200 && status < 300
      ? { type: "smar.https_posted", ok: true, status }
      : { type: "smar.https_posted", ok: false, status, reason: `HTTP ${status}` };
  } catch (err) {
    const why = cancel.signal.aborted ? `timed out after ${o.timeoutMs} ms` : (err as Error).message;
    return { type: "smar.https_posted", ok: false, reason: `POST ${url}: ${why}` };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // closed by the timer
    }
  }
}
