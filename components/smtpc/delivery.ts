// One delivery transaction from qmgr, start to end: open the CDB file, take an idle link to one of the
// route's hosts from the cache or connect to the first willing host (connect.ts), run mail transactions
// on it (session.ts) — all its recipients in one, a next one only for those the server refused with 452
// (qmgr alone decides which recipients travel together) — then answer with one result per recipient and
// the hosts that failed on the way (for qmgr's down marks), and only then put the link back into the cache
// (RSET first when needed) or say QUIT. A cached link found dead before its first reply is replaced by
// a fresh connection once. `result` resolves as soon as every recipient is decided; `done` when the link
// is back in the cache or closed. abort() (graceful stop) ends it early: undecided recipients become temp.
// Reads the CDB file of its transaction.

import type {
  DeliveryTransaction,
  FailedHost,
  SmtpcResult,
  TlsFailure,
  TlsPolicyReport,
} from "../protocol/messages.ts";
import { CdbContent, contentOf } from "../mail/cdb.ts";
import { log } from "../util/log.ts";
import { type ConnectionCache, destinationOf } from "./conn_cache.ts";
import type { Authinfo } from "./authinfo.ts";
import { authIdentity, connectFirst, requirementFor } from "./connect.ts";
import type { Link } from "./link.ts";
import { byAgent, Outcome } from "./outcome.ts";
import { Transaction } from "./session.ts";
import type { Deadlines } from "./timeouts.ts";
import { describeTls, type TlsSettings } from "./tls.ts";
import { ioMessage } from "./wire.ts";

export interface DeliveryConfig {
  hostname: string;
  ioTimeout: number;
  deadlines: Deadlines;
  tls: TlsSettings;
  lmtpSocket?: string;
  authinfo?: Authinfo;
  now: () => number;
}

/**
 * The host of `ta`'s route a cached link (keyed by address and port) would serve: its name, not the
 * link's, decides the authinfo entry (two names of one address may have different credentials).
 */
function routeHostOf(ta: DeliveryTransaction, link: Link): { name: string; address: string } {
  return ta.route.hosts.find((h) => h.address === link.target.host.address) ?? link.target.host;
}

/** Content up to this size is read in one operation and sent from memory; larger content is streamed. */
export const IN_MEMORY_CONTENT = 1024 * 1024;

/** The content of a transaction, read again from the start for each mail transaction. */
interface Content {
  read(p: Uint8Array): Promise<number | null>;
  rewind(): Promise<void>;
  close(): void;
}

/**
 * Opens the content of the CDB file (its frame and envelope left out, mail/cdb.ts): a small one is read whole (one file operation instead of an open, a seek and a
 * read per mail transaction; the profile showed those ops as half of smtpc's time), a large one streamed.
 */
async function openContent(path: string, size: number): Promise<Content> {
  if (size <= IN_MEMORY_CONTENT) {
    const bytes = await contentOf(await Deno.readFile(path), path);
    let pos = 0;
    return {
      read(p: Uint8Array): Promise<number | null> {
        if (pos >= bytes.length) return Promise.resolve(null);
        const n = Math.min(p.length, bytes.length - pos);
        p.set(bytes.subarray(pos, pos + n));
        pos += n;
        return Promise.resolve(n);
      },
      rewind: () => Promise.resolve(void (pos = 0)),
      close: () => {},
    };
  }
  return await CdbContent.open(path);
}

/** Fresh connections one delivery may open: the first, and one after a cached link turned out dead. */
const MAX_CONNECTS = 2;

export class Delivery {
  readonly result: Promise<SmtpcResult>;
  readonly done: Promise<void>;
  readonly #stop = new AbortController();
  #resolve!: (r: SmtpcResult) => void;
  #link: Link | undefined;
  /** Hosts that did not get through the opening of a session, for qmgr's down marks. */
  readonly #failed: FailedHost[] = [];
  /** The TLS requirement of the last host tried, when no link was had. */
  #report: TlsPolicyReport | undefined;
  /** Hosts a TLS policy refused after connecting, for TLS-RPT. */
  readonly #tlsFailures: TlsFailure[] = [];

  constructor(
    readonly ta: DeliveryTransaction,
    readonly cfg: DeliveryConfig,
    readonly cache: ConnectionCache,
  ) {
    this.result = new Promise((resolve) => this.#resolve = resolve);
    this.done = this.#run().catch((err) => {
      // A bug, not an I/O failure: still answer so qmgr keeps the recipients.
      log.error("smtpc", `${ta.messageId}: delivery failed: ${(err as Error).stack ?? err}`);
      this.#link?.close();
      this.#answer(new Outcome(ta.recipients.map((r) => r.index)), "internal error in smtpc");
    });
  }

  /** Ends the transaction early; undecided recipients get a temporary failure. */
  abort(reason: string): void {
    this.#stop.abort(reason);
    this.#link?.wire.abort(reason);
  }

  async #run(): Promise<void> {
    const { ta, cfg, cache } = this;
    const outcome = new Outcome(ta.recipients.map((r) => r.index));
    let file: Content;
    try {
      file = await openContent(ta.cdbPath, ta.size);
    } catch (err) {
      this.#answer(outcome, `read message content ${ta.cdbPath}: ${ioMessage(err)}`);
      return;
    }
    const dest = destinationOf(ta);
    try {
      // A cached link serves only a transaction with the same TLS requirement for its host, and the
      // same AUTH identity (none, or the same authinfo entry).
      let link: Link | undefined = this.#use(
        cache.take(
          ta,
          (l) =>
            l.meets(requirementFor(ta, l.target.host, cfg.tls.level)) &&
            l.auth === authIdentity(cfg.authinfo, ta, routeHostOf(ta, l)),
        ),
      );
      let reused = link !== undefined;
      let connects = 0;
      // qmgr decides which recipients travel together (its *_max_rcpts_per_transaction): all of them
      // go in one mail transaction, unless the server refuses some with 452 (then in a next one).
      let pending = ta.recipients.map((_, pos) => pos);
      while (pending.length > 0 && !this.#stop.signal.aborted) {
        if (link?.needsRset && !(await link.rset())) link = undefined;
        if (!link) {
          if (connects++ >= MAX_CONNECTS) break;
          cache.dropDestination(dest);
          const conn = await connectFirst(ta, { ...cfg, signal: this.#stop.signal });
          this.#failed.push(...conn.failed);
          this.#tlsFailures.push(...conn.tlsFailures);
          if (!conn.ok) {
            this.#report = conn.report;
            const p = conn.policy;
            const d = p
              ? byAgent(conn.reason, undefined, p.permanent ? 550 : 451, p.status)
              : byAgent(conn.reason, undefined, undefined, conn.enhanced);
            for (const pos of pending) outcome.decide(pos, p?.permanent ? "perm" : "temp", d);
            break;
          }
          link = this.#use(conn.link);
          reused = false;
        }
        await file.rewind();
        const r = await new Transaction({ link, ta, positions: pending, content: file, outcome, reused })
          .run();
        if (r.stale) {
          log.info(
            "smtpc",
            `${ta.messageId}: cached connection to ${link.relay} was closed; connecting again`,
          );
          link = this.#use(undefined);
          continue;
        }
        reused = false;
        pending = r.retry;
        if (!r.fit) {
          for (const pos of pending) {
            outcome.decide(pos, "temp", byAgent(`the session with ${link.relay} ended early`, link.server));
          }
          pending = [];
          link = undefined;
        }
      }
      this.#answer(
        outcome,
        this.#stop.signal.aborted ? "delivery agent is stopping" : "delivery ended without a result",
      );
      if (link?.usable && !this.#stop.signal.aborted && (!link.needsRset || await link.rset())) {
        cache.put(link, dest);
      } else {
        await link?.quit();
      }
    } finally {
      file.close();
    }
  }

  /** Makes `link` the one abort() interrupts. */
  #use<T extends Link | undefined>(link: T): T {
    this.#link = link;
    if (link && this.#stop.signal.aborted) link.wire.abort(String(this.#stop.signal.reason));
    return link;
  }

  #answer(outcome: Outcome, rest: string): void {
    const link = this.#link;
    outcome.decideRest("temp", byAgent(rest, link?.server));
    const relay = link?.relay;
    const tls = link?.tls ? `, tls=${describeTls(link.tls)}` : "";
    log.info(
      "smtpc",
      `${this.ta.messageId}: ta=${this.ta.taId}, relay=${relay ?? "none"}${tls}, ${outcome.summary()}`,
    );
    const result: SmtpcResult = { type: "smtpc.result", taId: this.ta.taId, results: outcome.results() };
    if (this.#failed.length > 0) result.failedHosts = this.#failed;
    if (link) {
      result.relay = link.server;
      result.dsn = link.exts.has("DSN");
      if (link.tls) result.tls = { ...link.tls };
    }
    const report = link?.report ?? this.#report;
    if (report) result.tlsPolicy = report;
    if (this.#tlsFailures.length > 0) result.tlsFailures = this.#tlsFailures;
    this.#resolve(result);
  }
}
