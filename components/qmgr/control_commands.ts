// What each control socket command does (qmgrctl): status, list, show (with the content on request),
// flush, hold, release, delete, bounce and requeue (each of one message, a list, a filter's or all), stats,
// reload (asks the MCP to read the configuration again, as SIGHUP does), and check (compares the
// database with the queue files, queue_check.ts). Each takes the request's arguments, checks them (a bad or unknown queue id is a clear
// error, never a crash) and answers plain data; control.ts turns it into a JSON line.
// Changes go through the group commit and wake the scheduler; `bounce` makes DSNs through notices.ts,
// `delete` sends no notice. May touch: the store; read the CDB (headers for show), delete CDB files.

import type { Config } from "../../config/types.ts";
import { CdbContent } from "../mail/cdb.ts";
import { isQueueId } from "../mail/queue_id.ts";
import type { ComponentStatus } from "../protocol/frames.ts";
import type { ExplainStep, QmgrExplain, RouteResult } from "../protocol/messages.ts";
import { isIP } from "node:net";
import { log } from "../util/log.ts";
import type { ActiveQueue } from "./active_queue.ts";
import type { Command, ControlAnswer } from "./control_protocol.ts";
import type { DiskGuard } from "./disk_guard.ts";
import type { GroupCommit } from "./group_commit.ts";
import type { Notices } from "./notices.ts";
import type { Occ } from "./occ.ts";
import { LIST_STATES, type ListFilter, type ListState, QueueAdmin } from "./queue_admin.ts";
import { reasonReply, replyLine } from "../mail/result.ts";
import type { Destinations } from "./destinations.ts";
import { checkQueue } from "./queue_check.ts";
import { failureNotice, removeMessage, storedResult } from "./results.ts";
import type { Scheduler } from "./scheduler.ts";
import type { RouteCache } from "./route_cache.ts";
import type { ConnControl } from "./conn_control.ts";
import { destinationKey } from "../mail/result.ts";
import { domainOf } from "../mail/address.ts";
import type { Stats } from "./stats.ts";
import { ACTIVE, FAILED, HELD, type QueueStore, SENT, WAITING } from "./store.ts";

/** Longest header section `show` returns. */
export const MAX_SHOWN_HEADER = 64 * 1024;
/** Rows `list` returns at most, whatever the request asks. */
export const MAX_LIST = 10_000;

export interface ControlDeps {
  store: QueueStore;
  commit: GroupCommit;
  aq: ActiveQueue;
  scheduler: Scheduler;
  notices: Notices;
  occ: Occ;
  /** Transactions running per destination (status). */
  destinations?: Destinations;
  /** The route cache: requeue forgets the routes of the messages it requeues (absent: none kept). */
  routes?: RouteCache;
  stats: Stats;
  disk: DiskGuard;
  config: Config;
  now: () => number;
  /** Every worker's uptime and restarts, from the MCP (undefined: not known). */
  mcpStatus?: () => Promise<ComponentStatus[] | undefined>;
  /** Has the database rebuilt from the queue files (qmgr restarts); absent: not possible here. */
  rebuild?: (reason: string) => void;
  /** Incoming connection limits (explain shows the client's, read only). */
  conn?: Pick<ConnControl, "peek">;
  /** Asks smar to explain the policy decisions for an envelope (qmgrctl explain; absent: no smar). */
  explain?: (q: Omit<QmgrExplain, "type">) => Promise<ExplainStep[]>;
  /** Asks the MCP to reload the configuration (undefined: no MCP to ask, or no answer). */
  mcpReload?: () => Promise<{ ok: boolean; reason?: string } | undefined>;
}

const STATE_NAMES: Record<number, string> = {
  [WAITING]: "waiting",
  [ACTIVE]: "active",
  [SENT]: "sent",
  [FAILED]: "failed",
  [HELD]: "held",
};

/** A failed request: `error` says what was asked and why it cannot be done. */
class CommandError extends Error {}

function idArg(command: string, args: Record<string, unknown>): string {
  const id = args.id;
  if (typeof id !== "string" || id === "") throw new CommandError(`${command}: missing queue id`);
  if (!isQueueId(id.toUpperCase())) throw new CommandError(`${command} ${id}: not a queue id`);
  return id.toUpperCase();
}

function optString(args: Record<string, unknown>, key: string): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new CommandError(`list: ${key} must be a string`);
  return v;
}

/** The header section of a CDB file (up to the empty line), at most MAX_SHOWN_HEADER bytes. */
async function readHeader(path: string): Promise<string | undefined> {
  let file: CdbContent;
  try {
    file = await CdbContent.open(path);
  } catch {
    return undefined;
  }
  try {
    const buf = new Uint8Array(MAX_SHOWN_HEADER);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    const text = new TextDecoder().decode(buf.subarray(0, got));
    const end = text.search(/\r?\n\r?\n/);
    return end < 0 ? text : text.slice(0, end);
  } finally {
    file.close();
  }
}

/** Longest content `show --body` returns. */
export const MAX_SHOWN_CONTENT = 16 * 1024 * 1024;

/** The whole content of a CDB file (what postcat shows), at most MAX_SHOWN_CONTENT bytes, as latin1 text. */
async function readContent(
  path: string,
): Promise<{ text: string; size: number; truncated: boolean } | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch {
    return undefined;
  }
  const cut = bytes.subarray(0, MAX_SHOWN_CONTENT);
  let text = "";
  for (let i = 0; i < cut.length; i += 8192) text += String.fromCharCode(...cut.subarray(i, i + 8192));
  return { text, size: bytes.length, truncated: bytes.length > cut.length };
}

export class ControlCommands {
  readonly #d: ControlDeps;
  readonly #admin: QueueAdmin;

  constructor(deps: ControlDeps) {
    this.#d = deps;
    this.#admin = new QueueAdmin(deps.store.db);
  }

  /** Runs one command; every failure becomes an error answer. */
  async run(command: Command, args: Record<string, unknown>): Promise<ControlAnswer> {
    try {
      return { ok: true, result: await this.#run(command, args) };
    } catch (err) {
      if (err instanceof CommandError) return { ok: false, error: err.message };
      log.error("qmgr", `control command ${command} failed: ${(err as Error).stack ?? err}`);
      return { ok: false, error: `${command}: ${(err as Error).message}` };
    }
  }

  #run(command: Command, args: Record<string, unknown>): Promise<unknown> | unknown {
    switch (command) {
      case "status":
        return this.status();
      case "list":
        return this.list(args);
      case "show":
        return this.show(idArg("show", args), args);
      case "flush":
        return this.flush(args);
      case "hold":
      case "release":
      case "delete":
      case "bounce":
      case "requeue":
        return this.#bulk(command, args);
      case "stats":
        return { since: this.#d.stats.started, counters: this.#d.stats.view() };
      case "reload":
        return this.reload();
      case "check":
        return this.check(args.repair === true);
      case "explain":
        return this.explain(args);
      default: {
        const never: never = command;
        throw new CommandError(`unknown command ${never}`);
      }
    }
  }

  /**
   * hold, release, delete, bounce, requeue: of one message (`id`: an unknown one is an error), of a list
   * (`ids`: unknown ones are reported, not an error), of those a filter selects (`filter`: sender,
   * recipient, domain, state, age, as list takes them) or of all (`all: true`).
   */
  async #bulk(command: "hold" | "release" | "delete" | "bounce" | "requeue", args: Record<string, unknown>) {
    const one = {
      hold: (id: string) => this.hold(id),
      release: (id: string) => this.release(id),
      delete: (id: string) => this.delete(id),
      bounce: (id: string) => this.bounce(id),
      requeue: (id: string) => this.requeue(id),
    }[command];
    if (args.id !== undefined) return await one(idArg(command, args));
    let ids: string[];
    const unknown: string[] = [];
    if (Array.isArray(args.ids)) {
      if (args.ids.length > MAX_LIST) throw new CommandError(`${command}: more than ${MAX_LIST} ids at once`);
      ids = [];
      for (const raw of args.ids) {
        const id = idArg(command, { id: raw });
        if (this.#d.store.getMessage(id)) ids.push(id);
        else unknown.push(id);
      }
    } else if (args.all === true || (args.filter !== null && typeof args.filter === "object")) {
      const filter = args.all === true ? {} : args.filter as Record<string, unknown>;
      ids = this.list({ ...filter, limit: Number.MAX_SAFE_INTEGER }, Number.MAX_SAFE_INTEGER).rows
        .map((r) => r.id);
    } else {
      throw new CommandError(`${command}: name a queue id, ids, a filter or all`);
    }
    let messages = 0;
    let recipients = 0;
    for (const id of [...new Set(ids)]) {
      if (!this.#d.store.getMessage(id)) continue; // gone meanwhile (delivered)
      const n = (await one(id)).recipients;
      recipients += n;
      if (n > 0) messages++; // release ALL counts the messages it released, not every one it looked at
    }
    return { messages, recipients, unknown };
  }

  /**
   * Lifts a hold and makes every open recipient due now, routed afresh (postsuper -r): the cached routes
   * of its recipients' domains are forgotten and asked of smar again, and the down marks of the hosts
   * those routes (old and new) name are cleared, so the next attempt goes out at once.
   */
  async requeue(id: string) {
    this.#message("requeue", id);
    const now = this.#d.now();
    const n = await this.#d.commit.runNow(() =>
      this.#admin.release(id, now) + this.#admin.flush({ id }, now)
    );
    await this.#reroute(id);
    this.#d.scheduler.refill();
    log.info("qmgr", `${id}: requeued by the administrator (${n} recipients due now)`);
    return { recipients: n };
  }

  /**
   * Every policy decision for an envelope (client, HELO, sender, recipients) as the smtps section `server`
   * (default: the first) would have smar make them, step by step; smar sends and writes nothing.
   */
  async explain(args: Record<string, unknown>) {
    const str = (key: string) => {
      const v = args[key];
      if (v !== undefined && typeof v !== "string") {
        throw new CommandError(`explain: ${key} must be a string`);
      }
      return v as string | undefined;
    };
    const client = str("client");
    if (!client || isIP(client) === 0) throw new CommandError("explain: --client must be an IP address");
    const sender = str("from");
    if (sender === undefined) throw new CommandError("explain: --from is required (<> for the null sender)");
    const to = args.to;
    if (!Array.isArray(to) || to.length === 0 || !to.every((t) => typeof t === "string" && t !== "")) {
      throw new CommandError("explain: name at least one --to address");
    }
    if (to.length > 1000) throw new CommandError("explain: more than 1000 recipients");
    const name = str("server");
    const servers = this.#d.config.smtps;
    const server = name === undefined
      ? servers[0]
      : servers.find((s) => s.name.toLowerCase() === name.toLowerCase());
    if (!server) {
      throw new CommandError(
        `explain: no smtps section ${name} (there are: ${servers.map((s) => s.name).join(", ")})`,
      );
    }
    if (!this.#d.explain) throw new CommandError("explain: smar cannot be asked from here");
    const helo = str("helo");
    const user = str("auth");
    const bare = (a: string) => a.trim().replace(/^<(.*)>$/, "$1");
    const question = {
      client,
      sender: bare(sender),
      recipients: (to as string[]).map(bare),
      context: {
        flags: server.flags,
        ...(helo ? { helo } : {}),
        ...(user ? { authUser: user } : {}),
        ...(server.tls ? { tlsFlags: server.tls.flags } : {}),
      },
      tlsLevel: this.#d.config.smtpc.tls.security_level,
      ...(user ? { authorized: true } : {}),
    };
    // First what smtps asks qmgr when the client connects: its connection limits (read only).
    const steps: ExplainStep[] = [];
    const answer = () => ({
      client,
      helo: helo ?? null,
      sender: question.sender,
      recipients: question.recipients,
      server: server.name,
      steps,
    });
    const limits = this.#d.conn?.peek(client);
    if (limits) {
      const n = (v: number) => v > 0 ? String(v) : "no limit";
      steps.push({
        stage: "connect",
        kind: "note",
        text: `qmgr connection limits for [${client}]: sessions ${limits.sessions} of ${
          n(limits.maxSessions)
        } (icm:), connections in the last minute ${limits.recent} of ${n(limits.maxRate)} (icr:)`,
      });
      if (limits.refuse) {
        steps.push({
          stage: "connect",
          kind: "verdict",
          action: "tempfail",
          text: "tempfail 421 4.7.0 Too many connections from your host (qmgr: smar is not asked)",
        });
        return answer();
      }
    }
    try {
      steps.push(...await this.#d.explain(question));
    } catch (err) {
      throw new CommandError(`explain: smar did not answer: ${(err as Error).message}`);
    }
    return answer();
  }

  /** Forgets the routes of message `id`'s open recipients and the down marks of their hosts. */
  async #reroute(id: string): Promise<void> {
    const routes = this.#d.routes;
    const domains = new Set<string>();
    for (const r of this.#d.store.recipientsOf(id)) {
      if (r.state === SENT || r.state === FAILED) continue;
      domains.add((domainOf(r.address) || this.#d.config.hostname).toLowerCase());
    }
    const dests = new Set<string>();
    const note = (route: RouteResult | undefined) => {
      if (route?.status !== "ok") return;
      for (const h of route.hosts) dests.add(destinationKey(h.address, route.port));
    };
    for (const domain of domains) {
      if (!routes) continue;
      note(routes.forget(domain));
      note(await routes.get(domain));
    }
    this.#d.occ.clearDown(dests);
  }

  #message(command: string, id: string) {
    const m = this.#d.store.getMessage(id);
    if (!m) throw new CommandError(`${command} ${id}: no such message in the queue`);
    return m;
  }

  async status() {
    const { aq, occ, disk, stats, notices, config, now } = this.#d;
    const components = await this.#d.mcpStatus?.();
    const rates = stats.view();
    return {
      qmgr: { started: stats.started, uptime: now() - stats.started },
      components: components ?? "unknown",
      queue: this.#admin.counts(),
      activeQueue: { entries: aq.size, max: aq.max },
      noticesWaiting: notices.waiting,
      occ: {
        entries: occ.size,
        max: config.qmgr.OCC_max_entries,
        down: occ.view().filter((e) => e.downUntil),
        destinations: occ.view().map((e) => ({
          ...e,
          active: this.#d.destinations?.activeFor(e.address) ?? 0,
        })),
      },
      disk: {
        guard: disk.enabled,
        low: disk.low,
        free: Number.isNaN(disk.free) ? undefined : disk.free,
        min: config.qmgr.min_disk_space,
        ok: config.qmgr.ok_disk_space,
      },
      perMinute: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, v.perMinute.last1])),
    };
  }

  list(args: Record<string, unknown>, max = MAX_LIST) {
    const state = optString(args, "state");
    if (state !== undefined && !LIST_STATES.includes(state as ListState)) {
      throw new CommandError(`list: unknown state ${state}, expected one of ${LIST_STATES.join(", ")}`);
    }
    const num = (key: string, dflt?: number) => {
      const v = args[key];
      if (v === undefined || v === null) return dflt;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        throw new CommandError(`list: ${key} must be a number of 0 or more`);
      }
      return v;
    };
    const filter: ListFilter = {
      sender: optString(args, "sender"),
      recipient: optString(args, "recipient"),
      domain: optString(args, "domain")?.replace(/^@/, ""),
      state: state as ListState | undefined,
      minAge: num("age"),
      limit: Math.min(max, Math.floor(num("limit", 1000)!)),
    };
    return this.#admin.list(filter, this.#d.now());
  }

  async show(id: string, args: Record<string, unknown> = {}) {
    const m = this.#message("show", id);
    const history = this.#admin.history(id);
    const recipients = this.#d.store.recipientsOf(id).map((r) => ({
      index: r.index,
      address: r.address,
      notify: r.notify,
      orcpt: r.orcpt,
      errorsTo: r.errorsTo,
      state: STATE_NAMES[r.state] ?? String(r.state),
      tries: r.tries,
      nextTry: r.state === WAITING ? r.nextTry : undefined,
      lastReply: r.lastReply,
      lastRelay: r.lastRelay,
      noticePending: (r.notice & 7) !== 0,
      history: history.filter((h) => h.index === r.index).map(({ index: _, ...h }) => h),
    }));
    const body = args.body === true ? await readContent(m.cdbPath) : undefined;
    const holdReason = this.#admin.holdReason(id);
    return {
      ...m,
      held: this.#admin.isHeld(id),
      ...(holdReason !== undefined ? { holdReason } : {}),
      recipients,
      header: await readHeader(m.cdbPath),
      ...(body !== undefined ? { content: body } : {}),
    };
  }

  async flush(args: Record<string, unknown>) {
    const { commit, occ, scheduler, now } = this.#d;
    const target: { id?: string; domain?: string } = {};
    if (args.id !== undefined) {
      target.id = idArg("flush", args);
      this.#message("flush", target.id);
    } else if (args.domain !== undefined) {
      const domain = optString(args, "domain")!.replace(/^@/, "");
      if (domain === "") throw new CommandError("flush: empty domain");
      target.domain = domain;
    }
    const n = await commit.runNow(() => this.#admin.flush(target, now()));
    occ.clearDown();
    scheduler.refill();
    log.info(
      "qmgr",
      `flush ${target.id ?? (target.domain ? `@${target.domain}` : "all")}: ${n} recipients due now`,
    );
    return { recipients: n };
  }

  async hold(id: string) {
    this.#message("hold", id);
    const n = await this.#d.commit.runNow(() => this.#admin.hold(id));
    log.info("qmgr", `${id}: put on hold by the administrator (${n} recipients)`);
    return { recipients: n };
  }

  async release(id: string) {
    this.#message("release", id);
    const n = await this.#d.commit.runNow(() => this.#admin.release(id, this.#d.now()));
    log.info("qmgr", `${id}: released by the administrator (${n} recipients)`);
    this.#d.scheduler.refill();
    return { recipients: n };
  }

  /** Has the MCP read the configuration again (what SIGHUP does); a refusal is an error with its reason. */
  async reload() {
    const answer = await this.#d.mcpReload?.();
    if (answer === undefined) {
      throw new CommandError("reload: the MCP did not answer (is qmgr run by the MTA?)");
    }
    if (!answer.ok) throw new CommandError(`reload refused: ${answer.reason ?? "no reason given"}`);
    log.info("qmgr", "configuration reloaded at the request of qmgrctl");
    return { reloaded: true };
  }

  /** Removes a message and its content; no notice to anyone. */
  async delete(id: string) {
    const m = this.#message("delete", id);
    const n = this.#d.store.recipientsOf(id).length;
    await removeMessage({ ...this.#d, hostname: this.#d.config.hostname, config: this.#d.config.qmgr }, m);
    log.info("qmgr", `${id}: deleted by the administrator (${n} recipients, no notice)`);
    return { recipients: n };
  }

  /** Compares the database with the queue files; with `repair`, mends what it can (queue_check.ts). */
  check(repair: boolean) {
    const { store, commit, scheduler, config, now } = this.#d;
    return checkQueue({
      store,
      commit,
      cdbBase: config.CDB_base_directory,
      now,
      failLost: (m) => scheduler.checkContent(m),
      rebuild: (reason) => {
        if (!this.#d.rebuild) throw new CommandError("check --repair: cannot rebuild the database here");
        this.#d.rebuild(reason);
      },
      wake: () => scheduler.refill(),
    }, repair);
  }

  /** Fails every recipient still open, with DSNs as NOTIFY asks. */
  async bounce(id: string) {
    const { store, commit, notices, scheduler, stats, config } = this.#d;
    const m = this.#message("bounce", id);
    const reply = reasonReply("message returned by the administrator", undefined, "5.0.0");
    const reason = replyLine(reply);
    const result = storedResult({ origin: "agent", reply });
    const open = store.recipientsOf(id).filter((r) =>
      r.state === WAITING || r.state === ACTIVE || r.state === HELD
    );
    await commit.runNow(() => {
      for (const r of open) {
        const notice = failureNotice(config.hostname, m, r);
        store.addHistory(id, r.index, this.#d.now(), "bounced", "none", reason);
        store.failOpen(id, r.index, reason, notice, result);
      }
    });
    stats.add("bounced", open.length);
    log.info("qmgr", `${id}: returned by the administrator (${open.length} recipients)`);
    notices.owe(id, true);
    scheduler.settle(id);
    return { recipients: open.length };
  }
}
