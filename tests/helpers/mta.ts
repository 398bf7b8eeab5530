// Starts the whole MTA in the test process for end-to-end tests and the benchmark: a temporary directory
// holds the queue (var/), the map files and nothing else; the configuration is smx.conf text run through
// parseConfig (paths inside the directory, 1 s retries, 200 ms heartbeats, a free loopback port). The test
// process has broad permissions; the workers get only the sets the MCP computes for them.

import { join } from "node:path";
import { parseConfig } from "../../config/mod.ts";
import type { Config } from "../../config/types.ts";
import { type Mta, type MtaOptions, startMta } from "../../components/mcp/mta.ts";
import { freePort } from "./harness.ts";

export interface TestMtaOptions {
  /** Directory to use (kept afterwards); a new temporary one (removed by stop()) when absent. */
  dir?: string;
  /** Keep the temporary directory after stop(), to look at the queue. */
  keep?: boolean;
  /** Mailertable text (`domain<TAB>[port^][esmtp:|lmtp:][host]` lines); empty when absent. */
  mailertable?: string;
  /** Access map text; when absent, the default: 127.0.0.1 may relay. */
  access?: string;
  /** Nameservers (`ip` or `ip:port`); those of /etc/resolv.conf when absent. */
  nameservers?: string[];
  /** Port smtps listens on (127.0.0.1); a free one when absent. */
  smtpsPort?: number;
  /** More smx.conf text, appended: sections and options the generated text does not already hold. */
  configText?: string;
  /** Changes to the parsed Config (for options inside sections the generated text already holds). */
  adjust?: (config: Config) => void;
  /**
   * smtps workers for each smtps section that sets no `processes`: 1 unless told (so a test sees the same
   * on every machine), or "default" for the configuration's own default (one per core, config/processes.ts).
   */
  processes?: number | "default";
  /** Options of the MTA itself (e.g. the supervisor's restart limits). */
  mtaOptions?: MtaOptions;
}

export interface TestMta {
  /** The port smtps listens on, on 127.0.0.1. */
  port: number;
  dir: string;
  config: Config;
  mta: Mta;
  /** Stops the MTA and removes the temporary directory (unless given or kept). */
  stop(): Promise<void>;
}

export const DEFAULT_TEST_ACCESS = "cltaddr:127.0.0.1\trelay\n";

/** The smx.conf text of a test MTA rooted at `dir` (its smtps section with `processes`; 0: unset). */
export function testConfigText(dir: string, port: number, nameservers?: string[], processes = 1): string {
  const q = (s: string) => JSON.stringify(s);
  const ns = nameservers?.length ? `  nameserver = { ${nameservers.join(", ")} };\n` : "";
  return `# A test MTA in ${dir}
hostname = "localhost";
CDB_base_directory = ${q(join(dir, "var/cdb"))};
map access { type = hash; file = ${q(join(dir, "access"))}; }
map mailertable { type = hash; file = ${q(join(dir, "mailertable"))}; }
mcp { heartbeat_interval = 200ms; }
qmgr {
  IBDB { base_directory = ${q(join(dir, "var/ibdb"))}; }
  DEFEDB { base_directory = ${q(join(dir, "var/defedb"))}; }
  retry_min_delay = 1s;
  retry_max_delay = 2s;
}
smtps MTA {
  listen_socket { type = inet; address = 127.0.0.1; port = ${port}; }${
    processes ? `\n  processes = ${processes};` : ""
  }
}
smar {
  access_map = access;
  mailertable = mailertable;
${ns}}
`;
}

/** Starts a complete MTA on a temporary directory; resolves once every component is ready. */
export async function startTestMta(opts: TestMtaOptions = {}): Promise<TestMta> {
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "smx-test-" });
  const remove = opts.dir === undefined && !opts.keep;
  try {
    await Deno.writeTextFile(join(dir, "mailertable"), opts.mailertable ?? "");
    await Deno.writeTextFile(join(dir, "access"), opts.access ?? DEFAULT_TEST_ACCESS);
    const port = opts.smtpsPort ?? freePort();
    const processes = opts.processes ?? 1;
    const n = processes === "default" ? 0 : processes;
    const text = testConfigText(dir, port, opts.nameservers, n) + (opts.configText ?? "");
    const config = parseConfig(text, join(dir, "smx.conf"));
    // Sections of configText too (a reload reads only the file, whose MTA section says it itself).
    if (n) { for (const s of config.smtps) s.processes ??= n; }
    opts.adjust?.(config);
    const mta = await startMta(config, opts.mtaOptions);
    const stop = async () => {
      try {
        await mta.stop();
      } finally {
        if (remove) await Deno.remove(dir, { recursive: true });
      }
    };
    return { port, dir, config, mta, stop };
  } catch (err) {
    if (remove) await Deno.remove(dir, { recursive: true });
    throw err;
  }
}
