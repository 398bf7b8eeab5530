// qmgr run in the test process (startQmgr, not a worker) so that tests can hand it a clock and a
// free-space probe: its peers are test Endpoints over MessageChannels, smar answers routes from a table
// (and alias expansions of the DSNs qmgr makes from another, rpc.failure for an address not in it),
// smtpc answers each delivery from a script (and the test can read the content it was asked to send,
// e.g. a DSN). Everything lives in a temporary directory removed by stop().

import { join } from "node:path";
import { defaultConfig } from "../../config/defaults.ts";
import type { Config } from "../../config/types.ts";
import { cdbPath, ensureCdbDirs } from "../../components/mail/cdb.ts";
import { newQueueId } from "../../components/mail/queue_id.ts";
import { Endpoint, type Handler } from "../../components/protocol/endpoint.ts";
import type { ComponentStatus } from "../../components/protocol/frames.ts";
import type {
  ComponentName,
  DeliveryTransaction,
  Envelope,
  Message,
  RecipientResult,
  RecipientSpec,
  Relay,
  ResultReply,
  RouteResult,
} from "../../components/protocol/messages.ts";
import { reasonResult } from "../../components/mail/result.ts";
import type { Component } from "../../components/protocol/worker_runtime.ts";
import { commitEnvelope } from "../../components/qmgr/client.ts";
import { type QmgrOptions, startQmgr } from "../../components/qmgr/qmgr.ts";
import { cdbText } from "./cdb.ts";
import { waitFor } from "./wait.ts";

/** One delivery smtpc was asked for, with the content of the message file at that time. */
export interface Delivered {
  ta: DeliveryTransaction;
  content: string;
}

export type Answer = RecipientResult["status"] | { status: RecipientResult["status"]; reply: string };

export interface SmtpcScript {
  /** Each recipient's answer; default "sent". */
  answer?: (ta: DeliveryTransaction, rcpt: RecipientSpec & { index: number }) => Answer;
  /** The relay reported, or undefined for "could not connect" (every host of the route failed). */
  relay?: (ta: DeliveryTransaction) => Relay | undefined;
  /** The hosts that failed before the relay (default: all of the route's when there is no relay). */
  failed?: (ta: DeliveryTransaction) => { address: string }[];
  /** Whether the next hop offered DSN. */
  dsn?: boolean;
  /** Awaited before answering (a test holds deliveries open with it). */
  gate?: (ta: DeliveryTransaction) => Promise<void>;
}

/** A server's reply line (`550 5.1.1 text`) as a result carries it. */
export function serverReply(text: string): ResultReply {
  const m = /^(\d{3})(?: ([245]\.\d{1,3}\.\d{1,3}))?(?: (.*))?$/s.exec(text);
  if (!m) return { lines: [text] };
  const r: ResultReply = { code: Number(m[1]), lines: m[3] ? [m[3]] : [] };
  if (m[2]) r.enhanced = m[2];
  return r;
}

const REPLY: Record<RecipientResult["status"], string> = {
  sent: "250 2.0.0 Ok: queued",
  temp: "451 4.3.0 Try again later",
  perm: "550 5.1.1 <user> No such user",
};

export interface InProcessQmgr {
  root: string;
  config: Config;
  qmgr: Component;
  smtps: Endpoint;
  /** Every delivery smtpc was asked for, in order. */
  delivered: Delivered[];
  /** Notices qmgr sent to smtps (qmgr.disk_state). */
  toSmtps: Message[];
  script: SmtpcScript;
  routes: Record<string, RouteResult>;
  /** smar's answers to qmgr.expand: address -> final addresses (absent: smar fails to answer). */
  expansions: Record<string, string[]>;
  /** The test clock: real time plus `offset`, which tests move forward. */
  clock: { offset: number; now(): number };
  submit(recipients: (string | RecipientSpec)[], more?: Partial<Envelope>): Promise<Envelope>;
  stop(): Promise<void>;
}

export interface InProcessOptions extends Omit<QmgrOptions, "now"> {
  adjust?: (config: Config) => void;
  mcpStatus?: () => Promise<ComponentStatus[] | undefined>;
}

export const MX = { name: "mx.dest.test", address: "192.0.2.25" };

/** Starts qmgr in this process on a fresh temporary directory. */
export async function startInProcessQmgr(opts: InProcessOptions = {}): Promise<InProcessQmgr> {
  const root = await Deno.makeTempDir({ prefix: "qmgr_inproc_" });
  const config = structuredClone(defaultConfig());
  config.hostname = "mx.local.test";
  config.CDB_base_directory = join(root, "cdb");
  config.qmgr.IBDB.base_directory = join(root, "ibdb");
  config.qmgr.DEFEDB.base_directory = join(root, "defedb");
  config.qmgr.IBDB.max_commit_delay = 2;
  config.qmgr.retry_min_delay = 60_000;
  config.qmgr.retry_max_delay = 120_000;
  config.qmgr.DSN_handling.merge_delay_max = 0;
  config.qmgr.min_disk_space = 0;
  opts.adjust?.(config);
  await ensureCdbDirs(config.CDB_base_directory);

  const clock = { offset: 0, now: () => Date.now() + clock.offset };
  const delivered: Delivered[] = [];
  const toSmtps: Message[] = [];
  const script: SmtpcScript = {};
  const routes: Record<string, RouteResult> = {
    "dest.test": { status: "ok", protocol: "esmtp", port: 25, hosts: [MX] },
    "sender.test": { status: "ok", protocol: "esmtp", port: 25, hosts: [MX] },
    "mx.local.test": {
      status: "ok",
      protocol: "lmtp",
      port: 24,
      hosts: [{ name: "lda", address: "127.0.0.1" }],
    },
    "gone.test": { status: "perm", text: "Host or domain name not found" },
  };
  const expansions: Record<string, string[]> = {};
  const smar: Handler = (_from, body) => {
    if (body.type === "qmgr.expand") {
      const recipients = expansions[body.address];
      if (!recipients) return { type: "rpc.failure", reason: `no expansion for ${body.address}` };
      return { type: "smar.expansion", address: body.address, recipients };
    }
    if (body.type !== "qmgr.route") return { type: "rpc.failure", reason: "not a route request" };
    const result = routes[body.domain] ?? { status: "perm", text: `no route for ${body.domain}` };
    return { type: "smar.route", domain: body.domain, result };
  };
  const smtpc: Handler = async (_from, body) => {
    if (body.type !== "qmgr.deliver") return { type: "rpc.failure", reason: "not a delivery" };
    const ta = body.ta;
    const content = await cdbText(ta.cdbPath).catch(() => "");
    delivered.push({ ta, content });
    await script.gate?.(ta);
    const first = ta.route.hosts[0];
    const relay = script.relay
      ? script.relay(ta)
      : { name: first.name, address: first.address, port: ta.route.port };
    const results: RecipientResult[] = ta.recipients.map((r) => {
      const a = script.answer?.(ta, r) ?? "sent";
      const status = typeof a === "string" ? a : a.status;
      if (relay === undefined && status === "temp") {
        return reasonResult(r.index, status, "agent", `connect to ${first.address}:25: Connection refused`);
      }
      const reply = typeof a === "string" ? REPLY[a] : a.reply;
      return { index: r.index, status, origin: "remote", reply: serverReply(reply), relay };
    });
    const answer: Message = { type: "smtpc.result", taId: ta.taId, results };
    if (relay !== undefined) answer.relay = relay;
    const failed = script.failed?.(ta) ?? (relay === undefined ? ta.route.hosts : []);
    if (failed.length > 0) {
      answer.failedHosts = failed.map((h) => ({
        address: h.address,
        port: ta.route.port,
        reason: "Connection refused",
      }));
    }
    if (script.dsn !== undefined) answer.dsn = script.dsn;
    return answer;
  };

  const qmgrEp = new Endpoint("qmgr");
  const peers = new Map<ComponentName, Endpoint>();
  const handlers: [ComponentName, Handler][] = [
    ["smar", smar],
    ["smtpc", smtpc],
    ["smtps", (_from, body) => {
      toSmtps.push(body);
    }],
  ];
  for (const [name, handler] of handlers) {
    const ch = new MessageChannel();
    const ep = new Endpoint(name);
    ep.handle(handler);
    ep.setPeer("qmgr", ch.port2);
    qmgrEp.setPeer(name, ch.port1);
    peers.set(name, ep);
  }
  const ctx = {
    name: "qmgr" as const,
    generation: 1,
    config,
    endpoint: qmgrEp,
    fatal: (reason: string) => {
      throw new Error(`qmgr reported fatal: ${reason}`);
    },
    mcpStatus: opts.mcpStatus,
  };
  let qmgr: Component;
  try {
    qmgr = await startQmgr(ctx, { ...opts, now: clock.now });
  } catch (err) {
    qmgrEp.close();
    for (const ep of peers.values()) ep.close();
    await Deno.remove(root, { recursive: true });
    throw err;
  }
  const smtps = peers.get("smtps")!;

  const submit = async (recipients: (string | RecipientSpec)[], more: Partial<Envelope> = {}) => {
    const id = newQueueId(clock.now());
    const env: Envelope = {
      id,
      cdbPath: cdbPath(config.CDB_base_directory, id),
      size: 0,
      arrival: clock.now(),
      sender: "alice@sender.test",
      recipients: recipients.map((r) => typeof r === "string" ? { address: r } : r),
      client: { ip: "192.0.2.1", helo: "client.test" },
      ...more,
    };
    const text =
      `Received: from client.test\r\nSubject: Test ${id}\r\nMessage-ID: <${id}@client.test>\r\n\r\n` +
      "Hello,\r\nthis is the body.\r\n";
    await Deno.writeTextFile(env.cdbPath, text);
    env.size = new TextEncoder().encode(text).length;
    const answer = await commitEnvelope(smtps, env);
    if (answer.type !== "qmgr.committed") {
      throw new Error(`Commit a test envelope: ${JSON.stringify(answer)}`);
    }
    return env;
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      await qmgr.stop();
    } finally {
      qmgrEp.close();
      for (const ep of peers.values()) ep.close();
      await Deno.remove(root, { recursive: true });
    }
  };
  return { root, config, qmgr, smtps, delivered, toSmtps, script, routes, expansions, clock, submit, stop };
}

/** Waits until `cond` holds (polling every 10 ms), or fails after `ms` (tests/helpers/wait.ts). */
export function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  return waitFor(cond, what, { timeout: ms });
}
