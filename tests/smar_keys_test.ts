// The access map lookup orders (sendmail X README 3.12.1) as case tables: client addresses, host and
// domain names, and mail addresses with and without a +detail, with the README's key forms.

import assert from "node:assert/strict";
import {
  addressKeys,
  addressParts,
  domainKeys,
  ipKeys,
  localForms,
  tagged,
} from "../components/smar/keys.ts";

Deno.test("ipKeys() tries A.B.C.D, A.B.C, A.B, A; IPv6 as written and canonical", async (t) => {
  const cases: [string, string[]][] = [
    ["192.168.0.1", ["192.168.0.1", "192.168.0", "192.168", "192"]],
    ["10.1.2.3", ["10.1.2.3", "10.1.2", "10.1", "10"]],
    ["::ffff:10.1.2.3", ["10.1.2.3", "10.1.2", "10.1", "10"]],
    ["2001:DB8:0:0::5", ["2001:db8:0:0::5", "2001:db8::5"]],
    ["2001:db8::5", ["2001:db8::5"]],
  ];
  for (const [ip, want] of cases) await t.step(ip, () => assert.deepEqual(ipKeys(ip), want));
});

Deno.test("domainKeys() tries the host, then each parent with a leading dot", async (t) => {
  const cases: [string, string[]][] = [
    ["host.sub.example.com", ["host.sub.example.com", ".sub.example.com", ".example.com", ".com"]],
    ["Sendmail.ORG.", ["sendmail.org", ".org"]],
    ["localhost", ["localhost"]],
    ["[192.0.2.1]", ["[192.0.2.1]"]],
    ["", []],
  ];
  for (const [domain, want] of cases) {
    await t.step(domain || "(empty)", () => assert.deepEqual(domainKeys(domain), want));
  }
});

Deno.test("addressParts() splits user, detail and domain at the delimiter", async (t) => {
  const cases: [string, string, ReturnType<typeof addressParts>][] = [
    ["user+detail@Example.COM", "+", {
      local: "user+detail",
      user: "user",
      detail: "detail",
      domain: "example.com",
    }],
    ["user+@example.com", "+", { local: "user+", user: "user", detail: "", domain: "example.com" }],
    ["user@example.com", "+", { local: "user", user: "user", detail: undefined, domain: "example.com" }],
    ["a+b+c@x", "+", { local: "a+b+c", user: "a", detail: "b+c", domain: "x" }],
    ["+list@x", "+", { local: "+list", user: "+list", detail: undefined, domain: "x" }],
    ["user-ext@x", "-", { local: "user-ext", user: "user", detail: "ext", domain: "x" }],
    ["postmaster", "+", { local: "postmaster", user: "postmaster", detail: undefined, domain: "" }],
  ];
  for (const [address, delimiter, want] of cases) {
    await t.step(`${address} (${delimiter})`, () => assert.deepEqual(addressParts(address, delimiter), want));
  }
});

Deno.test("localForms() gives +detail, user++, user+*, user* in the README's order", async (t) => {
  const p = (a: string) => addressParts(a);
  const cases: [string, boolean, string[]][] = [
    ["user+detail@x", false, ["user+detail", "user++", "user+*", "user*"]],
    ["user+@x", false, ["user+", "user+*", "user*"]],
    ["user@x", false, ["user*", "user"]],
    ["user+detail@x", true, ["user+detail", "user++", "user+*", "user*", "user"]],
  ];
  for (const [address, implicit, want] of cases) {
    await t.step(`${address}${implicit ? " implicitly matching detail" : ""}`, () => {
      assert.deepEqual(localForms(p(address), "+", implicit), want);
    });
  }
});

Deno.test("addressKeys() tries each domain key with the local-part forms, then the local part alone", async (t) => {
  const cases: [string, Parameters<typeof addressKeys>[1], string[]][] = [
    ["user+detail@host.sub.example.com", {}, [
      "user+detail@host.sub.example.com",
      "user++@host.sub.example.com",
      "user+*@host.sub.example.com",
      "user*@host.sub.example.com",
      "@host.sub.example.com",
      "user+detail@.sub.example.com",
      "user++@.sub.example.com",
      "user+*@.sub.example.com",
      "user*@.sub.example.com",
      "@.sub.example.com",
      "user+detail@.example.com",
      "user++@.example.com",
      "user+*@.example.com",
      "user*@.example.com",
      "@.example.com",
      "user+detail@.com",
      "user++@.com",
      "user+*@.com",
      "user*@.com",
      "@.com",
      "user+detail",
      "user++",
      "user+*",
      "user*",
    ]],
    ["spammer@example.com", {}, [
      "spammer*@example.com",
      "spammer@example.com",
      "@example.com",
      "spammer*@.com",
      "spammer@.com",
      "@.com",
      "spammer*",
      "spammer",
    ]],
    ["user+@example.com", {}, [
      "user+@example.com",
      "user+*@example.com",
      "user*@example.com",
      "@example.com",
      "user+@.com",
      "user+*@.com",
      "user*@.com",
      "@.com",
      "user+",
      "user+*",
      "user*",
    ]],
    ["user+detail@example.com", { implicitDetail: true, noLocalPart: true }, [
      "user+detail@example.com",
      "user++@example.com",
      "user+*@example.com",
      "user*@example.com",
      "user@example.com",
      "@example.com",
      "user+detail@.com",
      "user++@.com",
      "user+*@.com",
      "user*@.com",
      "user@.com",
      "@.com",
    ]],
    ["user-list@example", { delimiter: "-" }, [
      "user-list@example",
      "user--@example",
      "user-*@example",
      "user*@example",
      "@example",
      "user-list",
      "user--",
      "user-*",
      "user*",
    ]],
    ["root@[192.0.2.1]", {}, ["root*@[192.0.2.1]", "root@[192.0.2.1]", "@[192.0.2.1]", "root*", "root"]],
    ["", {}, ["<>"]],
    ["postmaster", {}, ["postmaster*", "postmaster"]],
  ];
  for (const [address, opts, want] of cases) {
    await t.step(address || "<>", () => assert.deepEqual(addressKeys(address, opts), want));
  }
});

Deno.test("tagged() puts the tag in front of every key", () => {
  assert.deepEqual(tagged("to", domainKeys("a.example")), ["to:a.example", "to:.example"]);
});
