// The option reference: every option the parser accepts (config/schema.ts) has a description in
// config/option_docs.ts, every description names an option, the README sections it cites exist, and
// docs/options.md is what `deno task docs` generates now.

import assert from "node:assert/strict";
import { DEFAULT_SOCKET_MAP_TIMEOUT } from "../config/defaults.ts";
import { formatTime } from "../config/values.ts";
import { README_SECTIONS } from "../config/option_docs.ts";
import { optionRows, renderOptions, unusedDocs } from "../scripts/docs_options.ts";
import { normalized, PAGES, renderPage } from "../scripts/docs_pages.ts";

const name = (r: { section: string; option: string }) => (r.section ? `${r.section}.${r.option}` : r.option);

Deno.test("every option the parser accepts is described in config/option_docs.ts", () => {
  const missing = optionRows().filter((r) => r.doc === undefined).map(name);
  assert.deepEqual(
    missing,
    [],
    `options without a description: ${missing.join(", ")}; add a line for each to config/option_docs.ts ` +
      "(OPTION_DOCS), then run `deno task docs`",
  );
});

Deno.test("every description in config/option_docs.ts describes an option", () => {
  assert.deepEqual(
    unusedDocs(),
    [],
    "descriptions of options the schema no longer has: remove or rename them",
  );
});

Deno.test("every sendmail X README section the descriptions cite is named", () => {
  const cited = optionRows().map((r) => r.doc?.[0]).filter((s): s is string => !!s);
  const unknown = [...new Set(cited)].filter((s) => !(s in README_SECTIONS));
  assert.deepEqual(unknown, [], "add these to README_SECTIONS in config/option_docs.ts");
});

Deno.test("the option reference shows each default the built-in configuration has", () => {
  const rows = new Map(optionRows().map((r) => [name(r), r.default]));
  assert.deepEqual(rows.get("qmgr.retry_min_delay"), { code: "5m" });
  assert.deepEqual(rows.get("qmgr.min_disk_space"), { code: "64MB" });
  assert.deepEqual(rows.get("smtps.max_threads"), { code: "256" });
  assert.deepEqual(rows.get("smtps.auth.failure_delay"), { code: "1s" });
  assert.deepEqual(rows.get("smar.greylisting.netmask"), { code: "32" });
  assert.deepEqual(rows.get("lda.mail_root"), { code: '"var/mail"' });
  assert.equal(rows.get("smtps.tls.cert_file"), undefined);
  // Defaults the table states in words must agree with the code that applies them.
  assert.deepEqual(rows.get("map.timeout"), { words: `\`${formatTime(DEFAULT_SOCKET_MAP_TIMEOUT)}\`` });
});

Deno.test("docs/options.md is what `deno task docs` generates", async () => {
  const written = await Deno.readTextFile(new URL("../docs/options.md", import.meta.url));
  assert.ok(
    written === renderOptions(),
    "docs/options.md is stale: run `deno task docs` (it is generated from config/schema.ts, " +
      "config/defaults.ts and config/option_docs.ts)",
  );
});

Deno.test("the component pages' generated parts are current", async () => {
  for (const component of Object.keys(PAGES)) {
    const text = await Deno.readTextFile(new URL(`../docs/${component}.md`, import.meta.url));
    assert.ok(
      text.includes("<!-- BEGIN GENERATED: permissions -->"),
      `docs/${component}.md: no permissions part`,
    );
    assert.ok(text.includes("<!-- BEGIN GENERATED: options -->"), `docs/${component}.md: no options part`);
    assert.ok(
      normalized(text) === normalized(await renderPage(component, text)),
      `docs/${component}.md is stale: run \`deno task docs\` (its permissions come from ` +
        "components/mcp/permissions.ts, its options from config/schema.ts)",
    );
  }
});
