// What the metrics worker knows, and how it asks for it: qmgr's and smtps's snapshots over the peer
// ports, every worker's readiness, generation and restarts from the MCP. A scrape never waits on a busy
// component for long (each question has a short deadline, and a missing answer is shown as such), and
// however many scrapers ask, the components are asked at most once per MIN_INTERVAL: concurrent scrapes
// share one round of questions, and one within MIN_INTERVAL of the last gets its answers again. So a
// slow or eager scraper costs qmgr at most one snapshot a second, and never holds anything of its own.
// Receives: the answers. Sends: metrics.snapshot to qmgr and smtps, status requests to the MCP.

import type { ComponentStatus } from "../protocol/frames.ts";
import type { QmgrSnapshotMessage, SmtpsSnapshotMessage } from "../protocol/messages.ts";
import type { WorkerContext } from "../protocol/worker_runtime.ts";
import { qmgrSnapshot } from "../qmgr/client.ts";
import { smtpsSnapshot } from "../smtps/client.ts";

/** Answers younger than this are served again instead of asking the components (ms). */
export const MIN_INTERVAL = 1_000;
/** How long one question may take before the scrape goes on without its answer (ms). */
export const ANSWER_TIMEOUT = 2_000;

/** An answer, or why there is none. */
export type Answer<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface View {
  /** When the questions were asked (ms since the epoch). */
  at: number;
  qmgr: Answer<QmgrSnapshotMessage>;
  /** Each smtps worker's answer, by its peer id (`smtps`, or `smtps@1`, `smtps@2` ... of several). */
  smtps: Answer<{ peer: string; snapshot: SmtpsSnapshotMessage }[]>;
  /** Whether every smtps worker answered (false: some of them are missing from `smtps`). */
  smtpsComplete: boolean;
  components: Answer<ComponentStatus[]>;
}

export class Collector {
  readonly #ctx: WorkerContext;
  readonly #now: () => number;
  #last?: View;
  #pending?: Promise<View>;
  #statusPending?: Promise<Answer<ComponentStatus[]>>;

  constructor(ctx: WorkerContext, now: () => number = Date.now) {
    this.#ctx = ctx;
    this.#now = now;
  }

  /** The components' snapshots, at most MIN_INTERVAL old. */
  view(): Promise<View> {
    if (this.#last && this.#now() - this.#last.at < MIN_INTERVAL) return Promise.resolve(this.#last);
    this.#pending ??= this.#ask().then((v) => {
      this.#last = v;
      return v;
    }).finally(() => this.#pending = undefined);
    return this.#pending;
  }

  /** Every worker's status from the MCP, asked now (the health check wants it fresh; it costs qmgr nothing). */
  status(): Promise<Answer<ComponentStatus[]>> {
    this.#statusPending ??= this.#askStatus().finally(() => this.#statusPending = undefined);
    return this.#statusPending;
  }

  async #ask(): Promise<View> {
    const at = this.#now();
    const ep = this.#ctx.endpoint;
    const peers = ep.peersOf("smtps");
    const [q, s, components] = await Promise.all([
      qmgrSnapshot(ep, ANSWER_TIMEOUT),
      Promise.all(
        peers.map(async (peer) => ({ peer, answer: await smtpsSnapshot(ep, ANSWER_TIMEOUT, peer) })),
      ),
      this.status(),
    ]);
    const answered = s.flatMap(({ peer, answer }) =>
      answer.type === "smtps.snapshot" ? [{ peer, snapshot: answer }] : []
    );
    const failed = s.flatMap(({ peer, answer }) =>
      answer.type === "rpc.failure" ? [`${peer}: ${answer.reason}`] : []
    );
    return {
      at,
      qmgr: q.type === "qmgr.snapshot" ? { ok: true, value: q } : { ok: false, reason: q.reason },
      smtps: answered.length > 0
        ? { ok: true, value: answered }
        : { ok: false, reason: failed[0] ?? "smtps is not available" },
      smtpsComplete: peers.length > 0 && failed.length === 0,
      components,
    };
  }

  async #askStatus(): Promise<Answer<ComponentStatus[]>> {
    const c = await this.#ctx.mcpStatus?.(ANSWER_TIMEOUT);
    return c ? { ok: true, value: c } : { ok: false, reason: "the MCP did not answer" };
  }
}
