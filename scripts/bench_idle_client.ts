// The client side of the idle-session measurement (scripts/bench_idle.ts), run as its own process so its
// sockets do not count in the MTA's memory: opens N SMTP connections to 127.0.0.1:PORT, reads each
// greeting, prints `ready N` (or `failed: ...`), keeps them open and idle until its stdin closes, then
// sends QUIT on each and exits. Usage: deno run --allow-net=127.0.0.1 scripts/bench_idle_client.ts PORT N.
// Touches only those connections.

const [portText, countText] = Deno.args;
const port = Number(portText);
const count = Number(countText);
const conns: Deno.Conn[] = [];
const encoder = new TextEncoder();

async function greeting(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(512);
  let text = "";
  while (!text.includes("\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

try {
  // 50 at a time: a crowd of connects at once would only measure the listen backlog.
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        const g = await greeting(conn);
        if (!g.startsWith("220")) throw new Error(`greeting ${JSON.stringify(g.trim())}`);
        return conn;
      }),
    );
    conns.push(...batch);
  }
  console.log(`ready ${conns.length}`);
} catch (err) {
  console.log(`failed: ${(err as Error).message} after ${conns.length} connections`);
}
// Wait for the parent to be done measuring.
for await (const _ of Deno.stdin.readable) { /* nothing to read: the end is the signal */ }
await Promise.all(conns.map(async (c) => {
  try {
    await c.write(encoder.encode("QUIT\r\n"));
  } catch { /* the server may be gone */ }
  c.close();
}));
