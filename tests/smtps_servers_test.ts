// Several named smtps sections in one worker (`smtps MTA { }` and `smtps MSA { }`), each on its own port
// with its own name, limits, extensions and session count; and the smtps section's options as the
// configuration reads and prints them (tls and auth sections, bare_newline_clients, the new limits); a
// reload that gives new sessions new settings and refuses what needs a restart.

import assert from "node:assert/strict";
import { formatConfig, parseConfig } from "../config/mod.ts";
import type { Config, InetListenSocket } from "../config/types.ts";
import { PROTOCOL_VERSION } from "../components/protocol/messages.ts";
import { runDialogue, SmtpClient, type Smtps, startSmtps, tlsFile } from "./helpers/smtps_dialogue.ts";
import { cdbText } from "./helpers/cdb.ts";

Deno.test("smtps serves several named sections, each with its own settings", async (t) => {
  const s = await startSmtps(
    { name: "MTA", hostname: "mx.example", max_message_size: 1000, max_threads: 1 },
    {},
    {
      more: [{
        name: "MSA",
        hostname: "submit.example",
        max_message_size: 5000,
        tls: { cert_file: tlsFile("server.pem"), key_file: tlsFile("server.key"), flags: [] },
      }],
    },
  );
  try {
    await t.step("each greets with its own name and offers its own extensions", async () => {
      for (
        const [name, host, size, tls] of [["MTA", "mx.example", 1000, false], [
          "MSA",
          "submit.example",
          5000,
          true,
        ]]
      ) {
        const c = await SmtpClient.connect(s.ports[name as string]);
        try {
          const [greeting, ehlo] = await runDialogue(c, [[null, `220 ${host} ESMTP`], [
            "EHLO client.example",
            250,
          ]]);
          assert.ok(greeting.lines[0].includes(host as string));
          assert.equal(ehlo.lines[0], `250-${host}`);
          assert.ok(ehlo.lines.includes(`250-SIZE ${size}`), ehlo.lines.join(" | "));
          assert.equal(ehlo.lines.some((l) => l.endsWith("STARTTLS")), tls);
          await runDialogue(c, [["MAIL FROM:<a@example.org> SIZE=2000", size === 1000 ? 552 : 250], [
            "QUIT",
            221,
          ]]);
        } finally {
          c.close();
        }
      }
    });
    await t.step("max_threads counts per section", async () => {
      const mta = await SmtpClient.connect(s.ports.MTA);
      const second = await SmtpClient.connect(s.ports.MTA);
      const msa = await SmtpClient.connect(s.ports.MSA);
      try {
        await runDialogue(mta, [[null, 220]]);
        await runDialogue(second, [[null, "421 4.3.2 mx.example Too many sessions"]]);
        await runDialogue(msa, [[null, "220 submit.example"]]);
      } finally {
        for (const c of [mta, second, msa]) c.close();
      }
    });
    await t.step("Received: names the section's host", async () => {
      const c = await SmtpClient.connect(s.ports.MSA);
      try {
        await runDialogue(c, [
          [null, 220],
          ["EHLO client.example", 250],
          ["MAIL FROM:<a@example.org>", 250],
          ["RCPT TO:<b@example.com>", 250],
          ["DATA", 354],
          ["x\r\n.", 250],
          ["QUIT", 221],
        ]);
        assert.match(
          await cdbText(s.envelopes.at(-1)!.cdbPath),
          /\tby submit\.example \(smX\) with ESMTP/,
        );
      } finally {
        c.close();
      }
    });
  } finally {
    await s.stop();
  }
});

Deno.test("the configuration reads and prints the smtps options, tls and auth sections", async (t) => {
  const text = `
    smtps MTA {
      listen_socket { address = 127.0.0.1; port = 25; }
      max_bad_commands_per_transaction = 3; max_invalid_addresses_per_session = 4;
      max_invalid_addresses_per_transaction = 2; max_nop_commands_between_transactions = 7;
      max_nop_commands_in_transaction = 5; max_transactions = 10;
      bare_newline_clients = { 10.0.0.0/8, 192.0.2.1, [2001:db8::]/32 };
      flags = { 8bitmime, soft_bounce };
    }
    smtps MSA {
      listen_socket { address = 127.0.0.1; port = 587; }
      tls { cert_file = "s.pem"; key_file = "s.key"; CAcert_directory = "ca.d";
            flags = { allow_relaying_if_verified, check_access_map_for_relaying }; }
      auth { map_file = "auth.db"; mechanisms = { PLAIN }; failure_delay = 2s; flags = { received_user }; }
    }`;
  const c = parseConfig(text, "t.conf");
  const [mta, msa] = c.smtps;
  await t.step("the limits and bare_newline_clients", () => {
    assert.deepEqual(
      [mta.max_bad_commands_per_transaction, mta.max_invalid_addresses_per_session, mta.max_transactions],
      [3, 4, 10],
    );
    assert.deepEqual(mta.bare_newline_clients, ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]);
    assert.equal(mta.tls, undefined);
    assert.equal(mta.auth, undefined);
  });
  await t.step("tls and auth, with auth's defaults (trusted_mechs = the mechanisms offered)", () => {
    assert.deepEqual(msa.tls, {
      cert_file: "s.pem",
      key_file: "s.key",
      CAcert_directory: "ca.d",
      flags: ["allow_relaying_if_verified", "check_access_map_for_relaying"],
    });
    assert.deepEqual(msa.auth, {
      map_file: "auth.db",
      mechanisms: ["plain"],
      trusted_mechs: ["plain"],
      max_failures: 3,
      failure_delay: 2000,
      flags: ["received_user"],
    });
  });
  await t.step("printed and read back, the same", () => {
    assert.deepEqual(parseConfig(formatConfig(c), "t.conf"), c);
  });
  await t.step("errors name what is wrong", () => {
    const bad: [string, RegExp][] = [
      ["smtps { tls { key_file = k; } }", /missing option cert_file in section smtps\.tls/],
      ["smtps { auth { flags = { nosuchflag }; } }", /unknown value nosuchflag/],
      ["smtps { auth { map_file = a; mechanisms = { NTLM }; } }", /unknown value NTLM/],
      ["smtps { tls { cert_file = c; key_file = k; flags = { verify }; } }", /unknown value verify/],
      ["smtps { bare_newline_clients = { 10.0.0.0/33 }; }", /bad value "10\.0\.0\.0\/33"/],
    ];
    for (const [conf, message] of bad) assert.throws(() => parseConfig(conf, "t.conf"), message);
  });
});

/** Sends the worker a reload frame and resolves with the error it reports, or undefined. */
async function reload(s: Smtps, config: Config): Promise<string | undefined> {
  const before = s.harness.frames.length;
  s.harness.worker.postMessage({ v: PROTOCOL_VERSION, kind: "reload", config });
  for (let i = 0; i < 500; i++) {
    const f = s.harness.frames.slice(before).find((f) => f.kind === "reloaded");
    if (f && f.kind === "reloaded") return f.error;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("smtps did not answer the reload");
}

Deno.test("smtps reloads its sections' settings for new sessions, not its sockets", async (t) => {
  const s = await startSmtps({ max_message_size: 1000 });
  try {
    const old = await SmtpClient.connect(s.port);
    try {
      await runDialogue(old, [[null, 220]]);
      await t.step("a new limit applies to sessions that start afterwards", async () => {
        const next = structuredClone(s.config);
        next.smtps[0].max_message_size = 2000;
        assert.equal(await reload(s, next), undefined);
        const c = await SmtpClient.connect(s.port);
        try {
          const [, ehlo] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
          assert.ok(ehlo.lines.includes("250-SIZE 2000"), ehlo.lines.join(" | "));
        } finally {
          c.close();
        }
        const [ehlo] = await runDialogue(old, [["EHLO client.example", 250]]);
        assert.ok(ehlo.lines.includes("250-SIZE 1000"), "an open session keeps its settings");
      });
      await t.step("other sockets, or a TLS file that cannot be read, are refused", async () => {
        const moved = structuredClone(s.config);
        (moved.smtps[0].listen_socket[0] as InetListenSocket).port += 1;
        assert.match((await reload(s, moved)) ?? "", /listen sockets changed/);
        const broken = structuredClone(s.config);
        broken.smtps[0].tls = {
          cert_file: tlsFile("missing.pem"),
          key_file: tlsFile("server.key"),
          flags: [],
        };
        assert.match((await reload(s, broken)) ?? "", /missing\.pem/);
        const c = await SmtpClient.connect(s.port);
        try {
          const [, ehlo] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
          assert.ok(ehlo.lines.includes("250-SIZE 2000"), "the running configuration stays");
        } finally {
          c.close();
        }
      });
    } finally {
      old.close();
    }
  } finally {
    await s.stop();
  }
});
