// The parts of mail authentication that need no MTA: the configuration sections, the protocol checks of
// the new messages, the header scan that finds forged Authentication-Results:, the key ring (start-up
// errors naming the file, `.domain` entries), the MCP's permission set for key files, and
// `deno task dkim-keygen`'s keys signing mail that dkimpy verifies (RSA and Ed25519).

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfig } from "../config/mod.ts";
import { formatConfig } from "../config/print.ts";
import { validateMessage } from "../components/protocol/validate.ts";
import { readHeaderFields } from "../components/smtps/mailauth/content.ts";
import { authservIdOf } from "../components/smtps/mailauth/verify.ts";
import { fromDomain } from "../components/smtps/mailauth/step.ts";
import { KeyRing } from "../components/smtps/mailauth/keys.ts";
import { computePermissions } from "../components/mcp/permissions.ts";
import { makeKeyPair } from "../scripts/dkim_keygen.ts";
import { dkimSign } from "mailauth";
import { dkimpyVerify, rsaKeyPair } from "./mailauth/fixtures.ts";

const CONF = (keys: string) =>
  `map dkimkeys { type = hash; file = ${JSON.stringify(keys)}; }
smtps MTA { authentication { flags = { spf, DKIM, dmarc }; authserv_id = "mx.example.org"; arc_seal { map = dkimkeys; } } }
smtps MSA { listen_socket { address = 127.0.0.1; port = 2587; } dkim_signing { map = dkimkeys; } }
`;

Deno.test("parseConfig() reads authentication and dkim_signing, and prints them back", () => {
  const c = parseConfig(CONF("/etc/smx/dkimkeys"), "smx.conf");
  const [mta, msa] = c.smtps;
  assert.deepEqual(mta.authentication?.flags, ["spf", "dkim", "dmarc"]);
  assert.equal(mta.authentication?.authserv_id, "mx.example.org");
  assert.equal(mta.authentication?.arc_seal?.map.file, "/etc/smx/dkimkeys");
  assert.equal(msa.dkim_signing?.map.name, "dkimkeys");
  assert.deepEqual(parseConfig(formatConfig(c), "smx.conf"), c);
  const dflt = parseConfig(`smtps MTA { hostname = mx.test; authentication { } }`, "x");
  assert.deepEqual(dflt.smtps[0].authentication, {
    flags: ["spf", "dkim", "dmarc", "arc"],
    authserv_id: "mx.test",
  });
});

Deno.test("parseConfig() refuses an unknown check and a key map that is not a hash file", () => {
  assert.throws(
    () => parseConfig(`smtps { authentication { flags = { spf, bimi }; } }`, "x"),
    /unknown value bimi/,
  );
  assert.throws(
    () =>
      parseConfig(
        `map k { type = socket; address = 127.0.0.1; port = 1; } smtps { dkim_signing { map = k; } }`,
        "x",
      ),
    /expected a hash map with a file/,
  );
  assert.throws(() => parseConfig(`smtps { dkim_signing { } }`, "x"), /missing option map/);
  assert.throws(
    () => parseConfig(`smtps { authentication { authserv_id = "mx; dkim=pass"; } }`, "x"),
    /bad authserv_id "mx; dkim=pass" in .*expected a host name/,
  );
});

Deno.test("validateMessage() checks the DNS and authentication messages", () => {
  const cases: [unknown, boolean][] = [
    [{ type: "smtps.dns_query", name: "example.org", rrtype: "TXT" }, true],
    [{ type: "smtps.dns_query", name: "example.org", rrtype: "ANY" }, false],
    [{
      type: "smar.dns_answer",
      name: "x",
      rrtype: "MX",
      answer: { kind: "answer", records: [{ exchange: "m", preference: 1 }] },
    }, true],
    [{ type: "smar.dns_answer", name: "x", rrtype: "A", answer: { kind: "answer", records: [1] } }, false],
    [{ type: "smar.dns_answer", name: "x", rrtype: "A", answer: { kind: "temp", reason: "t" } }, true],
    [{ type: "smar.dns_answer", name: "x", rrtype: "A", answer: { kind: "maybe" } }, false],
    [{ type: "smtps.check_auth", ip: "1.2.3.4", stage: "data", tags: ["dmarc:reject"] }, true],
    [{ type: "smtps.check_auth", ip: "1.2.3.4", stage: "rcpt", tags: [] }, false],
  ];
  for (const [body, ok] of cases) assert.equal(validateMessage(body) === undefined, ok, JSON.stringify(body));
});

Deno.test("readHeaderFields() finds folded fields of the header section only, with their byte ranges", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "m");
    const text =
      "Received: from x\r\n\tby y\r\nAuthentication-Results: mx.example.org (forged) 1;\r\n dkim=pass\r\n" +
      'From: "A, B" <a@Sub.Example.org>\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n';
    await Deno.writeTextFile(path, text);
    const fields = await readHeaderFields(path);
    assert.deepEqual(fields.map((f) => f.name), ["received", "authentication-results", "from"]);
    const ar = fields[1];
    assert.equal(
      text.slice(ar.start, ar.end),
      "Authentication-Results: mx.example.org (forged) 1;\r\n dkim=pass\r\n",
    );
    assert.equal(authservIdOf(ar.value), "mx.example.org");
    assert.equal(authservIdOf(' "MX.Example.ORG"; none'), "mx.example.org");
    assert.equal(fromDomain(fields), "sub.example.org");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KeyRing.load() names the file it cannot use; .domain entries sign subdomains as the parent", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = join(dir, "good.key");
    await Deno.writeTextFile(good, rsaKeyPair().privatePem);
    const small = join(dir, "small.key");
    await Deno.writeTextFile(small, rsaKeyPair(1024).privatePem);
    const map = join(dir, "keys");
    const spec = { name: "keys", type: "hash" as const, file: map };
    await Deno.writeTextFile(map, `example.org s1 ${good}\n.example.net s2 ${good}\n`);
    const ring = await KeyRing.load(spec);
    assert.equal(ring.find("Example.ORG")?.selector, "s1");
    assert.equal(ring.find("mail.example.org"), undefined);
    assert.deepEqual([ring.find("a.b.example.net")?.domain, ring.find("a.b.example.net")?.selector], [
      "example.net",
      "s2",
    ]);
    assert.equal(ring.find("example.net"), undefined);
    await Deno.writeTextFile(map, `example.org s1 ${join(dir, "missing.key")}\n`);
    await assert.rejects(KeyRing.load(spec), new RegExp(`Read DKIM key file ${join(dir, "missing.key")}`));
    await Deno.writeTextFile(map, `example.org s1 ${small}\n`);
    await assert.rejects(KeyRing.load(spec), /RSA key of 1024 bits, expected 2048 or more/);
    await Deno.writeTextFile(map, `example.org s1\n`);
    await assert.rejects(KeyRing.load(spec), /expected DOMAIN SELECTOR KEY_FILE/);
    await assert.rejects(KeyRing.load({ ...spec, file: join(dir, "nomap") }), /Read key map .*nomap/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("computePermissions() lets smtps read the key maps and exactly the key files they name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keys = join(dir, "dkimkeys");
    await Deno.writeTextFile(
      keys,
      `example.org s1 ${join(dir, "s1.key")}\nexample.net s2 ${join(dir, "s2.key")}\n`,
    );
    const sets = await computePermissions(parseConfig(CONF(keys), "x"), { resolvConf: "/dev/null" });
    const read = sets.smtps.read as string[];
    for (const f of [keys, join(dir, "s1.key"), join(dir, "s2.key")]) assert.ok(read.includes(f), f);
    assert.ok(!read.includes(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dkim-keygen's RSA and Ed25519 keys sign mail (mailauth) that dkimpy verifies", async () => {
  const msg = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nBody.\r\n";
  for (const type of ["rsa", "ed25519"] as const) {
    const { pem, txt } = makeKeyPair(type);
    const signed = await dkimSign(
      msg,
      {
        canonicalization: "relaxed/relaxed",
        signatureData: [{
          signingDomain: "example.org",
          selector: "s1",
          privateKey: pem,
          algorithm: `${type}-sha256`,
        }],
      } as unknown as Parameters<typeof dkimSign>[1],
    );
    assert.equal(await dkimpyVerify(signed.signatures + msg, txt), "pass", type);
  }
});
