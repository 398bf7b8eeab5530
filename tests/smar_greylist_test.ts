// Greylisting (sendmail X README 3.9.4) with an injected clock: a new client waits grey_wait, a retry
// before grey_expire turns it white, white entries expire after white_expire unused, netmask groups
// clients, and the RCPT stage answers 421 now or at DATA, sparing relaying and whitelisted clients.

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { defaultGreylisting } from "../config/defaults.ts";
import type { GreylistConfig } from "../config/types.ts";
import { greyKey, Greylist } from "../components/smar/greylist.ts";
import { policyOf, show } from "./helpers/smar_policy.ts";

const MIN = 60_000;

async function withGreylist(
  fn: (g: Greylist, clock: { now: number }, cfg: GreylistConfig) => Promise<void> | void,
  more: Partial<GreylistConfig> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smar_grey_" });
  const clock = { now: 1_000_000_000_000 };
  const cfg: GreylistConfig = {
    ...defaultGreylisting(),
    grey_wait: 5 * MIN,
    grey_expire: 60 * MIN,
    white_expire: 24 * 60 * MIN,
    white_timeout: 10 * MIN,
    main_DB_name: join(dir, "grey.db"),
    netmask: 24, // not the default (32, the whole address): so neighbours share an entry
    ...more,
  };
  const g = new Greylist(cfg, () => clock.now);
  try {
    await fn(g, clock, cfg);
  } finally {
    g.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("greyKey() masks IPv4 by netmask and IPv6 to /64", async (t) => {
  const cases: [string, number, string][] = [
    ["192.0.2.77", 24, "192.0.2.0/24"],
    ["192.0.2.77", 32, "192.0.2.77/32"],
    ["192.0.2.77", 16, "192.0.0.0/16"],
    ["::ffff:192.0.2.77", 24, "192.0.2.0/24"],
    ["2001:db8:1:2:3:4:5:6", 24, "2001:db8:1:2::/64"],
  ];
  for (const [ip, prefix, want] of cases) {
    await t.step(`${ip}/${prefix}`, () => assert.equal(greyKey(ip, prefix), want));
  }
});

Deno.test("Greylist.check() lets a client through only after it retried late enough", async (t) => {
  await withGreylist(async (g, clock) => {
    await t.step(
      "a new client waits",
      () => assert.deepEqual(g.check("192.0.2.1"), { pass: false, state: "new", waitMs: 5 * MIN }),
    );
    await t.step("a retry too early still waits", () => {
      clock.now += 2 * MIN;
      assert.deepEqual(g.check("192.0.2.1"), { pass: false, state: "waiting", waitMs: 3 * MIN });
    });
    await t.step("a neighbour in the same /24 shares the entry", () => {
      assert.deepEqual(g.check("192.0.2.200"), { pass: false, state: "waiting", waitMs: 3 * MIN });
    });
    await t.step("a retry after grey_wait passes and turns white", () => {
      clock.now += 3 * MIN;
      assert.deepEqual(g.check("192.0.2.1"), { pass: true, state: "confirmed" });
    });
    await t.step("then it passes at once", () => {
      clock.now += 20 * 60 * MIN;
      assert.deepEqual(g.check("192.0.2.1"), { pass: true, state: "white" });
    });
    await t.step("a white entry unused for white_expire is forgotten", () => {
      clock.now += 24 * 60 * MIN;
      assert.equal(g.check("192.0.2.1").state, "new");
    });
    await t.step("a grey entry not retried within grey_expire starts again", () => {
      clock.now += 61 * MIN;
      assert.deepEqual(g.check("192.0.2.1"), { pass: false, state: "new", waitMs: 5 * MIN });
    });
  });
});

Deno.test("Greylist writes a white client's last use at most once per white_timeout", async () => {
  await withGreylist((g, clock, cfg) => {
    g.check("192.0.2.1");
    clock.now += 6 * MIN;
    g.check("192.0.2.1"); // white now, last use = this moment
    const db = new DatabaseSync(cfg.main_DB_name, { readOnly: true });
    try {
      const last = () => (db.prepare("SELECT last FROM grey").get() as { last: number }).last;
      const whiteAt = last();
      clock.now += 5 * MIN;
      g.check("192.0.2.1");
      assert.equal(last(), whiteAt, "within white_timeout: not written");
      clock.now += 6 * MIN;
      g.check("192.0.2.1");
      assert.equal(last(), clock.now, "after white_timeout: written");
    } finally {
      db.close();
    }
  });
});

Deno.test("Greylist removes at most expire_limit expired entries at a time", async () => {
  await withGreylist((g, clock, cfg) => {
    for (let i = 1; i <= 5; i++) g.check(`10.0.${i}.1`);
    clock.now += 2 * 60 * MIN; // every grey entry expired, and a minute has passed since the last purge
    g.check("10.9.9.9");
    const db = new DatabaseSync(cfg.main_DB_name, { readOnly: true });
    try {
      const n = (db.prepare("SELECT count(*) AS n FROM grey").get() as { n: number }).n;
      assert.equal(n, 5 - 2 + 1, "two expired entries removed, the new one added");
    } finally {
      db.close();
    }
  }, { expire_limit: 2 });
});

Deno.test("the RCPT stage greylists with 421, at RCPT or at DATA, and spares relaying and ok clients", async (t) => {
  await withGreylist(async (g) => {
    const p = policyOf({
      access: "to:friend@local.example ok\n",
      mailertable: "local.example\tlmtp:[127.0.0.1]\n",
      more: { greylist: g },
    });
    const ask = (ip: string, rcpt: string, flags: string[], state = {}, authorized = false) =>
      p.checkRcpt({ ip, sender: "s@example.org", recipient: rcpt, authorized }, { flags, state });
    const grey = ["access", "greylisting"];
    const cases: [string, () => ReturnType<typeof ask>, string][] = [
      [
        "a new client gets 421 at RCPT",
        () => ask("192.0.2.1", "u@local.example", grey),
        "tempfail 421 4.7.0 Greylisted, try again later",
      ],
      [
        "or at DATA",
        () => ask("192.0.3.1", "u@local.example", [...grey, "delay_greylisting_error_until_data"]),
        "accept DATA 421",
      ],
      ["not without the greylisting flag", () => ask("192.0.4.1", "u@local.example", ["access"]), "accept"],
      [
        "not for a relaying client",
        () => ask("192.0.5.1", "u@local.example", grey, { relay: true }),
        "accept",
      ],
      ["not for an authenticated one", () => ask("192.0.6.1", "u@local.example", grey, {}, true), "accept"],
      [
        "not for a whitelisted client",
        () => ask("192.0.7.1", "u@local.example", grey, { whitelisted: true }),
        "accept",
      ],
      ["not for a to: ok recipient", () => ask("192.0.8.1", "friend@local.example", grey), "accept"],
    ];
    for (const [label, run, want] of cases) {
      await t.step(label, async () => assert.equal(show(await run()), want));
    }
  });
});
