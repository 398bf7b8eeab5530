// A probe worker for permission tests: started with the permission set a component gets, it tries the
// operations named in the message it receives and answers, for each, "ok" or the error's name (e.g.
// "NotCapable"). Receives {probes: Probe[]}; sends string[] in the same order. Touches only what it probes.

export type Probe =
  | { op: "listen"; hostname: string; port: number }
  | { op: "connect"; hostname: string; port: number }
  | { op: "read"; path: string }
  | { op: "write"; path: string };

async function attempt(p: Probe): Promise<string> {
  try {
    switch (p.op) {
      case "listen":
        Deno.listen({ hostname: p.hostname, port: p.port }).close();
        return "ok";
      case "connect":
        (await Deno.connect({ hostname: p.hostname, port: p.port })).close();
        return "ok";
      case "read":
        await Deno.readFile(p.path);
        return "ok";
      case "write":
        await Deno.writeTextFile(p.path, "x");
        return "ok";
      default: {
        const never: never = p;
        return `unknown probe ${JSON.stringify(never)}`;
      }
    }
  } catch (err) {
    return (err as Error).name;
  }
}

// deno-lint-ignore no-explicit-any
const scope = self as any;
scope.onmessage = async (e: MessageEvent) => {
  const results: string[] = [];
  for (const p of (e.data as { probes: Probe[] }).probes) results.push(await attempt(p));
  scope.postMessage(results);
};
