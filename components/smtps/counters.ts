// What smtps counts for the metrics worker: connections accepted, sessions open, messages received (by
// AUTH mechanism), policy refusals (by stage, reply code and enhanced status), failed AUTH attempts, TLS
// sessions and mail authentication results. Each event is one map update in the session's own code;
// the metrics worker asks for a copy (smtps.snapshot) when it is scraped, so nothing is sent per event.
// Pure memory.

import type { SmtpsSnapshotMessage } from "../protocol/messages.ts";

export class SmtpsCounters {
  readonly started = Date.now();
  connects = 0;
  sessions = 0;
  readonly #messages = new Map<string, number>();
  readonly #rejected = new Map<string, number>();
  readonly #saslFailures = new Map<string, number>();
  readonly #tls = new Map<string, number>();
  readonly #mailauth = new Map<string, number>();

  /** A message answered 250; `mechanism` is the session's AUTH mechanism ("" without AUTH). */
  message(mechanism = ""): void {
    bump(this.#messages, mechanism);
  }

  /** A policy refusal at `stage` (CONNECT, MAIL, RCPT, DATA, BDAT). */
  rejected(stage: string, code: number, status: string): void {
    bump(this.#rejected, `${stage}|${code}|${status}`);
  }

  saslFailure(mechanism: string): void {
    bump(this.#saslFailures, mechanism);
  }

  /** A TLS handshake done; trust as Postfix logs it: Trusted, Untrusted or Anonymous. */
  tls(trust: string, version: string, cipher: string): void {
    bump(this.#tls, `${trust}|${version}|${cipher}`);
  }

  /** One mail authentication result, e.g. ("dkim", "pass"). */
  mailauth(method: string, result: string): void {
    bump(this.#mailauth, `${method}|${result}`);
  }

  /** The results in a log summary such as `spf=pass dkim=fail (...) dmarc=pass`, except `skip`'s. */
  mailauthSummary(summary: string, skip?: string): void {
    for (const m of summary.matchAll(/\b(spf|dkim|dmarc|arc)=([a-z]+)/g)) {
      if (m[1] !== skip) this.mailauth(m[1], m[2]);
    }
  }

  snapshot(): SmtpsSnapshotMessage {
    return {
      type: "smtps.snapshot",
      started: this.started,
      connects: this.connects,
      sessions: this.sessions,
      messages: Object.fromEntries(this.#messages),
      rejected: Object.fromEntries(this.#rejected),
      saslFailures: Object.fromEntries(this.#saslFailures),
      tls: Object.fromEntries(this.#tls),
      mailauth: Object.fromEntries(this.#mailauth),
    };
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
