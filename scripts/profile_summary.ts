// Summarises V8 CPU profiles (`deno run --cpu-prof --cpu-prof-dir=DIR ...` writes one .cpuprofile per
// isolate: the main thread and each worker): for each file, the busy share of its samples and the
// functions with the most self time. Usage: deno run --allow-read scripts/profile_summary.ts DIR [TOP].
// Reads only the profiles in DIR.

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const IDLE = new Set(["(idle)", "(program)", "(garbage collector)"]);

function short(url: string): string {
  const i = url.indexOf("/components/");
  if (i >= 0) return url.slice(i + 1);
  const j = url.indexOf("/scripts/");
  if (j >= 0) return url.slice(j + 1);
  return url.replace(/^.*\/(ext|node):/, "$1:").slice(-50) || "(native)";
}

function summarise(name: string, p: Profile, top: number): string[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let gc = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const n = byId.get(id);
    if (!n) return;
    total += dt;
    const fn = n.callFrame.functionName || "(anonymous)";
    // A worker waiting at start for the profiler to attach is not work.
    if (fn === "(idle)" || fn === "op_worker_maybe_wait_for_debugger") return void (idle += dt);
    if (fn === "(garbage collector)") gc += dt;
    const key = IDLE.has(fn) ? fn : `${fn} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const busy = total - idle;
  // Which component the isolate ran: the one whose files hold the most self time.
  const owners = new Map<string, number>();
  for (const [key, t] of self) {
    const m = / components\/([a-z_]+)\//.exec(key);
    const component = m?.[1] === "smtp_io" ? "smtps" : m?.[1];
    if (component && !["protocol", "util", "mail"].includes(component)) {
      owners.set(component, (owners.get(component) ?? 0) + t);
    }
  }
  const owner = [...owners].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "?";
  const lines = [
    `${name} (${owner}): ${(total / 1e6).toFixed(1)} s sampled, busy ${(busy / 1e6).toFixed(1)} s ` +
    `(${((100 * busy) / Math.max(1, total)).toFixed(0)}%), GC ${
      ((100 * gc) / Math.max(1, busy)).toFixed(1)
    }% of busy`,
  ];
  for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${((100 * t) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${key}`);
  }
  return lines;
}

if (import.meta.main) {
  const [dir, topText] = Deno.args;
  if (!dir) {
    console.error("usage: deno run --allow-read scripts/profile_summary.ts DIR [TOP]");
    Deno.exit(64);
  }
  const top = Number(topText ?? 15);
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".cpuprofile")) continue;
    const p = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}`)) as Profile;
    console.log(summarise(e.name, p, top).join("\n") + "\n");
  }
}
