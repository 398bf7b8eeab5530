// `deno task compile` (the appliance binary): its runtime cannot be downloaded here, so this checks what
// the binary relies on. The task bakes in exactly the permissions the documented appliance configuration
// (config/appliance/smx.conf) needs, every path of which lies in the documented layout; it includes every
// worker module, and the supervisor finds each from import.meta.url (never from the working directory);
// a compiled process needs no read permission on source directories.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../config/mod.ts";
import { compileCommand, workerModules } from "../components/mcp/manifest.ts";
import { computePermissions, mainNeeds, sourceDirs } from "../components/mcp/permissions.ts";
import { workerUrl } from "../components/mcp/spawn.ts";
import { COMPONENTS, SERVICES, type WorkerName } from "../components/protocol/messages.ts";

const APPLIANCE_CONF = "/etc/smx/smx.conf";
const LAYOUT = {
  read: ["/etc/smx/", "/var/spool/smx/", "/etc/resolv.conf"],
  write: ["/var/spool/smx/", "/var/log/smx"],
};

async function appliance() {
  const text = await Deno.readTextFile(new URL("../config/appliance/smx.conf", import.meta.url));
  const config = parseConfig(text, APPLIANCE_CONF);
  // The map files live in /etc/smx on the appliance, not here: the sets the configuration alone decides.
  // (The files only shape smtpc's ports and smar's nameservers, which the main process's --allow-net covers.)
  const perms = await computePermissions(config, { readFiles: false });
  return { config, perms, opts: { configFile: APPLIANCE_CONF, logDirectory: config.log?.directory } };
}

/** The words of a deno.json task. */
async function task(name: string): Promise<string[]> {
  const json = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  return (json.tasks[name] as string).trim().split(/\s+/);
}

Deno.test("deno task compile bakes in exactly the permissions of the appliance configuration", async () => {
  const { perms, opts } = await appliance();
  assert.deepEqual(await task("compile"), compileCommand(perms, opts));
});

Deno.test("every path the appliance binary may touch lies in the documented layout", async () => {
  const { perms, opts } = await appliance();
  const need = mainNeeds(perms, { ...opts, standalone: true });
  const inside = (path: string, roots: string[]) => roots.some((r) => path === r || path.startsWith(r));
  for (const path of need.read) assert.ok(inside(path, LAYOUT.read), `reads ${path}`);
  for (const path of need.write) assert.ok(inside(path, LAYOUT.write), `writes ${path}`);
  for (const [name, set] of Object.entries(perms)) {
    for (const path of set.read || []) assert.ok(inside(path, LAYOUT.read), `${name} reads ${path}`);
    for (const path of set.write || []) assert.ok(inside(path, LAYOUT.write), `${name} writes ${path}`);
  }
  assert.deepEqual(sourceDirs(true), [], "a compiled binary reads no source directory");
  assert.ok(!need.read.includes("components"));
});

Deno.test("the compile task includes every worker module, each found from import.meta.url", async () => {
  const words = await task("compile");
  const included = words.flatMap((w, i) => (words[i - 1] === "--include" ? [w] : []));
  assert.deepEqual(included, workerModules());
  const spawnModule = new URL("../components/mcp/spawn.ts", import.meta.url);
  for (const name of [...COMPONENTS, ...SERVICES] as WorkerName[]) {
    const url = workerUrl(name);
    assert.equal(url.href, new URL(`../${name}/worker.ts`, spawnModule).href, name);
    const source = await Deno.readTextFile(url);
    assert.match(source, new RegExp(`runWorker\\("${name}", `), `${fileURLToPath(url)} runs ${name}`);
  }
});

Deno.test("no component starts a worker or loads code from a path relative to the working directory", async () => {
  const offenders: string[] = [];
  const walk = async (dir: URL) => {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(url);
        const workers = [...text.matchAll(/new Worker\(([^,]+),/g)].map((m) => m[1].trim());
        if (workers.some((w) => w !== "url")) {
          offenders.push(`${entry.name}: new Worker(${workers.join(", ")})`);
        }
        if (/\bimport\(\s*[^"'`\s)]/.test(text)) offenders.push(`${entry.name}: dynamic import`);
      }
    }
  };
  await walk(new URL("../components/", import.meta.url));
  assert.deepEqual(offenders, []);
  // The one place that creates workers takes its URL from workerUrl(), i.e. from import.meta.url.
  const spawn = await Deno.readTextFile(new URL("../components/mcp/spawn.ts", import.meta.url));
  assert.match(spawn, /return new URL\(`\.\.\/\$\{name\}\/worker\.ts`, import\.meta\.url\);/);
});
