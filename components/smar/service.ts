// smar's start and stop: loads the mailertable and the access map, finds its nameservers, builds the
// resolver and installs the handler. A broken configuration (missing or bad map file, bad nameserver)
// is reported to the MCP as fatal: restarting cannot cure it. Touches its map files and, when no
// nameserver is configured, /etc/resolv.conf.

import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { log } from "../util/log.ts";
import { Policy } from "./access.ts";
import { brokenHandler, makeHandler } from "./dispatch.ts";
import { configuredNameservers } from "./dns/nameservers.ts";
import { Resolver } from "./dns/resolver.ts";
import { loadMailertable, type Mailertable } from "./mailertable.ts";
import { loadMap, type MapLookup } from "./maps.ts";

export async function start(ctx: WorkerContext): Promise<Component> {
  const cfg = ctx.config.smar;
  let mailertable: Mailertable | undefined;
  let access: MapLookup | undefined;
  let resolver: Resolver | undefined;
  try {
    const nameservers = await configuredNameservers(cfg.nameserver).catch((err: Error) => {
      throw new Error(`Find nameservers: ${err.message}`);
    });
    mailertable = cfg.mailertable ? await loadMailertable(cfg.mailertable) : undefined;
    access = cfg.access_map ? await loadMap(cfg.access_map) : undefined;
    resolver = new Resolver({ nameservers, timeoutMs: cfg.DNS_timeout });
    const ns = nameservers.map((n) => (n.family === 6 ? `[${n.ip}]` : n.ip) + `:${n.port}`).join(", ");
    log.info("smar", `started: nameservers ${ns}`);
  } catch (err) {
    mailertable?.close();
    access?.close();
    const reason = (err as Error).message;
    log.error("smar", reason);
    ctx.fatal(reason);
    ctx.endpoint.handle(brokenHandler(reason));
    return { stop: () => Promise.resolve() };
  }
  ctx.endpoint.handle(makeHandler({
    policy: new Policy(access, mailertable),
    routes: { resolver, mailertable },
  }));
  return {
    stop() {
      resolver.close();
      mailertable?.close();
      access?.close();
      return Promise.resolve();
    },
  };
}
