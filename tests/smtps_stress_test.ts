// Stress mode of the real smtps worker over loopback TCP, with many real clients from distinct loopback
// addresses: 300 slow clients trickling a byte at a time hold every one of 256 slots, and a client that
// talks at normal speed still gets a slot (the idlest session gives up its own) and its message through;
// under stress, waits for a command shrink to stress_timeout (sessions already waiting too), one client
// address gets only its share of the slots (421 4.7.0), and smtps logs when stress mode starts and ends.

import assert from "node:assert/strict";
import { join } from "node:path";
import { HOST, startSmtps } from "./helpers/smtps_dialogue.ts";
import { SmtpConnection } from "./helpers/smtp_client.ts";

/** Waits until smtps's log file holds a line matching `re`. */
async function logged(file: string, re: RegExp, ms = 15_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const text = await Deno.readTextFile(file).catch(() => "");
    const line = text.split("\n").find((l) => re.test(l));
    if (line) return line;
    if (Date.now() > deadline) {
      throw new Error(`no log line matching ${re} in ${file}:\n${text.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Opens a session from `localAddress` and reads its first reply. */
async function open(port: number, localAddress: string, timeoutMs = 10_000) {
  const c = await SmtpConnection.open(port, { localAddress, timeoutMs });
  return { c, greeting: await c.reply() };
}

Deno.test("under stress a client at normal speed is served while 300 slow clients hold every slot", async () => {
  const logDir = await Deno.makeTempDir({ prefix: "smx-stress-" });
  // Long timeouts: only giving up the idlest slot can let the newcomer in.
  const s = await startSmtps({ max_threads: 256, io_timeout: 300_000, stress_timeout: 120_000 }, {}, {
    logDirectory: logDir,
  });
  const slow: SmtpConnection[] = [];
  let trickle: ReturnType<typeof setInterval> | undefined;
  try {
    const greetings: string[] = [];
    for (let i = 0; i < 300; i += 50) {
      const batch = await Promise.all(
        Array.from(
          { length: 50 },
          (_, j) => open(s.port, `127.1.${Math.floor((i + j) / 200)}.${1 + (i + j) % 200}`),
        ),
      );
      for (const b of batch) {
        greetings.push(b.greeting.slice(0, 9));
        if (b.greeting.startsWith("220")) slow.push(b.c);
        else await b.c.close();
      }
    }
    assert.ok(slow.length >= 256, `the slow clients hold every slot (${slow.length} greeted)`);
    assert.ok(
      greetings.every((g) => g === "220 mx.te" || g === "421 4.3.2" || g === ""),
      `greetings: ${[...new Set(greetings)].join(", ")}`,
    );
    // A byte every 200 ms, never a whole command: each keeps its slot as long as its timeout allows.
    trickle = setInterval(() => {
      for (const c of slow) if (!c.socket.destroyed) c.write("X");
    }, 200);
    await logged(join(logDir, "smtps.log"), /stress mode on for MTA: \d+ of 256 sessions in use/);
    await new Promise((r) => setTimeout(r, 1_100)); // every slow session has waited over a second now

    const normal = await SmtpConnection.open(s.port, { timeoutMs: 5_000 });
    try {
      assert.match(await normal.reply(), /^220 /, "the newcomer gets a slot, not 421 4.3.2");
      assert.match(await normal.command("EHLO client.test"), /^250[ -]/);
      assert.match(await normal.command("MAIL FROM:<a@sender.test>"), /^250 /);
      assert.match(await normal.command("RCPT TO:<b@example.com>"), /^250 /);
      assert.match(await normal.command("DATA"), /^354 /);
      assert.match(
        await normal.command("Subject: hello\r\n\r\nserved under stress\r\n."),
        /^250 2\.0\.0 Ok: queued/,
      );
      assert.match(await normal.command("QUIT"), /^221 /);
    } finally {
      await normal.close();
    }
    assert.equal(s.envelopes.length, 1);
    const evicted = await logged(
      join(logDir, "smtps.log"),
      /timeout after .* from unknown\[127\.1\.[^\]]+\]: 421 4\.4\.2/,
    );
    assert.match(evicted, /stress mode, slot needed/);
    const open_ = slow.filter((c) => !c.socket.destroyed).length;
    assert.ok(open_ >= 250, `the other slow clients keep their sessions (${open_} open)`);
  } finally {
    clearInterval(trickle);
    await Promise.all(slow.map((c) => c.close()));
    try {
      await logged(join(logDir, "smtps.log"), /stress mode off for MTA: \d+ of 256 sessions in use/);
    } finally {
      await s.stop();
      await Deno.remove(logDir, { recursive: true });
    }
  }
});

Deno.test("under stress waits for a command shrink to stress_timeout and a client gets only its share", async () => {
  const logDir = await Deno.makeTempDir({ prefix: "smx-stress-" });
  // Stress from 5 of 10 sessions (until fewer than 4); each client may then hold 2; a wait for a command
  // lasts 1 s at most. io_timeout is 5 minutes: only stress mode ends a session within the test.
  const s = await startSmtps(
    {
      max_threads: 10,
      io_timeout: 300_000,
      stress_threshold: 50,
      stress_timeout: 1_000,
      stress_client_share: 20,
    },
    {},
    { logDirectory: logDir },
  );
  const log = join(logDir, "smtps.log");
  const clients: SmtpConnection[] = [];
  let trickler: ReturnType<typeof setInterval> | undefined;
  try {
    // Four sessions in DATA, which keeps io_timeout: they hold the load up while the others are cut.
    const busy: SmtpConnection[] = [];
    for (const ip of ["127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"]) {
      const o = await open(s.port, ip);
      busy.push(o.c);
      assert.match(o.greeting, /^220 /);
      assert.match(await o.c.command("EHLO client.test"), /^250[ -]/);
      assert.match(await o.c.command("MAIL FROM:<a@sender.test>"), /^250 /);
      assert.match(await o.c.command("RCPT TO:<b@example.com>"), /^250 /);
      assert.match(await o.c.command("DATA"), /^354 /);
    }
    clients.push(...busy);
    const idle = await open(s.port, "127.0.0.1");
    clients.push(idle.c);
    assert.match(idle.greeting, /^220 /);
    await logged(log, /stress mode on for MTA: 5 of 10 sessions in use/);
    const second = await open(s.port, "127.0.0.1");
    clients.push(second.c);
    assert.match(second.greeting, /^220 /, "a second session is within the share of 2");
    const third = await open(s.port, "127.0.0.1");
    clients.push(third.c);
    assert.equal(third.greeting, `421 4.7.0 ${HOST} Too many connections from your host`);
    // A client that trickles its command: the whole command is bounded, not each byte.
    const slow = await open(s.port, "127.0.0.2");
    clients.push(slow.c);
    assert.match(slow.greeting, /^220 /);
    trickler = setInterval(() => slow.c.socket.destroyed || slow.c.write("N"), 200);

    for (const c of [idle.c, second.c, slow.c]) {
      assert.equal(await c.reply(), `421 4.4.2 ${HOST} Error: timeout exceeded`);
    }
    for (const c of busy) c.write("still here\r\n");
    await Promise.all(busy.map((c) => c.close()));
    await logged(log, /stress mode off for MTA: \d of 10 sessions in use/);
    // Out of stress, one client may again hold more than its stress share.
    for (let i = 0; i < 3; i++) {
      const o = await open(s.port, "127.0.0.1");
      clients.push(o.c);
      assert.match(o.greeting, /^220 /);
    }
  } finally {
    clearInterval(trickler);
    await Promise.all(clients.map((c) => c.close()));
    await s.stop();
    await Deno.remove(logDir, { recursive: true });
  }
});
