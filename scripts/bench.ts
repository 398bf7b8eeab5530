// The benchmark (`deno task bench [-- --messages N --size KB --sessions C]`): starts the whole MTA in this
// process on a temporary directory, with a mailertable routing bench.test to an SMTP sink on 127.0.0.1,
// drives it with C concurrent SMTP sessions until N messages are sent, and prints plain lines: accepted
// msg/s, end-to-end msg/s (sink deliveries over the time from the first MAIL to the last delivery),
// p50/p99 from the final dot to the 250, and peak RSS (the whole process: MCP, workers, load and sink).
// Then the queue-at-scale figures (scripts/bench_queue.ts): scheduling rounds and a restart with 100,000
// queued messages. With --compare-postfix: smx against a Postfix relay of its own, same sink, same load
// (scripts/bench_postfix.ts).
// The MTA's log lines go to stderr as usual. Touches the temporary directory and loopback ports.

import { parseArgs } from "node:util";
import { startTestMta } from "../tests/helpers/mta.ts";
import { startSink } from "../tests/helpers/smtp_sink.ts";
import { percentile, runLoad } from "./bench_load.ts";
import { comparePostfix } from "./bench_postfix.ts";
import { queueAtScale, queueLines } from "./bench_queue.ts";
import { idleLines, idleSessions } from "./bench_idle.ts";

const USAGE =
  "usage: deno task bench [-- --messages N (2000) --size KB (5) --sessions C (20) --queue N (100000, 0: skip)\n" +
  "                          --idle N (1000 idle sessions' memory, measured first; 0: skip)]\n" +
  "       deno task bench --compare-postfix [--pairs N (3) --scale F (1) --rate MSG/S (400) --seconds S (10)]\n" +
  "       either with --processes N: smtps workers (default: smx's, one per two cores, 1 to 4)";
/** Entries of the queue-at-scale figures (scripts/bench_queue.ts), measured after the relay figures. */
let queueEntries = 100_000;

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Read --${name}: ${JSON.stringify(text)} is not a positive integer`);
  }
  return n;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        messages: { type: "string", default: "2000" },
        size: { type: "string", default: "5" },
        sessions: { type: "string", default: "20" },
        queue: { type: "string", default: "100000" },
        "compare-postfix": { type: "boolean" },
        pairs: { type: "string", default: "3" },
        scale: { type: "string", default: "1" },
        rate: { type: "string", default: "400" },
        seconds: { type: "string", default: "10" },
        processes: { type: "string" },
        idle: { type: "string", default: "1000" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
    if (args.help) {
      console.log(USAGE);
      return 0;
    }
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n${USAGE}`);
    return 64;
  }
  let processes: number | "default" = "default";
  try {
    if (args.processes !== undefined) processes = positive("processes", args.processes);
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n${USAGE}`);
    return 64;
  }
  if (args["compare-postfix"]) {
    const scale = Number(args.scale);
    if (!(scale > 0)) {
      console.error(`bench: --scale ${JSON.stringify(args.scale)} is not a positive number\n${USAGE}`);
      return 64;
    }
    try {
      const pairs = positive("pairs", args.pairs);
      const rate = positive("rate", args.rate);
      const seconds = positive("seconds", args.seconds);
      queueEntries = 0;
      return await comparePostfix({ pairs, scale, rate, seconds, processes });
    } catch (e) {
      console.error(`bench: ${(e as Error).message}\n${USAGE}`);
      return e instanceof RangeError ? 64 : 1;
    }
  }
  let messages, sizeKb, sessions, idle;
  try {
    idle = args.idle === "0" ? 0 : positive("idle", args.idle);
    [messages, sizeKb, sessions] = [
      positive("messages", args.messages),
      positive("size", args.size),
      positive("sessions", args.sessions),
    ];
    queueEntries = args.queue === "0" ? 0 : positive("queue", args.queue);
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n${USAGE}`);
    return 64;
  }
  if (idle > 0) {
    for (const line of idleLines(await idleSessions(idle, processes))) console.log(line);
  }
  let peakRss = Deno.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, Deno.memoryUsage().rss)), 100);
  const sink = await startSink({ keepMessages: false });
  const mta = await startTestMta({ mailertable: `bench.test\t${sink.port}^esmtp:[127.0.0.1]\n`, processes });
  try {
    const workers = mta.mta.supervisor.instances("smtps");
    console.log(
      `messages: ${messages}, size: ${sizeKb} KB, sessions: ${sessions}, smtps workers: ${workers}`,
    );
    const load = await runLoad({
      port: mta.port,
      messages,
      size: sizeKb * 1024,
      sessions,
      sender: "load@source.bench.test",
      recipient: "sink@bench.test",
    });
    await sink.waitFor(load.accepted, 300_000);
    const delivered = performance.now();
    const secs = (ms: number) => (ms / 1000).toFixed(2);
    const rate = (n: number, ms: number) => (n / (ms / 1000)).toFixed(0);
    const acceptMs = load.lastAccept - load.firstMail;
    const e2eMs = delivered - load.firstMail;
    console.log(`accepted: ${load.accepted} in ${secs(acceptMs)} s = ${rate(load.accepted, acceptMs)} msg/s`);
    console.log(`end-to-end: ${sink.count} in ${secs(e2eMs)} s = ${rate(sink.count, e2eMs)} msg/s`);
    const p = (q: number) => percentile(load.latencies, q).toFixed(1);
    console.log(`latency (final dot to 250): p50 ${p(50)} ms, p99 ${p(99)} ms`);
    peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
    console.log(`peak RSS: ${(peakRss / 1024 / 1024).toFixed(0)} MB`);
    if (load.failed) console.log(`failed: ${load.failed} (first: ${load.firstFailure})`);
    return load.failed ? 1 : 0;
  } finally {
    clearInterval(sampler);
    await mta.stop();
    await sink.close();
  }
}

const code = await main();
if (code === 0 && queueEntries > 0) {
  for (const line of queueLines(await queueAtScale(queueEntries))) console.log(line);
}
Deno.exit(code);
