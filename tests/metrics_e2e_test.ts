// The metrics worker end to end: the whole MTA runs with a metrics section; real mail goes in over SMTP
// (two messages delivered to a sink, two deferred to a destination that refuses connections, one
// recipient refused by the access map), and /metrics, fetched over real HTTP, shows the counters move
// (received, delivered, deferred, rejected, the delay histogram, the queue by state). /api/queue equals
// what qmgrctl list --json prints; the status page, rendered by a real headless Chromium (Debian's
// `chromium`), shows the numbers the queue holds and a screenshot is written; /healthz answers 200, then
// 503 naming smtpc while smtpc is killed and waits for its restart, then 200 again. Also: what the
// metrics worker may touch (only its socket), 404 and 405, and the section's configuration errors.
// Needs the Debian package chromium (.ci/packages.d/operations.txt): without it the browser step fails
// in CI and is skipped elsewhere.

import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { controlSocketPath } from "../components/qmgr/control_protocol.ts";
import { qmgrctl } from "../scripts/qmgrctl.ts";
import { freePort } from "./helpers/harness.ts";
import { startTestMta, testConfigText } from "./helpers/mta.ts";
import { runProbes } from "./helpers/probe.ts";
import { dialogue, smtpSend } from "./helpers/smtp_client.ts";
import { runDialogue, SmtpClient, tlsFile } from "./helpers/smtps_dialogue.ts";
import { hashPassword } from "../components/smtps/password_hash.ts";
import { startSink } from "./helpers/smtp_sink.ts";

const CHROMIUM = "/usr/bin/chromium";
/** The workers of the test MTA: two smtps workers, each its own. */
const WORKERS = ["qmgr", "smtps@1", "smtps@2", "smtpc", "smar", "metrics"];
const inCi = Deno.env.get("CI") === "true";
const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/** The samples of a Prometheus text exposition: `name{a="x",b="y"}` (labels sorted) to its value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`)
      .sort();
    out.set(labels.length ? `${m[1]}{${labels.join(",")}}` : m[1], Number(m[3]));
  }
  return out;
}

async function get(
  base: string,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}${path}`, init);
  return { status: res.status, body: await res.text() };
}

/** Polls `probe` until it returns a value (not undefined); fails after `ms`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

async function qmgrctlJson(socket: string, args: string[]): Promise<unknown> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await qmgrctl(["--socket", socket, "--json", ...args], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  assert.equal(code, 0, err.join("\n"));
  return JSON.parse(out.join("\n"));
}

/** The text of the element with this id in the DOM Chromium dumped. */
function byId(dom: string, id: string): string | undefined {
  return new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(dom)?.[1];
}

Deno.test("the metrics worker shows live counters, the queue, health and a status page Chromium renders", async (t) => {
  // defer*@sink.test get 451 (deferred for an hour: a stable queue); down.test refuses connections (its
  // host is marked down and probed, so its one message flips between deferred and active).
  const sink = await startSink({
    rcptReply: (rcpt) =>
      rcpt.startsWith("defer") ? "451 4.2.0 Mailbox busy, try again later" : "250 2.1.5 Ok",
  });
  const closed = freePort(); // nothing listens here: mail to down.test is deferred, its host marked down
  const metricsPort = freePort();
  const dir = await Deno.makeTempDir({ prefix: "smx-metrics-" });
  const authMap = join(dir, "auth.txt");
  await Deno.writeTextFile(authMap, `carol ${await hashPassword("right", 1000)}\n`);
  const mta = await startTestMta({
    mailertable: [
      `sink.test\t${sink.port}^esmtp:[127.0.0.1]`,
      `sender.test\t${sink.port}^esmtp:[127.0.0.1]`,
      `down.test\t${closed}^esmtp:[127.0.0.1]`,
      "",
    ].join("\n"),
    access: "to:@sink.test\tRELAY\nto:@down.test\tRELAY\n",
    configText: `metrics { listen_socket { type = inet; address = 127.0.0.1; port = ${metricsPort}; } }\n`,
    adjust(c) {
      c.qmgr.retry_min_delay = 3600_000; // one deferral each, no retry within the test
      c.qmgr.retry_max_delay = 3600_000;
      c.smtps[0].tls = { cert_file: tlsFile("server.pem"), key_file: tlsFile("server.key"), flags: [] };
      c.smtps[0].auth = {
        map_file: authMap,
        mechanisms: ["plain"],
        trusted_mechs: ["plain"],
        max_failures: 0,
        failure_delay: 1,
        flags: [],
      };
    },
    // A killed worker stays down long enough for /healthz to be seen answering 503.
    mtaOptions: { limits: { minDelay: 1_500 } },
    // Two smtps workers share the port: the metrics worker asks each and adds their counts up.
    processes: 2,
  });
  const base = `http://127.0.0.1:${metricsPort}`;
  const socket = controlSocketPath(mta.config);
  const scrape = async () => samples((await get(base, "/metrics")).body);
  try {
    const before = await scrape();
    const at = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

    await t.step("counters move as mail is received, delivered, deferred and refused", async () => {
      const body = (n: string) => `Subject: metrics ${n}\r\n\r\nbody ${n}\r\n`;
      for (const n of ["1", "2"]) {
        assert.match(
          await smtpSend(mta.port, { from: "a@sender.test", to: [`ok${n}@sink.test`], body: body(n) }),
          /^250 /,
        );
      }
      for (const to of ["defer3@sink.test", "defer4@sink.test", "u5@down.test"]) {
        assert.match(await smtpSend(mta.port, { from: "a@sender.test", to: [to], body: body(to) }), /^250 /);
      }
      const refused = await dialogue(mta.port, [
        "EHLO client.test",
        "MAIL FROM:<a@sender.test>",
        "RCPT TO:<someone@elsewhere.test>",
        "QUIT",
      ]);
      const [code, status] = refused[3].split(" ");
      assert.match(`${code} ${status}`, /^5\d\d 5\.7\.1$/, "relaying denied");
      await sink.waitFor(2);
      const after = await until("the deferrals in /metrics", async () => {
        const m = await scrape();
        const deferred = at(m, "smx_qmgr_recipients_deferred_total") -
          at(before, "smx_qmgr_recipients_deferred_total");
        return deferred >= 3 && at(m, "smx_destinations_down") === 1 ? m : undefined;
      });
      const moved = (key: string) => at(after, key) - at(before, key);
      assert.equal(moved('smx_smtpd_messages_processed_total{sasl_method=""}'), 5);
      assert.equal(moved("smx_qmgr_messages_received_total"), 5);
      assert.equal(moved("smx_qmgr_recipients_delivered_total"), 2);
      // Three first attempts; the down destination's probes may have tried its message again already.
      assert.ok(moved("smx_qmgr_recipients_deferred_total") >= 3);
      assert.equal(moved("smx_qmgr_recipients_bounced_total"), 0);
      assert.equal(
        moved(`smx_smtpd_messages_rejected_total{code="${code}",stage="RCPT",status="${status}"}`),
        1,
      );
      assert.ok(moved("smx_smtpd_connects_total") >= 6, "six SMTP connections counted");
      assert.equal(moved('smx_delivery_delay_seconds_count{status="sent"}'), 2);
      assert.equal(at(after, 'smx_delivery_delay_seconds_bucket{le="+Inf",status="sent"}'), 2);
      // down.test's message may be in a probe (active) just now.
      const inQueue = (state: string) => at(after, `smx_queue_messages{state="${state}"}`);
      assert.equal(inQueue("deferred") + inQueue("active"), 3);
      assert.ok(inQueue("deferred") >= 2);
      assert.ok(at(after, 'smx_queue_recipients{state="deferred"}') >= 2);
      assert.equal(
        at(after, 'smx_queue_message_age_seconds_count{state="deferred"}'),
        inQueue("deferred"),
      );
      assert.ok(at(after, 'smx_queue_size_bytes{state="deferred"}') > 0);
      assert.equal(at(after, 'smx_component_answering{component="smtps"}'), 1, "both smtps workers answered");
      for (const c of WORKERS) {
        assert.equal(at(after, `smx_component_up{component="${c}"}`), 1, `${c} up`);
        assert.equal(at(after, `smx_component_restarts_total{component="${c}"}`), 0, `${c} restarts`);
      }
    });

    await t.step("TLS sessions and failed AUTH attempts are counted", async () => {
      const c = await SmtpClient.connect(mta.port);
      try {
        await runDialogue(c, [[null, 220], ["EHLO client.test", 250], ["STARTTLS", 220]]);
        await c.startTls();
        await runDialogue(c, [
          ["EHLO client.test", 250],
          [`AUTH PLAIN ${btoa("\0carol\0wrong")}`, 535],
          ["QUIT", 221],
        ]);
      } finally {
        c.close();
      }
      const m = await until("the TLS session in /metrics", async () => {
        const m = await scrape();
        return m.get('smx_smtpd_sasl_authentication_failures_total{sasl_method="PLAIN"}') === 1
          ? m
          : undefined;
      });
      const tls = [...m].filter(([k]) => k.startsWith("smx_smtpd_tls_connections_total{"));
      assert.equal(tls.length, 1, JSON.stringify(tls));
      assert.match(tls[0][0], /protocol="TLSv1\.[23]",trust="Anonymous"/);
      assert.equal(tls[0][1], 1);
    });

    let held = "";
    await t.step("/api/queue answers what qmgrctl list --json prints", async () => {
      const list = await qmgrctlJson(socket, ["list", "--domain", "sink.test"]) as {
        rows: { id: string; state: string }[];
      };
      assert.equal(list.rows.length, 2);
      held = list.rows[0].id;
      assert.equal(await qmgrctl(["--socket", socket, "hold", held], { out: () => {}, err: () => {} }), 0);
      const all = await get(base, "/api/queue");
      assert.equal(all.status, 200);
      assert.equal((JSON.parse(all.body) as { rows: unknown[] }).rows.length, 3);
      // The whole queue: down.test's probes change its message between two answers, so compare answers
      // taken in turn until two neighbours agree (they cannot, if the formats differ).
      await until("/api/queue and qmgrctl list --json to agree", async () => {
        const api = JSON.parse((await get(base, "/api/queue")).body);
        const cli = await qmgrctlJson(socket, ["list"]);
        const api2 = JSON.parse((await get(base, "/api/queue")).body);
        return isDeepStrictEqual(api, cli) || isDeepStrictEqual(cli, api2) || undefined;
      }, 10_000);
      const sinkOnly = await get(base, "/api/queue?domain=sink.test");
      assert.deepEqual(
        JSON.parse(sinkOnly.body),
        await qmgrctlJson(socket, ["list", "--domain", "sink.test"]),
      );
      const hold = await get(base, "/api/queue?state=hold");
      assert.deepEqual(JSON.parse(hold.body), await qmgrctlJson(socket, ["list", "--state", "hold"]));
      assert.deepEqual((JSON.parse(hold.body) as { rows: { id: string }[] }).rows.map((r) => r.id), [held]);
      const bad = await get(base, "/api/queue?state=lost");
      assert.equal(bad.status, 400);
      assert.match(bad.body, /unknown state lost/);
      assert.equal((await get(base, "/api/queue?colour=red")).status, 400);
    });

    await t.step("anything else is 404, and only GET and HEAD are answered", async () => {
      assert.equal((await get(base, "/nothing-here")).status, 404);
      const post = await fetch(`${base}/metrics`, { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
      await post.body?.cancel();
      const head = await fetch(`${base}/metrics`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
    });

    await t.step({
      name: "the status page renders in headless Chromium with the queue's numbers",
      ignore: !haveChromium && !inCi,
      fn: async () => {
        assert.ok(haveChromium, `${CHROMIUM} is missing: install the Debian package chromium`);
        // The page shows answers up to a second old: wait until they include the hold.
        await until(
          "the hold in /metrics",
          async () => (await scrape()).get('smx_queue_messages{state="hold"}') === 1 || undefined,
        );
        const status = await qmgrctlJson(socket, ["status"]) as { queue: { held: number } };
        const dir = await Deno.makeTempDir({ prefix: "smx-chromium-" });
        try {
          const shot = join(dir, "status.png");
          const render = async () => {
            const out = await new Deno.Command(CHROMIUM, {
              args: [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                `--user-data-dir=${join(dir, "profile")}`,
                "--window-size=1100,1800",
                `--screenshot=${shot}`,
                "--dump-dom",
                `${base}/`,
              ],
              stdout: "piped",
              stderr: "piped",
            }).output();
            assert.ok(out.success, `chromium failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
            return new TextDecoder().decode(out.stdout);
          };
          // down.test's host is marked down but for the moments of its probes: render again if the page
          // was made in one.
          const downRow = new RegExp(`data-down="127\\.0\\.0\\.1:${closed}"`);
          let dom = await render();
          for (let i = 0; i < 2 && !downRow.test(dom); i++) dom = await render();
          assert.match(dom, downRow);
          const n = (id: string) => Number(byId(dom, id));
          assert.equal(n("queue-hold-messages"), 1);
          assert.equal(n("queue-hold-recipients"), status.queue.held);
          assert.equal(n("queue-incoming-messages"), 0);
          assert.equal(n("queue-deferred-messages") + n("queue-active-messages"), 2, "defer4 and u5");
          assert.ok(n("queue-deferred-messages") >= 1);
          assert.equal(byId(dom, "queue-total"), "3 messages");
          assert.equal(byId(dom, "health"), "healthy");
          assert.equal(byId(dom, "total-delivered"), "2");
          assert.equal(byId(dom, "total-rejected"), "1");
          assert.match(dom, /<tr data-domain="sink\.test"><td>sink\.test<\/td><td class="n">2<\/td>/);
          assert.match(dom, /<tr data-domain="down\.test"><td>down\.test<\/td><td class="n">1<\/td>/);
          assert.match(dom, /<polyline [^>]*data-series="delivered" data-total="2"/);
          for (const c of WORKERS) {
            assert.match(dom, new RegExp(`data-component="${c}"><td>${c}</td><td><span class="dot ready">`));
          }
          const png = await Deno.readFile(shot);
          assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
          assert.ok(png.length > 10_000, `a screenshot of the page, not an empty one (${png.length} bytes)`);
          // To look at it: SMX_METRICS_SCREENSHOT=/tmp/status.png deno task test ...
          const keep = Deno.env.get("SMX_METRICS_SCREENSHOT");
          if (keep) await Deno.copyFile(shot, keep);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    });

    await t.step("/healthz is 200, 503 naming a killed component until it is back, then 200", async () => {
      const ok = await get(base, "/healthz");
      assert.equal(ok.status, 200);
      assert.match(ok.body, /^ok\n/);
      mta.mta.supervisor.kill("smtpc");
      const down = await until("a 503", async () => {
        const r = await get(base, "/healthz");
        return r.status === 503 ? r : undefined;
      });
      assert.match(down.body, /^not ready: smtpc is (down, waiting to be restarted|starting)/);
      await until("a 200 again", async () => (await get(base, "/healthz")).status === 200 || undefined);
      // /metrics answers may be up to a second old.
      const m = await until("smtpc's restart in /metrics", async () => {
        const m = await scrape();
        return m.get('smx_component_up{component="smtpc"}') === 1 ? m : undefined;
      });
      assert.equal(m.get('smx_component_restarts_total{component="smtpc"}'), 1);
    });
  } finally {
    await mta.stop();
    await sink.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the metrics worker may listen on its socket and touch nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smx-metrics-perm-" });
  try {
    const port = freePort();
    const other = freePort();
    await Deno.writeTextFile(join(dir, "mailertable"), "");
    await Deno.writeTextFile(join(dir, "access"), "");
    for (const d of ["var/cdb/0", "var/ibdb"]) await Deno.mkdir(join(dir, d), { recursive: true });
    const ibdb = join(dir, "var/ibdb/queue.sqlite");
    await Deno.writeTextFile(ibdb, "");
    const text = testConfigText(dir, freePort(), ["127.0.0.1:5353"]) +
      `metrics { listen_socket { type = inet; address = 127.0.0.1; port = ${port}; } }\n`;
    const sets = await computePermissions(parseConfig(text, "test.conf"));
    assert.deepEqual(sets.metrics?.net, [`127.0.0.1:${port}`]);
    const local = (p: number) => ({ hostname: "127.0.0.1", port: p });
    const probes = [
      { op: "listen", ...local(port) },
      { op: "listen", ...local(other) },
      { op: "connect", ...local(other) },
      { op: "read", path: ibdb },
      { op: "read", path: join(dir, "mailertable") },
      { op: "write", path: join(dir, "var/cdb/0/x") },
      { op: "listen_unix", path: join(dir, "var/ibdb/qmgr.sock") },
      { op: "env", key: "HOME" },
      { op: "statfs", path: dir },
    ] as const;
    const got = await runProbes(sets.metrics as Deno.PermissionOptionsObject, [...probes]);
    assert.deepEqual(got, ["ok", ...probes.slice(1).map(() => "NotCapable")]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the metrics section: defaults, absent means no worker, errors name file:line:col", () => {
  const dir = "/tmp/smx-metrics-conf";
  const plain = parseConfig(testConfigText(dir, 2525), "a.conf");
  assert.equal(plain.metrics, undefined);
  const dflt = parseConfig(testConfigText(dir, 2525) + "metrics { }\n", "b.conf");
  assert.deepEqual(dflt.metrics?.listen_socket, [{ type: "inet", address: "127.0.0.1", port: 9425 }]);
  const cases: [string, RegExp][] = [
    [
      "metrics {\n  listen_socket { type = inet; address = 127.0.0.1; prot = 9425; }\n}\n",
      /^c\.conf:\d+:\d+: unknown option prot in section metrics\.listen_socket/,
    ],
    [
      "metrics { listen_socket { type = inet; address = 127.0.0.1; port = 2525; } }\n",
      /^c\.conf:\d+:\d+: listen socket 127\.0\.0\.1:2525 of metrics is already used by smtps MTA/,
    ],
    ["metrics { colour = red; }\n", /^c\.conf:\d+:\d+: unknown option colour in section metrics/],
  ];
  for (const [extra, expected] of cases) {
    const text = testConfigText(dir, 2525) + extra;
    const line = text.split("\n").length - extra.split("\n").length + 1;
    assert.throws(() => parseConfig(text, "c.conf"), (err: Error) => {
      assert.match(err.message, expected);
      assert.ok(
        err.message.startsWith(`c.conf:${line}`) || err.message.startsWith(`c.conf:${line + 1}`),
        err.message,
      );
      return true;
    });
  }
});
