// `deno task docs`: writes docs/options.md, the option reference generated from config/schema.ts,
// config/defaults.ts and config/option_docs.ts (scripts/docs_options.ts), and brings the generated parts
// of the component pages docs/<component>.md up to date (scripts/docs_pages.ts). Exits 1, writing
// nothing, when an option has no description. Writes only under docs/ (the task then runs `deno fmt docs`).

import { optionRows, renderOptions, unusedDocs } from "./docs_options.ts";
import { normalized, PAGES, renderPage } from "./docs_pages.ts";

const rows = optionRows();
const missing = rows.filter((r) => r.doc === undefined);
const unused = unusedDocs(rows);
for (const r of missing) {
  console.error(
    `docs: no description of ${r.section ? `${r.section}.` : ""}${r.option}: add it to config/option_docs.ts`,
  );
}
for (const key of unused) console.error(`docs: config/option_docs.ts describes ${key}, which no option is`);
if (missing.length > 0 || unused.length > 0) Deno.exit(1);
const path = new URL("../docs/options.md", import.meta.url);
await Deno.writeTextFile(path, renderOptions(rows));
console.log(`docs: wrote docs/options.md (${rows.length} options)`);
for (const component of Object.keys(PAGES)) {
  const page = new URL(`../docs/${component}.md`, import.meta.url);
  const text = await Deno.readTextFile(page);
  const next = await renderPage(component, text);
  if (normalized(next) !== normalized(text)) {
    await Deno.writeTextFile(page, next);
    console.log(`docs: updated docs/${component}.md`);
  }
}
