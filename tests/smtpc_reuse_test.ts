// smtpc's connection cache: an idle connection to a server carries its next transactions, within the
// configured time and count limits; a transaction that ended early is cleared with RSET first; a
// connection the server closed while it idled is replaced by a fresh one without losing the delivery;
// concurrent transactions never open more connections than transactions run at once.

import assert from "node:assert/strict";
import type { Config } from "../config/types.ts";
import { freePort } from "./helpers/harness.ts";
import { type Sink, type SinkOptions, startSink } from "./helpers/smtp_sink.ts";
import { rcpts, type SmtpcEnv, statuses, withSmtpc } from "./helpers/smtpc_worker.ts";

const MESSAGE = "Subject: again\r\n\r\nx\r\n";

async function withSink(port: number, opts: SinkOptions, fn: (sink: Sink) => Promise<void>): Promise<void> {
  const sink = await startSink({ port, ...opts });
  try {
    await fn(sink);
  } finally {
    await sink.close();
  }
}

/** Waits until `check` holds, for at most `ms` (a condition in another thread, not a timing). */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function sendAll(deliver: SmtpcEnv["deliver"], n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(...statuses(await deliver(MESSAGE)));
  return out;
}

Deno.test("smtpc reuses an idle connection within its limits", async (t) => {
  const port = freePort();
  await withSmtpc({ ports: [port] }, async ({ deliver }) => {
    await t.step("five transactions in a row share one connection and one EHLO", async () => {
      await withSink(port, {}, async (sink) => {
        assert.deepEqual(await sendAll(deliver, 5), Array(5).fill("0:sent"));
        assert.equal(sink.connections, 1);
        assert.equal(sink.commands.filter((c) => c.startsWith("EHLO")).length, 1);
        assert.equal(sink.count, 5);
      });
    });
    await t.step("a transaction whose recipients were all refused is cleared with RSET", async () => {
      await withSink(
        port,
        { rcptReply: (r) => r.startsWith("no@") ? "550 5.1.1 No" : "250 2.1.5 Ok" },
        async (sink) => {
          const refused = await deliver(MESSAGE, { recipients: rcpts("no@dest.test") });
          assert.deepEqual(statuses(refused), ["0:perm"]);
          assert.deepEqual(statuses(await deliver(MESSAGE)), ["0:sent"]);
          assert.equal(sink.connections, 1);
          assert.ok(sink.commands.includes("RSET"), sink.commands.join(" | "));
        },
      );
    });
    await t.step(
      "a connection the server closed while idle is replaced, the delivery goes through",
      async () => {
        await withSink(port, {}, async (sink) => {
          assert.deepEqual(statuses(await deliver(MESSAGE)), ["0:sent"]);
          await sink.dropConnections("421 4.4.2 Idle timeout");
          assert.deepEqual(statuses(await deliver(MESSAGE)), ["0:sent"]);
          await sink.dropConnections();
          assert.deepEqual(statuses(await deliver(MESSAGE)), ["0:sent"]);
          assert.equal(sink.connections, 3);
          assert.equal(sink.count, 3);
        });
      },
    );
    await t.step(
      "concurrent transactions open at most one connection each, and reuse them later",
      async () => {
        await withSink(port, {}, async (sink) => {
          const burst = () => Promise.all([1, 2, 3].map(() => deliver(MESSAGE)));
          for (const r of await burst()) assert.deepEqual(statuses(r), ["0:sent"]);
          for (const r of await burst()) assert.deepEqual(statuses(r), ["0:sent"]);
          assert.ok(sink.maxConcurrent <= 3, `${sink.maxConcurrent} connections at once`);
          assert.ok(sink.connections <= 3, `${sink.connections} connections`);
          assert.equal(sink.count, 6);
        });
      },
    );
  });
});

Deno.test("smtpc stops reusing a connection at its count limit and after its idle time", async (t) => {
  const port = freePort();
  const adjust = (c: Config) => {
    c.smtpc.connection_reuse_count_limit = 2;
    c.smtpc.connection_cache_time_limit = 300;
  };
  await withSmtpc({ ports: [port], adjust }, async ({ deliver }) => {
    await t.step("five transactions with at most two per connection take three connections", async () => {
      await withSink(port, {}, async (sink) => {
        assert.deepEqual(await sendAll(deliver, 5), Array(5).fill("0:sent"));
        assert.equal(sink.connections, 3);
        // The last connection carried one transaction: it idles, the two full ones got QUIT.
        await until(() => sink.openConnections === 1);
        assert.equal(sink.commands.filter((c) => c === "QUIT").length, 2);
      });
    });
    await t.step(
      "an idle connection past its time gets QUIT and the next transaction a new one",
      async () => {
        await withSink(port, {}, async (sink) => {
          assert.deepEqual(statuses(await deliver(MESSAGE)), ["0:sent"]);
          await until(() => sink.openConnections === 0);
          assert.deepEqual(sink.commands.at(-1), "QUIT");
          assert.deepEqual(statuses(await deliver(MESSAGE)), ["0:sent"]);
          assert.equal(sink.connections, 2);
        });
      },
    );
  });
});
