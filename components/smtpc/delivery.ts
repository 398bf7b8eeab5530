// One delivery transaction from start to end: open the CDB file, connect to the first willing host, run
// the session, answer with one result per recipient, then say QUIT (after answering, so qmgr is not kept
// waiting for the 221) and close. `result` resolves as soon as every recipient is decided; `done` when
// the connection is closed. abort() (graceful stop) ends it early: undecided recipients become temp.

import type { DeliveryTransaction, SmtpcResult } from "../protocol/messages.ts";
import { log } from "../util/log.ts";
import { connectFirst } from "./connect.ts";
import { Outcome } from "./outcome.ts";
import { Session } from "./session.ts";
import { ioMessage, type Wire } from "./wire.ts";

/** How long a QUIT waits for its 221 at most. */
const QUIT_WAIT = 2_000;

export interface DeliveryConfig {
  hostname: string;
  ioTimeout: number;
}

export class Delivery {
  readonly result: Promise<SmtpcResult>;
  readonly done: Promise<void>;
  readonly #stop = new AbortController();
  #resolve!: (r: SmtpcResult) => void;

  constructor(readonly ta: DeliveryTransaction, readonly cfg: DeliveryConfig) {
    this.result = new Promise((resolve) => this.#resolve = resolve);
    this.done = this.#run().catch((err) => {
      // A bug, not an I/O failure: still answer so qmgr keeps the recipients.
      log.error("smtpc", `${ta.messageId}: delivery failed: ${(err as Error).stack ?? err}`);
      this.#answer(new Outcome(ta.recipients.map((r) => r.index)), undefined, "internal error in smtpc");
    });
  }

  /** Ends the transaction early; undecided recipients get a temporary failure. */
  abort(reason: string): void {
    this.#stop.abort(reason);
  }

  async #run(): Promise<void> {
    const { ta, cfg } = this;
    const outcome = new Outcome(ta.recipients.map((r) => r.index));
    let file: Deno.FsFile;
    try {
      file = await Deno.open(ta.cdbPath, { read: true });
    } catch (err) {
      this.#answer(outcome, undefined, `read message content ${ta.cdbPath}: ${ioMessage(err)}`);
      return;
    }
    let wire: Wire | undefined;
    try {
      const conn = await connectFirst(ta, { ioTimeout: cfg.ioTimeout, signal: this.#stop.signal });
      if (!conn.ok) {
        this.#answer(outcome, undefined, conn.reason);
        return;
      }
      wire = conn.wire;
      const w = wire;
      const onStop = () => w.abort("delivery agent is stopping");
      if (this.#stop.signal.aborted) onStop();
      this.#stop.signal.addEventListener("abort", onStop, { once: true });
      const session = new Session({
        wire,
        ta,
        content: file,
        relay: conn.relay,
        hostname: cfg.hostname,
        outcome,
      });
      const polite = await session.run();
      this.#stop.signal.removeEventListener("abort", onStop);
      this.#answer(outcome, conn.relay, "delivery ended without a result");
      if (polite) await quit(wire);
    } finally {
      file.close();
      wire?.close();
    }
  }

  #answer(outcome: Outcome, relay: string | undefined, rest: string): void {
    outcome.decideRest("temp", rest);
    log.info(
      "smtpc",
      `${this.ta.messageId}: ta=${this.ta.taId}, relay=${relay ?? "none"}, ${outcome.summary()}`,
    );
    const result: SmtpcResult = { type: "smtpc.result", taId: this.ta.taId, results: outcome.results() };
    if (relay !== undefined) result.relay = relay;
    this.#resolve(result);
  }
}

/** Says QUIT and waits briefly for the 221; any failure only means the connection is gone already. */
async function quit(wire: Wire): Promise<void> {
  try {
    await wire.write("QUIT\r\n");
    await wire.readReply(Math.min(QUIT_WAIT, wire.ioTimeout));
  } catch {
    // nothing left to decide
  }
}
