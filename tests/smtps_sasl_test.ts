// SASL mechanisms beyond PLAIN and LOGIN: SCRAM-SHA-1 (RFC 5802), SCRAM-SHA-256 (RFC 7677) and CRAM-MD5
// (RFC 2195) with the RFCs' own test vectors, the credentials map's secret forms and createmap writing
// them, which mechanisms the Cyrus SASL flags leave (sendmail X README 3.10 auth), and the real smtps
// worker against foreign clients: GNU SASL's gsasl (SCRAM-SHA-1, SCRAM-SHA-256, CRAM-MD5) and Python's
// smtplib (CRAM-MD5, which it prefers when offered), with a wrong password refused as well.

import assert from "node:assert/strict";
import type { SmtpsAuthConfig } from "../config/types.ts";
import { hmacMd5FromStates, hmacMd5States, md5 } from "../components/smtps/md5.ts";
import { chooseMechanisms } from "../components/smtps/sasl_mechanisms.ts";
import { ScramServer } from "../components/smtps/sasl_scram.ts";
import {
  cramDigest,
  cramSecret,
  mechanismsServed,
  parseSecrets,
  scramSecret,
  verifyPlain,
} from "../components/smtps/sasl_secrets.ts";
import { fromBase64 } from "../components/sasl/scram.ts";
import { hashCredentials } from "../scripts/createmap_auth.ts";
import { runDialogue, SmtpClient, type Smtps, startSmtps } from "./helpers/smtps_dialogue.ts";
import { haveTool } from "./helpers/tools.ts";

const enc = new TextEncoder();
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("MD5 and HMAC-MD5 from precomputed states match RFC 1321, RFC 2104 and RFC 2195", async (t) => {
  await t.step("RFC 1321 test suite", () => {
    assert.equal(hex(md5(enc.encode(""))), "d41d8cd98f00b204e9800998ecf8427e");
    assert.equal(hex(md5(enc.encode("abc"))), "900150983cd24fb0d6963f7d28e17f72");
    assert.equal(
      hex(
        md5(enc.encode("12345678901234567890123456789012345678901234567890123456789012345678901234567890")),
      ),
      "57edf4a22be3c955ac49da2e2107b67a",
    );
  });
  await t.step("RFC 2104 test vectors", () => {
    const cases: [Uint8Array, string, string][] = [
      [new Uint8Array(16).fill(0x0b), "Hi There", "9294727a3638bb1c13f48ef8158bfc9d"],
      [enc.encode("Jefe"), "what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"],
    ];
    for (const [key, data, want] of cases) {
      assert.equal(hex(hmacMd5FromStates(hmacMd5States(key), enc.encode(data))), want);
    }
  });
  await t.step("RFC 2195's example exchange", () => {
    const [secret] = parseSecrets(cramSecret("tanstaaftanstaaf"));
    assert.equal(secret.kind, "cram-md5");
    if (secret.kind !== "cram-md5") return;
    assert.equal(
      cramDigest(secret, "<1896.697170952@postoffice.reston.mci.net>"),
      "b913a602c7eda7a495b4e6e7334d3890",
    );
  });
});

Deno.test("ScramServer runs the example exchanges of RFC 5802 and RFC 7677", async (t) => {
  const cases = [
    {
      hash: "SHA-1" as const,
      salt: "QSXCR+Q6sek8bf92",
      nonce: "3rfcNHYJY1ZVvWVs7j",
      first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
      serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
      final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
      serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    },
    {
      hash: "SHA-256" as const,
      salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
      nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
      first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
      serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      final:
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    },
  ];
  for (const c of cases) {
    const stored = await scramSecret(c.hash, "pencil", 4096, fromBase64(c.salt)!);
    const server = () =>
      new ScramServer(c.hash, () => Promise.resolve(parseSecrets(stored)), 4096, () => c.nonce);
    await t.step(`SCRAM-${c.hash}`, async () => {
      const s = server();
      assert.deepEqual(await s.first(c.first), { kind: "challenge", text: c.serverFirst });
      assert.deepEqual(await s.final(c.final), { kind: "ok", text: c.serverFinal });
    });
    await t.step(`SCRAM-${c.hash}: a wrong proof, a wrong nonce, channel binding asked for`, async () => {
      let s = server();
      await s.first(c.first);
      const wrong = c.final.replace(/p=.(.*)$/, (_, rest) => `p=${rest.startsWith("A") ? "B" : "A"}${rest}`);
      assert.equal((await s.final(wrong)).kind, "fail");
      s = server();
      await s.first(c.first);
      assert.equal((await s.final(c.final.replace("r=", "r=x"))).kind, "fail");
      assert.equal((await server().first(c.first.replace("n,,", "p=tls-unique,,"))).kind, "fail");
      assert.equal((await server().first(c.first.replace("n,,", "n,a=other,"))).kind, "fail");
    });
  }
  await t.step("an unknown user gets a made-up salt, the same each time, and fails at the end", async () => {
    const s = () => new ScramServer("SHA-256", () => Promise.resolve(undefined), 4096, () => "n");
    const a = await s().first("n,,n=nobody,r=abc");
    const b = await s().first("n,,n=nobody,r=abc");
    assert.equal(a.kind, "challenge");
    assert.deepEqual(a, b);
  });
});

Deno.test("credential secrets: createmap writes them, each serves its mechanisms and verifies PLAIN", async (t) => {
  const entries = await hashCredentials(new Map([["alice", "s3cret pass"]]), {
    iterations: 1000,
    scramIterations: 4096,
    kinds: ["plain", "scram-sha-1", "scram-sha-256", "cram-md5"],
  });
  const value = entries.get("alice")!;
  const secrets = parseSecrets(value);
  await t.step("four secrets, none of them the password", () => {
    assert.equal(secrets.length, 4);
    assert.ok(!value.includes("s3cret"));
    assert.deepEqual(
      [...mechanismsServed(secrets)].sort(),
      ["CRAM-MD5", "LOGIN", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"],
    );
  });
  await t.step("each form on its own checks a password sent in the clear", async () => {
    for (const s of secrets) {
      assert.equal(await verifyPlain("s3cret pass", [s]), true, s.kind);
      assert.equal(await verifyPlain("s3cret", [s]), false, s.kind);
    }
  });
  await t.step("a value that already is a list of secrets is kept", async () => {
    assert.equal((await hashCredentials(new Map([["alice", value]]))).get("alice"), value);
  });
  await t.step("the default leaves CRAM-MD5 out", async () => {
    const d = await hashCredentials(new Map([["bob", "x"]]), { iterations: 1000, scramIterations: 4096 });
    assert.deepEqual([...mechanismsServed(parseSecrets(d.get("bob")!))].sort(), [
      "LOGIN",
      "PLAIN",
      "SCRAM-SHA-1",
      "SCRAM-SHA-256",
    ]);
  });
});

Deno.test("the Cyrus SASL flags choose which mechanisms are offered", async (t) => {
  const all = ["scram-sha-256", "scram-sha-1", "cram-md5", "plain", "login", "digest-md5"];
  const cases: [string[], string[]][] = [
    [[], ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"]],
    [["noplaintext"], ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"]],
    [["noactive"], ["SCRAM-SHA-256", "SCRAM-SHA-1"]],
    [["mutual_auth"], ["SCRAM-SHA-256", "SCRAM-SHA-1"]],
    [["noanonymous"], ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"]],
    [["pass_credentials"], ["PLAIN", "LOGIN"]],
    [["nodictionary"], []],
    [["forward_secrecy"], []],
    [["noplaintext", "allow_plaintext"], ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"]],
  ];
  for (const [flags, want] of cases) {
    await t.step(
      flags.join(", ") || "no flags",
      () => assert.deepEqual(chooseMechanisms(all, flags).offered, want),
    );
  }
  await t.step("DIGEST-MD5 is accepted and reported as not offered", () => {
    const c = chooseMechanisms(["digest-md5", "cram-md5"], ["noplaintext"]);
    assert.deepEqual(c.offered, ["CRAM-MD5"]);
    assert.match(c.notes.join("\n"), /DIGEST-MD5 is not offered: historic \(RFC 6331\)/);
  });
  await t.step("a mechanism not every user of the map can use is left out", () => {
    const c = chooseMechanisms(all, [], new Set(["PLAIN", "LOGIN", "SCRAM-SHA-256"]));
    assert.deepEqual(c.offered, ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);
    assert.match(c.notes.join("\n"), /CRAM-MD5 is not offered: not every user/);
  });
});

/** A credentials map (text) for alice and bob with every secret form, cheap iterations. */
async function credentialsMap(): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "smtps_sasl_" });
  const entries = await hashCredentials(new Map([["alice", "wonder land"], ["bob", "builder"]]), {
    iterations: 1000,
    scramIterations: 4096,
    kinds: ["plain", "scram-sha-1", "scram-sha-256", "cram-md5"],
  });
  const file = `${dir}/auth.txt`;
  await Deno.writeTextFile(file, [...entries].map(([u, v]) => `${u} ${v}`).join("\n") + "\n");
  return { dir, file };
}

function authConfig(map_file: string, more: Partial<SmtpsAuthConfig> = {}): SmtpsAuthConfig {
  return {
    map_file,
    mechanisms: ["scram-sha-256", "scram-sha-1", "cram-md5", "plain", "login"],
    trusted_mechs: ["scram-sha-256", "cram-md5"],
    max_failures: 5,
    failure_delay: 10,
    flags: [],
    ...more,
  };
}

async function withServer(
  auth: SmtpsAuthConfig,
  dir: string,
  fn: (s: Smtps) => Promise<void>,
): Promise<void> {
  const s = await startSmtps({ auth }, {}, { read: [dir] });
  try {
    await fn(s);
  } finally {
    await s.stop();
  }
}

/** Runs a foreign program; its exit code and output (stdout and stderr together). */
async function run(cmd: string, args: string[], input = ""): Promise<{ code: number; out: string }> {
  const p = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
  const w = p.stdin.getWriter();
  await w.write(enc.encode(input));
  await w.close();
  const o = await p.output();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

// By absolute path: the test task may run these only so, and PATH may find another python3 first (pyenv).
const GSASL = "/usr/bin/gsasl";
const PYTHON = "/usr/bin/python3";

const gsasl = (port: number, mechanism: string, user: string, password: string) =>
  run(GSASL, [
    "--smtp",
    `--connect=127.0.0.1:${port}`,
    "--no-starttls",
    `--mechanism=${mechanism}`,
    `--authentication-id=${user}`,
    `--password=${password}`,
    "--hostname=mx.test",
    "--service=smtp",
    "--quiet",
  ]);

Deno.test("smtps offers SCRAM and CRAM-MD5 without TLS, and foreign clients log in with them", async (t) => {
  const { dir, file } = await credentialsMap();
  try {
    await withServer(authConfig(file), dir, async (s) => {
      await t.step("EHLO without TLS lists only the mechanisms that send no password", async () => {
        const c = await SmtpClient.connect(s.port);
        try {
          const [, ehlo] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
          assert.equal(ehlo.lines.at(-1), "250 AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5");
          await runDialogue(c, [
            ["AUTH PLAIN AGFsaWNlAHdvbmRlciBsYW5k", "538 5.7.11"],
            ["AUTH DIGEST-MD5", "504 5.5.4"],
          ]);
        } finally {
          c.close();
        }
      });
      if (haveTool(GSASL)) {
        for (const mechanism of ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"]) {
          await t.step(`gsasl logs in with ${mechanism}; a wrong password is refused`, async () => {
            const good = await gsasl(s.port, mechanism, "alice", "wonder land");
            assert.equal(good.code, 0, good.out);
            const bad = await gsasl(s.port, mechanism, "alice", "wonderland");
            assert.notEqual(bad.code, 0, bad.out);
            const unknown = await gsasl(s.port, mechanism, "mallory", "x");
            assert.notEqual(unknown.code, 0, unknown.out);
          });
        }
      }
      if (haveTool(PYTHON)) {
        await t.step("Python's smtplib logs in with CRAM-MD5 (its first choice)", async () => {
          const script = `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", ${s.port})
s.ehlo("client.example")
try:
    code, text = s.login(sys.argv[1], sys.argv[2])
    print(code, text.decode())
except smtplib.SMTPAuthenticationError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
`;
          const ok = await run(PYTHON, ["-c", script, "bob", "builder"]);
          assert.equal(ok.out.trim(), "235 2.7.0 Authentication successful", ok.out);
          const bad = await run(PYTHON, ["-c", script, "bob", "wrong"]);
          assert.equal(bad.out.trim(), "535 5.7.8 Authentication credentials invalid", bad.out);
        });
      }
    });
    await t.step("noplaintext leaves PLAIN and LOGIN out even under allow_plaintext", async () => {
      await withServer(authConfig(file, { flags: ["noplaintext", "allow_plaintext"] }), dir, async (s) => {
        const c = await SmtpClient.connect(s.port);
        try {
          const [, ehlo] = await runDialogue(c, [[null, 220], ["EHLO client.example", 250]]);
          assert.equal(ehlo.lines.at(-1), "250 AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5");
          await runDialogue(c, [["AUTH PLAIN AGFsaWNlAHdvbmRlciBsYW5k", "504 5.5.4"]]);
        } finally {
          c.close();
        }
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
