// Memory per idle session (`deno task bench --idle N`, 1000 by default): the whole MTA in this process,
// N SMTP connections opened by a client in another process (scripts/bench_idle_client.py, run by Debian's
// /usr/bin/python3, so its sockets do not count here), each past its greeting and then idle. Prints the
// process's RSS before, right after the N are open, and after they sat idle a while (V8 has collected what
// the connects left behind by then), each as the growth per session. The MTA's session limits are raised
// for the run (max_threads, qmgr's max_connections per client): every connection comes from 127.0.0.1.

import { fileURLToPath } from "node:url";
import { startTestMta } from "../tests/helpers/mta.ts";

export interface IdleResult {
  sessions: number;
  workers: number;
  /** RSS (bytes): before, right after the sessions opened, after `settle` ms idle. */
  before: number;
  open: number;
  settled: number;
  settleMs: number;
}

const PYTHON = "/usr/bin/python3";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens `n` idle sessions against a fresh MTA and measures its RSS around them. */
export async function idleSessions(
  n: number,
  processes: number | "default",
  settleMs = 10_000,
): Promise<IdleResult> {
  const mta = await startTestMta({
    processes,
    adjust: (c) => {
      c.qmgr.smtps.max_connections = 0;
      for (const s of c.smtps) {
        s.max_threads = n + 100;
        s.stress_threshold = 0; // one client holds every session: no stress mode share limit
      }
    },
  });
  try {
    const workers = mta.mta.supervisor.instances("smtps");
    await sleep(2_000); // the workers finish starting (JIT, first allocations)
    const before = Deno.memoryUsage().rss;
    const client = new Deno.Command(PYTHON, {
      args: [
        fileURLToPath(new URL("./bench_idle_client.py", import.meta.url)),
        String(mta.port),
        String(n),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = client.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    while (!/\n/.test(said)) {
      const { value, done } = await reader.read();
      if (done) break;
      said += value;
    }
    if (!said.startsWith("ready")) {
      await client.stdin.close();
      await client.status;
      throw new Error(`Open ${n} idle sessions: the client said ${JSON.stringify(said.trim())}`);
    }
    const open = Deno.memoryUsage().rss;
    await sleep(settleMs);
    const settled = Deno.memoryUsage().rss;
    await client.stdin.close();
    reader.releaseLock();
    await client.stdout.cancel().catch(() => {});
    await client.status;
    return { sessions: n, workers, before, open, settled, settleMs };
  } finally {
    await mta.stop();
  }
}

/** The result as the benchmark prints it. */
export function idleLines(r: IdleResult): string[] {
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;
  const per = (b: number) => `${((b - r.before) / r.sessions / 1024).toFixed(1)} KB`;
  return [
    `idle sessions: ${r.sessions} open, ${r.workers} smtps workers`,
    `RSS: ${mb(r.before)} before, ${mb(r.open)} with them open (${per(r.open)} per session), ` +
    `${mb(r.settled)} after ${r.settleMs / 1000} s idle (${per(r.settled)} per session)`,
  ];
}
