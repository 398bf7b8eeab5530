// The lda section of smx.conf: read into Config.lda with its defaults, absent when the section is, printed
// back so that it parses to the same config, and refused where it would clash with an smtps socket or name
// an option it does not have.

import assert from "node:assert/strict";
import { ConfigError, formatConfig, parseConfig } from "../config/mod.ts";
import { defaultLda } from "../config/defaults.ts";

const parse = (text: string) => parseConfig(text, "t.conf");

Deno.test("parseConfig() reads the lda section over its defaults", async (t) => {
  await t.step("no section, no lda", () => assert.equal(parse("").lda, undefined));

  await t.step("an empty section gives the defaults, the hostname included", () => {
    assert.deepEqual(parse('hostname = "mx.example";\nlda { }').lda, defaultLda("mx.example"));
    assert.deepEqual(defaultLda().listen_socket, [{ type: "inet", address: "127.0.0.1", port: 2424 }]);
    assert.equal(defaultLda().mail_root, "var/mail");
  });

  await t.step("every option", () => {
    const lda = parse(`map users { type = hash; file = "/etc/smx/users"; }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = 24; }
  listen_socket { type = inet; address = ::1; port = 24; }
  hostname = "box.example";
  mail_root = "/srv/mail";
  local_user_map = users;
  postmaster = admin;
  io_timeout = 2m;
  max_message_size = 20MB;
  max_threads = 8;
}`).lda!;
    assert.deepEqual(lda.listen_socket, [
      { type: "inet", address: "127.0.0.1", port: 24 },
      { type: "inet", address: "::1", port: 24 },
    ]);
    assert.equal(lda.hostname, "box.example");
    assert.equal(lda.mail_root, "/srv/mail");
    assert.equal(lda.local_user_map?.file, "/etc/smx/users");
    assert.equal(lda.local_user_map?.name, "users");
    assert.equal(lda.postmaster, "admin");
    assert.deepEqual([lda.io_timeout, lda.max_message_size, lda.max_threads], [120_000, 20 * 1024 * 1024, 8]);
  });

  await t.step("an inline users map", () => {
    const lda = parse('lda { local_user_map { type = hash; file = "u"; } }').lda!;
    assert.equal(lda.local_user_map?.file, "u");
  });
});

Deno.test("formatConfig() prints the lda section so that it parses back the same", () => {
  const text = `map users { type = hash; file = "u"; }
smtps { listen_socket { type = inet; address = 127.0.0.1; port = 2525; } }
lda {
  listen_socket { type = inet; address = 127.0.0.1; port = 2424; }
  mail_root = "var/mail";
  local_user_map = users;
  postmaster = demo;
}`;
  const config = parse(text);
  const printed = formatConfig(config);
  assert.match(printed, /\nlda \{\n/);
  assert.match(printed, /\n {2}local_user_map = users;\n/);
  assert.deepEqual(parse(printed), config);
  const without = parse("");
  assert.doesNotMatch(formatConfig(without), /\nlda \{/);
  assert.deepEqual(parse(formatConfig(without)), without);
});

Deno.test("parseConfig() refuses an lda section that clashes or names what it lacks", async (t) => {
  const cases: { label: string; text: string; error: RegExp }[] = [
    {
      label: "the lda on an smtps socket",
      text: `smtps { listen_socket { type = inet; address = 127.0.0.1; port = 2525; } }
lda {
  listen_socket { type = inet; address = 0.0.0.0; port = 2525; }
}`,
      error: /^t\.conf:3:3: listen socket 0\.0\.0\.0:2525 of lda is already used by smtps smtps/,
    },
    {
      label: "an unknown option",
      text: "lda { mailbox_root = x; }",
      error: /^t\.conf:1:7: unknown option mailbox_root in section lda, expected one of /,
    },
    {
      label: "an undeclared users map",
      text: "lda { local_user_map = nosuch; }",
      error: /undeclared map nosuch for local_user_map/,
    },
    {
      label: "two lda sections",
      text: "lda { }\nlda { }",
      error: /^t\.conf:2:1: duplicate section lda/,
    },
  ];
  for (const c of cases) {
    await t.step(c.label, () => {
      assert.throws(() => parse(c.text), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, c.error);
        return true;
      });
    });
  }
});
