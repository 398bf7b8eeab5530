// An HTTPS server for the MTA-STS tests: Deno.serve with TLS on 127.0.0.1 and a certificate of the
// in-test CA (tests/fixtures/mta_sts), answering `/.well-known/mta-sts.txt` per Host header from a table
// the test can change while it runs (status, media type, body, redirect), or failing a domain on purpose.
// Records every request (host, path, method, body) so tests can count fetches. With `post`, it also
// takes TLS-RPT reports (POST of any path) and keeps their bodies. Touches only its listening socket.

export const FIXTURES = new URL("../fixtures/mta_sts/", import.meta.url).pathname;

export interface PolicyReply {
  status?: number;
  /** Default text/plain. */
  type?: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface PolicyServer {
  port: number;
  /** Replies by policy host name (`mta-sts.example.test`); the test may change them. */
  replies: Map<string, PolicyReply>;
  requests: { host: string; path: string; method: string; type: string; body: Uint8Array }[];
  /** Fetches of a policy host so far. */
  fetches(host: string): number;
  close(): Promise<void>;
}

/** A policy text in RFC 8461 3.2 form. */
export function policyText(mode: string, mx: string[], maxAge = 86400): string {
  return ["version: STSv1", `mode: ${mode}`, ...mx.map((m) => `mx: ${m}`), `max_age: ${maxAge}`, ""].join(
    "\r\n",
  );
}

export async function startPolicyServer(replies: Record<string, PolicyReply> = {}): Promise<PolicyServer> {
  const [cert, key] = await Promise.all([
    Deno.readTextFile(FIXTURES + "policy.pem"),
    Deno.readTextFile(FIXTURES + "policy.key"),
  ]);
  const table = new Map(Object.entries(replies));
  const requests: PolicyServer["requests"] = [];
  const ready = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
    onListen: ({ port }) => ready.resolve(port),
  }, async (req) => {
    const url = new URL(req.url);
    const host = (req.headers.get("host") ?? "").replace(/:\d+$/, "");
    const body = new Uint8Array(await req.arrayBuffer());
    requests.push({
      host,
      path: url.pathname,
      method: req.method,
      type: req.headers.get("content-type") ?? "",
      body,
    });
    if (req.method === "POST") return new Response("", { status: 200 });
    const r = table.get(host);
    if (!r || url.pathname !== "/.well-known/mta-sts.txt") return new Response("not found", { status: 404 });
    return new Response(r.body ?? "", {
      status: r.status ?? 200,
      headers: { "content-type": r.type ?? "text/plain", ...r.headers },
    });
  });
  const port = await ready.promise;
  return {
    port,
    replies: table,
    requests,
    fetches: (host) => requests.filter((r) => r.host === host && r.method === "GET").length,
    close: () => server.shutdown(),
  };
}
