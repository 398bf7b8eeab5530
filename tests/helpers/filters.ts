// Test helpers for the filters: starts real foreign filter programs on loopback (a Python milter on
// Debian's python3-milter, OpenDKIM, postgrey) and stops them. A program that is not installed fails
// the test under CI (env CI=true) and skips it elsewhere, with a line saying what is missing.

import { freePort } from "./harness.ts";

export interface Process {
  port: number | { path: string };
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

export { haveTool } from "./tools.ts";

/** Waits until something accepts connections on 127.0.0.1:`port` (or a unix socket `{ path }`). */
export async function waitForPort(
  port: number | { path: string },
  child: Deno.ChildProcess,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  let exited = false;
  child.status.then(() => exited = true);
  while (Date.now() < deadline) {
    if (exited) throw new Error(`the filter on ${JSON.stringify(port)} exited before it listened`);
    try {
      const c = typeof port === "number"
        ? await Deno.connect({ hostname: "127.0.0.1", port })
        : await Deno.connect({ transport: "unix", path: port.path });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listens on ${JSON.stringify(port)} after ${ms} ms`);
}

/** Starts a program with `args`, waits for its port, and gives a stop() that kills it and waits. */
export async function startProcess(
  cmd: string,
  args: string[],
  port: number | { path: string },
): Promise<Process> {
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped", stdin: "null" }).spawn();
  const stderr = new Response(child.stderr).text();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await stderr;
  };
  try {
    await waitForPort(port, child);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}: ${(await stderr).slice(0, 2000)}`);
  }
  return { port, child, stop };
}

export const PYTHON = "/usr/bin/python3";
export const TEST_MILTER = new URL("../fixtures/milter/test_milter.py", import.meta.url).pathname;

/** The Python test milter (tests/fixtures/milter/test_milter.py), logging what it saw to `logFile`. */
export async function startTestMilter(
  logFile: string,
  port = freePort(),
): Promise<Process & { port: number }> {
  return { ...await startProcess(PYTHON, [TEST_MILTER, `inet:${port}@127.0.0.1`, logFile], port), port };
}

export const OPENDKIM = "/usr/sbin/opendkim";
export const OPENDKIM_GENKEY = "/usr/sbin/opendkim-genkey";
export const DKIM_VERIFY = new URL("../fixtures/milter/dkim_verify.py", import.meta.url).pathname;

/** OpenDKIM signing for example.com (selector `test`) in `dir` (a private directory it keeps its key in). */
export async function startOpendkim(
  dir: string,
  port = freePort(),
): Promise<Process & { port: number; keyTxt: string }> {
  const keygen = await new Deno.Command(OPENDKIM_GENKEY, {
    args: ["-b", "1024", "-d", "example.com", "-s", "test", "-D", dir],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!keygen.success) throw new Error(`opendkim-genkey failed: ${new TextDecoder().decode(keygen.stderr)}`);
  const conf = `${dir}/opendkim.conf`;
  await Deno.writeTextFile(
    conf,
    [
      "Syslog no",
      "Background no",
      "Mode sv",
      "Domain example.com",
      "Selector test",
      `KeyFile ${dir}/test.private`,
      `Socket inet:${port}@127.0.0.1`,
      "RequireSafeKeys false",
      "Canonicalization relaxed/simple",
      "InternalHosts 127.0.0.1",
      "",
    ].join("\n"),
  );
  const p = await startProcess(OPENDKIM, ["-f", "-x", conf], port);
  return { ...p, port, keyTxt: `${dir}/test.txt` };
}

/** dkimpy's verdict on a stored message: "pass" or "fail: why". */
export async function dkimVerify(messageFile: string, keyTxt: string): Promise<string> {
  const out = await new Deno.Command(PYTHON, { args: [DKIM_VERIFY, messageFile, keyTxt], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).trim();
}

export const POSTGREY = "/usr/sbin/postgrey";

/** postgrey (Debian's) on a free port with its database in `dir`, greylisting for `delay` seconds. */
export async function startPostgrey(
  dir: string,
  delay = 1,
  port = freePort(),
): Promise<Process & { port: number }> {
  return {
    ...await startProcess(POSTGREY, [
      `--inet=127.0.0.1:${port}`,
      `--dbdir=${dir}`,
      `--delay=${delay}`,
      `--pidfile=${dir}/postgrey.pid`,
      // The test's temporary directory is private to this user: postgrey stays this user too.
      "--user=root",
      "--group=root",
    ], port),
    port,
  };
}
