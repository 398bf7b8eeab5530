// The comparison with Postfix (`deno task bench --compare-postfix`): where Debian's postfix package is
// installed, sets up a loopback-only Postfix relay of its own (main.cf, master.cf, queue and data
// directories under a temporary directory, never the system's; listening on 127.0.0.1 only, a port in
// 24000-31000) and smx (in this process, as `deno task bench` runs it), both relaying bench.test to the same
// smtp-sink. Each load runs Postfix and smx alternately, back to back, with the same smtp-source command;
// end to end is from smtp-source's start until the sink has counted every message. Then the open-loop
// latency (final dot to 250) at a fixed rate, with the benchmark's own client (bench_load.ts). Prints each
// run and the median smx/Postfix ratio. The Postfix instance itself: scripts/postfix_instance.ts. Runs
// /usr/sbin/postfix, smtp-source and smtp-sink; touches its temporary directory and loopback ports.

import { startTestMta, type TestMta } from "../tests/helpers/mta.ts";
import { percentile, runLoad } from "./bench_load.ts";
import { mainCf, masterCf, POSTFIX, runProgram as run, startPostfixInstance } from "./postfix_instance.ts";

const SMTP_SOURCE = "/usr/sbin/smtp-source";
const SMTP_SINK = "/usr/sbin/smtp-sink";
const SENDER = "load@source.bench.test";
const RECIPIENT = "sink@bench.test";

export interface CompareOptions {
  /** Postfix/smx pairs per load. */
  pairs: number;
  /** Multiplies the message counts (0.5: half as many). */
  scale: number;
  /** Open-loop rate (msg/s) and duration (s). */
  rate: number;
  seconds: number;
  /** smtps workers (tests/helpers/mta.ts): "default" for smx's own default. */
  processes?: number | "default";
}

interface Load {
  label: string;
  messages: number;
  kb: number;
  sessions: number;
}

const LOADS: Load[] = [
  { label: "5 KB, 20 sessions", messages: 4000, kb: 5, sessions: 20 },
  { label: "5 KB, 1 session", messages: 500, kb: 5, sessions: 1 },
  { label: "100 KB, 10 sessions", messages: 1000, kb: 100, sessions: 10 },
];

/** A port in 24000-31000 that nothing listens on now. */
function loopbackPort(taken: Set<number>): number {
  for (;;) {
    const port = 24000 + Math.floor(Math.random() * 7000);
    if (taken.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      taken.add(port);
      return port;
    } catch {
      // in use: try another
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** smtp-sink with its running counter (`mesg=N`) read from its output. */
class Sink {
  count = 0;
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;

  constructor(port: number, root: boolean) {
    const args = [...(root ? ["-u", "nobody"] : []), "-c", `127.0.0.1:${port}`, "1000"];
    this.#child = new Deno.Command(SMTP_SINK, { args, stdout: "piped", stderr: "null" }).spawn();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let tail = "";
    for await (const chunk of this.#child.stdout) {
      tail = (tail + decoder.decode(chunk)).slice(-200);
      const all = [...tail.matchAll(/mesg=(\d+)/g)];
      if (all.length > 0) this.count = Number(all[all.length - 1][1]);
    }
  }

  /** Resolves once the count reached `n`; false after `ms`. */
  async reach(n: number, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.count < n) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 2));
    }
    return true;
  }

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // gone already
    }
    await this.#child.status;
    await this.#reading.catch(() => {});
  }
}

/** A Postfix instance of its own under `dir`, relaying bench.test to the sink; resolves with its etc directory. */
function startPostfix(dir: string, port: number, sinkPort: number): Promise<string> {
  return startPostfixInstance(dir, {
    mainCf: mainCf(dir, "postfix.bench.test", [
      "mynetworks = 127.0.0.0/8",
      "smtpd_relay_restrictions = permit_mynetworks, reject",
      "smtpd_tls_security_level = none",
    ]),
    masterCf: masterCf([`127.0.0.1:${port} inet n - n - - smtpd`]),
    transport: `bench.test smtp:[127.0.0.1]:${sinkPort}`,
    ports: [port],
  });
}

interface RunResult {
  e2e: number;
  accepted: number;
  ok: boolean;
}

/** One smtp-source run against `port`; end to end until the sink counted every message. */
async function sourceRun(port: number, load: Load, messages: number, sink: Sink): Promise<RunResult> {
  const before = sink.count;
  const args = [
    "-s",
    String(load.sessions),
    "-l",
    String(load.kb * 1024),
    "-m",
    String(messages),
    "-f",
    SENDER,
    "-t",
    RECIPIENT,
    `127.0.0.1:${port}`,
  ];
  const t0 = performance.now();
  const out = await new Deno.Command(SMTP_SOURCE, { args, stdout: "null", stderr: "piped" }).output();
  const t1 = performance.now();
  const ok = out.success && await sink.reach(before + messages, 300_000);
  const t2 = performance.now();
  if (!out.success) console.log(`  smtp-source failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  return { e2e: messages / ((t2 - t0) / 1000), accepted: messages / ((t1 - t0) / 1000), ok };
}

const median = (xs: number[]) => percentile(xs, 50);
const fmt = (n: number) => n.toFixed(0);

/** Runs the comparison; returns the exit code (0 also when Postfix is not installed: nothing to compare). */
export async function comparePostfix(opts: CompareOptions): Promise<number> {
  for (const bin of [POSTFIX, SMTP_SOURCE, SMTP_SINK]) {
    if (!(await exists(bin))) {
      console.log(`compare-postfix: ${bin} is not installed (Debian's postfix package): nothing to compare`);
      return 0;
    }
  }
  const root = Deno.uid?.() === 0;
  if (!root) {
    console.log("compare-postfix: Postfix's master must start as root: nothing to compare");
    return 0;
  }
  const taken = new Set<number>();
  const [sinkPort, postfixPort, smxPort] = [loopbackPort(taken), loopbackPort(taken), loopbackPort(taken)];
  // Postfix's daemons run as the postfix user: its directory must be reachable for that user (here /tmp
  // is 0700), so under /var/tmp when it exists.
  const base = await exists("/var/tmp") ? "/var/tmp" : undefined;
  const dir = await Deno.makeTempDir({ prefix: "smx-bench-postfix-", dir: base });
  await Deno.chmod(dir, 0o755);
  const sink = new Sink(sinkPort, root);
  let etc: string | undefined;
  let smx: TestMta | undefined;
  let failed = false;
  try {
    etc = await startPostfix(dir, postfixPort, sinkPort);
    smx = await startTestMta({
      mailertable: `bench.test\t${sinkPort}^esmtp:[127.0.0.1]\n`,
      smtpsPort: smxPort,
      processes: opts.processes ?? "default",
    });
    const version = (await run("/usr/sbin/postconf", ["-c", etc, "-h", "mail_version"])).out.trim();
    console.log(
      `Postfix ${version} on 127.0.0.1:${postfixPort}, smx on 127.0.0.1:${smxPort}, ` +
        `smtp-sink on 127.0.0.1:${sinkPort}; ${opts.pairs} pairs per load, runs alternated; ` +
        `${smx.mta.supervisor.instances("smtps")} smtps workers`,
    );
    const mtas: [string, number][] = [["postfix", postfixPort], ["smx", smxPort]];
    // One warm-up run each (connection caches, JIT), not counted.
    for (const [, port] of mtas) await sourceRun(port, LOADS[0], 200, sink);
    for (const load of LOADS) {
      const messages = Math.max(10, Math.round(load.messages * opts.scale));
      console.log(`\n${load.label}: ${messages} messages of ${load.kb} KB (smtp-source -s ${load.sessions})`);
      const e2e: Record<string, number[]> = { postfix: [], smx: [] };
      for (let i = 0; i < opts.pairs; i++) {
        for (const [name, port] of mtas) {
          const r = await sourceRun(port, load, messages, sink);
          failed ||= !r.ok;
          e2e[name].push(r.e2e);
          console.log(
            `  ${name.padEnd(7)} run ${i + 1}: end to end ${fmt(r.e2e)} msg/s (accepted ${
              fmt(r.accepted)
            } msg/s)` +
              (r.ok ? "" : " INCOMPLETE"),
          );
        }
      }
      const [p, s] = [median(e2e.postfix), median(e2e.smx)];
      console.log(`  median: postfix ${fmt(p)}, smx ${fmt(s)} msg/s; smx/postfix ${(s / p).toFixed(2)}`);
    }
    const total = Math.round(opts.rate * opts.seconds);
    console.log(
      `\nopen loop: ${opts.rate} msg/s for ${opts.seconds} s (${total} messages of 5 KB, 20 sessions), ` +
        "final dot to 250",
    );
    const lat: Record<string, { p50: number[]; p99: number[] }> = {
      postfix: { p50: [], p99: [] },
      smx: { p50: [], p99: [] },
    };
    for (let i = 0; i < opts.pairs; i++) {
      for (const [name, port] of mtas) {
        const before = sink.count;
        const r = await runLoad({
          port,
          messages: total,
          size: 5 * 1024,
          sessions: 20,
          sender: SENDER,
          recipient: RECIPIENT,
          rate: opts.rate,
        });
        failed ||= r.failed > 0 || !(await sink.reach(before + r.accepted, 300_000));
        const [p50, p99] = [percentile(r.latencies, 50), percentile(r.latencies, 99)];
        lat[name].p50.push(p50);
        lat[name].p99.push(p99);
        console.log(
          `  ${name.padEnd(7)} run ${i + 1}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms` +
            (r.failed ? ` (${r.failed} failed: ${r.firstFailure})` : ""),
        );
      }
    }
    const m = (name: string, q: "p50" | "p99") => median(lat[name][q]);
    console.log(
      `  median: postfix p50 ${m("postfix", "p50").toFixed(1)} / p99 ${m("postfix", "p99").toFixed(1)} ms, ` +
        `smx p50 ${m("smx", "p50").toFixed(1)} / p99 ${m("smx", "p99").toFixed(1)} ms; smx/postfix p99 ` +
        (m("smx", "p99") / m("postfix", "p99")).toFixed(2),
    );
    return failed ? 1 : 0;
  } finally {
    // Each step on its own: Postfix must never be left running because smx failed to stop.
    await smx?.stop().catch((err) => console.error(`compare-postfix: stop smx: ${(err as Error).message}`));
    let postfixStopped = etc === undefined;
    if (etc) {
      const stopped = await run(POSTFIX, ["-c", etc, "stop"]).catch((err) => ({
        ok: false,
        out: String(err),
      }));
      postfixStopped = stopped.ok;
      if (!stopped.ok) {
        console.error(
          `compare-postfix: Postfix did not stop (${stopped.out.trim()}): postfix -c ${etc} stop`,
        );
      }
    }
    await sink.close();
    // Postfix's own directory stays while its master may still run (the stop command above names it).
    if (postfixStopped) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
