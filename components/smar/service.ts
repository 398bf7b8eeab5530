// smar's start, reload and stop: finds its nameservers, builds the resolver, loads its maps and the
// greylisting database (load.ts) and installs the handler. A broken configuration at start (missing or
// bad map file, bad nameserver) is reported to the MCP as fatal: restarting cannot cure it. A reload
// (SIGHUP, control channel) loads every map again; a map that fails keeps its previous version and the
// reason is logged. Maps replaced by a reload are closed once the requests using them are answered.
// Touches its map files, the greylisting database and, when no nameserver is configured,
// /etc/resolv.conf.

import type { Config } from "../../config/types.ts";
import type { Component, WorkerContext } from "../protocol/worker_runtime.ts";
import { log } from "../util/log.ts";
import { brokenHandler, type Generation, makeHandler } from "./dispatch.ts";
import { configuredNameservers, markValidating } from "./dns/nameservers.ts";
import { tlsaLookup } from "./tlsa.ts";
import { Resolver } from "./dns/resolver.ts";
import { buildPolicy, closeAll, loadAll, type Loaded } from "./load.ts";
import type { TlsRouteDeps } from "./tls_route.ts";
import { type MtaSts, startMtaSts } from "./mta_sts/start.ts";
import { httpsPost } from "./https_post.ts";

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export async function start(ctx: WorkerContext): Promise<Component> {
  const cfg = ctx.config.smar;
  let resolver: Resolver;
  let loaded: Loaded;
  let dane = false;
  let mtaSts: MtaSts | undefined;
  try {
    const nameservers = markValidating(
      await configuredNameservers(cfg.nameserver).catch((err: Error) => {
        throw new Error(`Find nameservers: ${err.message}`);
      }),
      cfg.DNSSEC_validating_nameserver ?? [],
    );
    dane = nameservers.some((n) => n.validating);
    loaded = (await loadAll(ctx.config)).loaded;
    resolver = new Resolver({ nameservers, timeoutMs: cfg.DNS_timeout });
    if (cfg.MTA_STS) mtaSts = await startMtaSts(cfg.MTA_STS, resolver);
    const ns = nameservers.map((n) =>
      (n.family === 6 ? `[${n.ip}]` : n.ip) + `:${n.port}` + (n.validating ? " (validating: DANE)" : "")
    ).join(", ");
    log.info("smar", `started: nameservers ${ns}`);
  } catch (err) {
    const reason = (err as Error).message;
    log.error("smar", reason);
    ctx.fatal(reason);
    ctx.endpoint.handle(brokenHandler(reason));
    return { stop: () => Promise.resolve() };
  }

  // TLS-RPT's https: reports, POSTed for qmgr (trusting MTA_STS.CAcert_file too).
  const caFile = cfg.MTA_STS?.CAcert_file;
  const caCerts = caFile ? (await Deno.readTextFile(caFile).catch(() => "")).match(PEM_CERT) ?? [] : [];
  const post = ctx.config.qmgr.TLS_RPT
    ? (url: string, type: string, body: string) =>
      httpsPost(url, type, body, { resolver, caCerts, timeoutMs: cfg.MTA_STS?.timeout ?? 30_000 })
    : undefined;
  const generation = (config: Config, l: Loaded): Generation => {
    const policy = buildPolicy(config, l, resolver);
    // The TLS facts of routes (tls_route.ts): the access map's tls_srv:/try_tls: entries, DANE TLSA
    // records when a validating nameserver is configured, the MTA-STS source (smar/mta_sts/, when
    // configured).
    const tls: TlsRouteDeps = {
      access: policy.d.access,
      dane: dane ? tlsaLookup(resolver) : undefined,
      mtaSts: mtaSts?.source,
    };
    // smtpc's ipv6 flag decides whether routes carry IPv6 addresses (it alone may reach them).
    const ipv6 = config.smtpc.flags?.includes("ipv6") ?? false;
    return {
      policy,
      routes: { resolver, mailertable: l.mailertable, tls, mxPort: cfg.MTA_STS?.MX_port, ipv6 },
      post,
      stsFailure: mtaSts ? (domain: string) => mtaSts!.source.takeFailure(domain) : undefined,
      inflight: 0,
      retire: undefined,
    };
  };
  let current = generation(ctx.config, loaded);
  ctx.endpoint.handle(makeHandler(() => current));
  let reloading = Promise.resolve();

  return {
    stop() {
      mtaSts?.stop();
      resolver.close();
      closeAll(loaded);
      return Promise.resolve();
    },
    reload(config: Config) {
      const run = reloading.then(async () => {
        const { loaded: next, problems, retired } = await loadAll(config, loaded);
        for (const p of problems) log.error("smar", `reload: ${p}`);
        const old = current;
        loaded = next;
        current = generation(config, next);
        old.retire = () => retired.forEach((r) => r.close());
        if (old.inflight === 0) old.retire();
        log.info(
          "smar",
          `reloaded the maps${problems.length ? ` (${problems.length} kept from before)` : ""}`,
        );
      });
      reloading = run.catch(() => {});
      return run;
    },
  };
}
