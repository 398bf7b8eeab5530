// Client AUTH (RFC 4954) to a server the authinfo map (authinfo.ts) names: picks the strongest mechanism
// both sides have (SCRAM-SHA-256, RFC 7677; then PLAIN, RFC 4616; then LOGIN), runs the exchange over
// the Wire and says whether the server took the credentials. Only ever called inside TLS (hello.ts makes
// sure): PLAIN and LOGIN send the password. With SCRAM the server must prove that it knows the password
// too (its signature in the server-final message); a server that cannot is treated as a failure, never
// as a success. No credential, response or challenge is logged or put in a reason: what the server said
// is, as Postfix does (`SASL authentication failed; server X said: 535 ...`). Talks only over the
// connection it is given.

import { fromBase64, toBase64 } from "../sasl/scram.ts";
import { ScramClient, ScramClientError } from "../sasl/scram_client.ts";
import type { Extensions } from "./commands.ts";
import { type Reply, replyText } from "./reply_reader.ts";
import type { Wire } from "./wire.ts";

/** The mechanisms smtpc speaks, in the order it prefers them. */
export const CLIENT_MECHANISMS = ["SCRAM-SHA-256", "PLAIN", "LOGIN"] as const;
export type ClientMechanism = typeof CLIENT_MECHANISMS[number];

/** A user and secret from the authinfo map, and the key that matched (for logs). */
export interface Credentials {
  user: string;
  secret: string;
  key: string;
}

export type AuthOutcome =
  | { ok: true; mechanism: ClientMechanism }
  | { ok: false; reason: string; enhanced: string };

/** RFC 4954 4: an AUTH command with its initial response must fit in a 512-octet command line. */
const MAX_LINE = 510;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The mechanisms a server's EHLO offers (`AUTH` or the old `AUTH=` form), upper case. */
export function offeredMechanisms(exts: Extensions): string[] {
  const param = exts.get("AUTH");
  return param === undefined ? [] : param.toUpperCase().split(/\s+/).filter((m) => m !== "");
}

/** The mechanism smtpc uses with a server offering `offered`, or undefined when none fits. */
export function chooseMechanism(offered: string[]): ClientMechanism | undefined {
  return CLIENT_MECHANISMS.find((m) => offered.includes(m));
}

const b64 = (text: string) => toBase64(encoder.encode(text));

/** One mechanism's side of the exchange: the initial response, then an answer to each challenge. */
interface Exchange {
  initial(): Promise<string | undefined>;
  /** The answer to a 334 challenge (decoded), or undefined when no further challenge is expected. */
  answer(challenge: string): Promise<string | undefined>;
  /** Whether a 235 now means success (SCRAM: only once the server proved itself). */
  finished(): boolean;
}

function exchangeFor(mechanism: ClientMechanism, c: Credentials): Exchange {
  switch (mechanism) {
    case "PLAIN": {
      let sent = false;
      const response = () => {
        sent = true;
        return Promise.resolve(`\0${c.user}\0${c.secret}`);
      };
      return {
        initial: response,
        answer: () => sent ? Promise.resolve(undefined) : response(),
        finished: () => sent,
      };
    }
    case "LOGIN": {
      let step = 0;
      return {
        initial: () => Promise.resolve(undefined),
        // The prompts ("Username:", "Password:") differ between servers: the order is what counts.
        answer: () => Promise.resolve([c.user, c.secret][step++]),
        finished: () => step === 2,
      };
    }
    case "SCRAM-SHA-256": {
      const scram = new ScramClient("SHA-256", c.user, c.secret);
      let step = 0;
      let proven = false;
      return {
        initial: () => {
          step = 1;
          return Promise.resolve(scram.first());
        },
        async answer(challenge) {
          if (step === 1) {
            step = 2;
            return await scram.final(challenge);
          }
          if (step === 2) {
            step = 3;
            if (!scram.verify(challenge)) {
              throw new ScramClientError("the server's signature is wrong: it does not know the password");
            }
            proven = true;
            return "";
          }
          return undefined;
        },
        finished: () => proven,
      };
    }
    default: {
      const never: never = mechanism;
      throw new TypeError(`Authenticate: unknown mechanism ${never}`);
    }
  }
}

/**
 * Authenticates on `wire` (past EHLO inside TLS) with `creds`; `relay` names the server in reasons.
 * Resolves with the outcome; I/O failures reject with the Wire's error (the caller describes them).
 */
export async function saslAuthenticate(
  wire: Wire,
  exts: Extensions,
  creds: Credentials,
  relay: string,
  timeoutMs: number,
): Promise<AuthOutcome> {
  const offered = offeredMechanisms(exts);
  if (offered.length === 0) {
    return {
      ok: false,
      reason: `host ${relay} does not offer AUTH, but the authinfo map has credentials for it (${creds.key})`,
      enhanced: "4.7.0",
    };
  }
  const mechanism = chooseMechanism(offered);
  if (!mechanism) {
    return {
      ok: false,
      reason: `host ${relay} offers none of the SASL mechanisms ${CLIENT_MECHANISMS.join(", ")} (it offers ${
        offered.join(" ")
      })`,
      enhanced: "4.7.0",
    };
  }
  const exchange = exchangeFor(mechanism, creds);
  const failed = (why: string, enhanced = "4.7.0"): AuthOutcome => ({
    ok: false,
    reason: `SASL authentication with ${relay} (${mechanism}) failed: ${why}`,
    enhanced,
  });
  const cancel = async (why: string): Promise<AuthOutcome> => {
    await wire.write("*\r\n", timeoutMs);
    await wire.readReply(timeoutMs);
    return failed(why);
  };
  const initial = await exchange.initial();
  let command = `AUTH ${mechanism}`;
  let pendingInitial: string | undefined;
  if (initial !== undefined) {
    const encoded = initial === "" ? "=" : b64(initial);
    if (command.length + 1 + encoded.length <= MAX_LINE) command += ` ${encoded}`;
    else pendingInitial = encoded;
  }
  await wire.write(`${command}\r\n`, timeoutMs);
  for (let rounds = 0;; rounds++) {
    const reply: Reply = await wire.readReply(timeoutMs);
    if (reply.code === 235) {
      if (exchange.finished()) return { ok: true, mechanism };
      return failed("the server said 235 before the exchange was complete (it did not prove itself)");
    }
    if (reply.code !== 334) {
      return {
        ok: false,
        reason: `SASL authentication failed; server ${relay} said: ${replyText(reply)}`,
        enhanced: reply.code >= 500 || reply.code === 454 || reply.code === 435 ? "4.7.8" : "4.7.0",
      };
    }
    if (rounds >= 4) return await cancel("too many challenges");
    let response: string | undefined;
    if (pendingInitial !== undefined) {
      response = pendingInitial;
      pendingInitial = undefined;
    } else {
      const text = (reply.lines[0] ?? "").trim();
      const challenge = fromBase64(text);
      if (challenge === undefined) return await cancel("the server's challenge is not base64");
      let answer: string | undefined;
      try {
        answer = await exchange.answer(decoder.decode(challenge));
      } catch (err) {
        if (err instanceof ScramClientError) return await cancel(err.message);
        throw err;
      }
      if (answer === undefined) return await cancel("unexpected challenge");
      response = answer === "" ? "" : b64(answer);
    }
    await wire.write(`${response}\r\n`, timeoutMs);
  }
}
