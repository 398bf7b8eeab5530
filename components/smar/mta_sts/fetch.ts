// Fetching an MTA-STS policy (RFC 8461 section 3.3): `GET /.well-known/mta-sts.txt` from the policy host
// `mta-sts.DOMAIN` over HTTPS, the host's addresses found by smar's own resolver (the caller passes
// them), the certificate checked against the policy host name (rustls: chain to the built-in roots or
// the configured CA file, name by subjectAltName). The RFC's limits: a redirect is not followed (a 3xx
// is a failure), only 200 counts, the media type must be text/plain, the body at most 64 KB, and the
// whole fetch within one deadline. A small HTTP/1.1 client over Deno.startTls rather than fetch(): it
// connects to the address smar resolved while checking the name, which fetch() cannot. Connects to the
// policy host's port (443; MTA_STS.HTTPS_port in tests) only.

/** RFC 8461 3.3: senders may limit the policy body to 64 KB. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** Most bytes of the status line and headers. */
const MAX_HEAD_BYTES = 16 * 1024;
export const POLICY_PATH = "/.well-known/mta-sts.txt";

export interface FetchOptions {
  port: number;
  timeoutMs: number;
  /** Trust anchors (PEM) beside the built-in roots. */
  caCerts: string[];
}

export type FetchResult = { ok: true; text: string } | { ok: false; reason: string };

class FetchError extends Error {}

/** Fetches the policy of `domain` from its policy host at `address`; never throws. */
export async function fetchPolicyText(
  domain: string,
  address: string,
  opts: FetchOptions,
): Promise<FetchResult> {
  const host = `mta-sts.${domain}`;
  const url = `https://${host}${opts.port === 443 ? "" : `:${opts.port}`}${POLICY_PATH}`;
  let conn: Deno.Conn | undefined;
  // One deadline for the whole fetch: it cancels a pending connect and closes an open connection.
  const cancel = new AbortController();
  const timer = setTimeout(() => {
    cancel.abort();
    try {
      conn?.close();
    } catch {
      // closed already
    }
  }, Math.max(1, opts.timeoutMs));
  try {
    const tcp = await Deno.connect({ hostname: address, port: opts.port, signal: cancel.signal });
    conn = tcp;
    const tls = await Deno.startTls(tcp, {
      hostname: host,
      caCerts: opts.caCerts.length > 0 ? opts.caCerts : undefined,
    });
    conn = tls;
    await tls.handshake();
    const request = `GET ${POLICY_PATH} HTTP/1.1\r\nHost: ${host}${
      opts.port === 443 ? "" : `:${opts.port}`
    }\r\nUser-Agent: smx\r\nAccept: text/plain\r\nConnection: close\r\n\r\n`;
    await writeAll(tls, new TextEncoder().encode(request));
    const text = await readResponse(tls);
    return { ok: true, text };
  } catch (err) {
    if (cancel.signal.aborted) {
      return { ok: false, reason: `fetch ${url} from ${address}: timed out after ${opts.timeoutMs} ms` };
    }
    const why = err instanceof FetchError ? err.message : describeError(err);
    return { ok: false, reason: `fetch ${url} from ${address}: ${why}` };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // closed by the timer
    }
  }
}

function describeError(err: unknown): string {
  if (err instanceof Error && err.name === "NotCapable") return "connection not permitted";
  return err instanceof Error ? err.message : String(err);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads the response and returns its body when it is a 200 text/plain within the limits. */
async function readResponse(conn: Deno.Conn): Promise<string> {
  const reader = new Reader(conn);
  const head = await reader.head();
  const [statusLine, ...headerLines] = head.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!status) throw new FetchError(`not an HTTP response: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  const code = Number(status[1]);
  if (code >= 300 && code < 400) {
    const to = headers.get("location");
    throw new FetchError(`HTTP ${code} redirect${to ? ` to ${to}` : ""} not followed (RFC 8461 3.3)`);
  }
  if (code !== 200) throw new FetchError(`HTTP ${code}${status[2] ? ` ${status[2]}` : ""}`);
  const type = (headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "text/plain") {
    throw new FetchError(`media type ${type || "(none)"}, expected text/plain (RFC 8461 3.2)`);
  }
  let body: Uint8Array;
  if ((headers.get("transfer-encoding") ?? "").toLowerCase().includes("chunked")) {
    body = await reader.chunked(MAX_POLICY_BYTES);
  } else if (headers.has("content-length")) {
    const length = Number(headers.get("content-length"));
    if (!Number.isSafeInteger(length) || length < 0) throw new FetchError("bad Content-Length");
    if (length > MAX_POLICY_BYTES) throw new FetchError(tooBig());
    body = await reader.exactly(length);
  } else {
    body = await reader.rest(MAX_POLICY_BYTES);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    throw new FetchError("policy is not UTF-8 text");
  }
}

const tooBig = () => `policy larger than ${MAX_POLICY_BYTES} bytes (RFC 8461 3.3)`;

/** Buffered reads from the connection. */
class Reader {
  #buf = new Uint8Array(0);
  #eof = false;
  constructor(readonly conn: Deno.Conn) {}

  async #more(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(16 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch (err) {
      // A peer that closes without close_notify after the body: the body is what counts.
      if (err instanceof Deno.errors.UnexpectedEof) n = null;
      else throw err;
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  #indexOf(seq: number[], from = 0): number {
    outer: for (let i = from; i + seq.length <= this.#buf.length; i++) {
      for (let j = 0; j < seq.length; j++) if (this.#buf[i + j] !== seq[j]) continue outer;
      return i;
    }
    return -1;
  }

  async head(): Promise<string> {
    for (;;) {
      const end = this.#indexOf([13, 10, 13, 10]);
      if (end >= 0) {
        const head = new TextDecoder().decode(this.#take(end));
        this.#take(4);
        return head;
      }
      if (this.#buf.length > MAX_HEAD_BYTES) throw new FetchError("HTTP response head too long");
      if (!await this.#more()) throw new FetchError("connection closed before the HTTP response head");
    }
  }

  async exactly(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!await this.#more()) throw new FetchError("connection closed before the end of the policy");
    }
    return this.#take(n);
  }

  async rest(max: number): Promise<Uint8Array> {
    while (await this.#more()) if (this.#buf.length > max) throw new FetchError(tooBig());
    return this.#take(this.#buf.length);
  }

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#indexOf([13, 10]);
      if (end >= 0) {
        const line = new TextDecoder().decode(this.#take(end));
        this.#take(2);
        return line;
      }
      if (this.#buf.length > MAX_HEAD_BYTES) throw new FetchError("HTTP chunk line too long");
      if (!await this.#more()) throw new FetchError("connection closed inside a chunked body");
    }
  }

  async chunked(max: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const sizeText = (await this.#line()).split(";")[0].trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new FetchError("bad chunk size in the HTTP body");
      const size = parseInt(sizeText, 16);
      if (size === 0) break;
      total += size;
      if (total > max) throw new FetchError(tooBig());
      parts.push(await this.exactly(size));
      await this.exactly(2);
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}
