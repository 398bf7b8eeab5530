// The local delivery agent's parts without a socket: CRLF to LF conversion, unique Maildir names, the
// users map, +detail folders, delivering a spool file into new/ (and nothing when that fails), stale tmp/
// files, and the quota's byte count. Real files in a temporary directory.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cleanTmp,
  deliverInto,
  ensureMaildir,
  folderFor,
  sizeFromName,
  UniqueNames,
} from "../components/lda/maildir.ts";
import { maildirSize, QuotaTracker } from "../components/lda/quota.ts";
import { CrlfToLf } from "../components/lda/spool.ts";
import { isFolderDetail, LocalUsers, parseQuota, parseUsersText } from "../components/lda/users.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "smx-lda-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("CrlfToLf turns CRLF into LF wherever the chunks split, and keeps lone CRs", async (t) => {
  const cases: { label: string; chunks: string[]; want: string }[] = [
    { label: "one chunk", chunks: ["a\r\nb\r\n"], want: "a\nb\n" },
    { label: "split between CR and LF", chunks: ["a\r", "\nb\r", "\n"], want: "a\nb\n" },
    { label: "a lone CR inside a line", chunks: ["a\rb\r\n"], want: "a\rb\n" },
    { label: "a lone CR at a chunk end", chunks: ["a\r", "b"], want: "a\rb" },
    { label: "a CR at the very end", chunks: ["a\r"], want: "a\r" },
    { label: "an empty chunk after a CR", chunks: ["a\r", "", "\n"], want: "a\n" },
    { label: "CR CR LF", chunks: ["\r\r\n"], want: "\r\n" },
    { label: "bare LFs stay", chunks: ["a\nb\n"], want: "a\nb\n" },
  ];
  for (const c of cases) {
    await t.step(c.label, () => {
      const lf = new CrlfToLf();
      const parts = [...c.chunks.flatMap((s) => lf.feed(enc.encode(s))), ...lf.end()];
      assert.equal(parts.map((p) => dec.decode(p)).join(""), c.want);
    });
  }
});

Deno.test("UniqueNames gives distinct names with the host escaped", () => {
  const names = new UniqueNames("mx/1:a", () => 1_700_000_000_123, "abcd");
  assert.equal(names.next(), "1700000000.RabcdQ1.mx\\0571\\072a");
  const many = new Set(Array.from({ length: 10_000 }, () => names.next()));
  assert.equal(many.size, 10_000);
  const a = new UniqueNames("h").next();
  const b = new UniqueNames("h").next();
  assert.notEqual(a, b, "two processes in the same second draw different random parts");
  assert.equal(sizeFromName("1.RxQ1.h,S=1234"), 1234);
  assert.equal(sizeFromName("1.RxQ1.h:2,S"), undefined);
});

Deno.test("parseUsersText() reads users with or without a quota and refuses bad lines", async (t) => {
  const users = parseUsersText("# users\nDemo\t100MB\nbob\nquota0 0\n\nnone -\n", "users");
  assert.deepEqual([...users.values()], [
    { name: "demo", quota: 100 * 1024 * 1024 },
    { name: "bob", quota: 0 },
    { name: "quota0", quota: 0 },
    { name: "none", quota: 0 },
  ]);
  const bad: { label: string; text: string; error: RegExp }[] = [
    { label: "a slash in a name", text: "a/b 1MB\n", error: /^users:1: bad user name "a\/b"/ },
    { label: "a leading dot", text: "ok\n..\n", error: /^users:2: bad user name "\.\."/ },
    { label: "a plus", text: "a+b\n", error: /bad user name "a\+b"/ },
    { label: "a bad quota", text: "a lots\n", error: /^users:1: bad quota for a/ },
    { label: "extra words", text: "a 1MB x\n", error: /^users:1: bad quota for a/ },
    { label: "a duplicate", text: "a\nA\n", error: /^users:2: duplicate user "A"/ },
  ];
  for (const c of bad) {
    await t.step(c.label, () => assert.throws(() => parseUsersText(c.text, "users"), { message: c.error }));
  }
  assert.equal(parseQuota("1KB"), 1024);
  assert.equal(parseQuota("-5"), undefined);
});

Deno.test("a +detail names a folder only when it cannot leave the Maildir", async (t) => {
  const cases: [string, boolean][] = [
    ["work", true],
    ["lists.deno", true],
    ["Mixed-Case_1", true],
    ["", false],
    [".", false],
    ["../../etc", false],
    ["a/b", false],
    ["a\\b", false],
    ["tab\there", false],
  ];
  for (const [detail, ok] of cases) {
    await t.step(JSON.stringify(detail), () => assert.equal(isFolderDetail(detail), ok));
  }
});

Deno.test("LocalUsers.resolve() finds users, user+detail and postmaster", async () => {
  const listed = parseUsersText("demo\nmail-admin\n", "users");
  const users = new LocalUsers(listed, "/nonexistent", "mail-admin");
  const cases: [string, unknown][] = [
    ["demo", { user: { name: "demo", quota: 0 } }],
    ["DEMO", { user: { name: "demo", quota: 0 } }],
    ["demo+work", { user: { name: "demo", quota: 0 }, detail: "work" }],
    ["demo+a+b", { user: { name: "demo", quota: 0 }, detail: "a+b" }],
    ["Postmaster", { user: { name: "mail-admin", quota: 0 } }],
    ["nobody", undefined],
    ["nobody+demo", undefined],
    ['"demo x"', undefined],
    ["../demo", undefined],
  ];
  for (const [local, want] of cases) assert.deepEqual(await users.resolve(local), want, local);
});

Deno.test("without a users map, the users are the Maildirs that exist", async () => {
  await withDir(async (dir) => {
    await ensureMaildir(join(dir, "alice", "Maildir"));
    await Deno.mkdir(join(dir, "nomaildir"));
    const users = new LocalUsers(undefined, dir);
    assert.deepEqual(await users.resolve("alice+x"), { user: { name: "alice", quota: 0 }, detail: "x" });
    assert.equal(await users.resolve("nomaildir"), undefined);
    assert.equal(await users.resolve("postmaster"), undefined);
  });
});

Deno.test("deliverInto() moves a copy into new/, and leaves nothing in new/ when it fails", async () => {
  await withDir(async (dir) => {
    const box = join(dir, "Maildir");
    await ensureMaildir(box);
    const spool = join(box, "tmp", "spool");
    await Deno.writeTextFile(spool, "Subject: x\n\nbody\n");
    const names = new UniqueNames("host");
    const path = await deliverInto(box, spool, 17, names);
    assert.match(path, /\/new\/\d+\.R[0-9a-f]{16}Q1\.host,S=17$/);
    assert.equal(await Deno.readTextFile(path), "Subject: x\n\nbody\n");
    assert.deepEqual(await listDir(join(box, "tmp")), ["spool"], "the link in tmp/ was renamed away");

    // A folder whose new/ is missing: the rename fails, nothing is left behind in its tmp/.
    const broken = join(box, ".broken");
    await Deno.mkdir(join(broken, "tmp"), { recursive: true });
    await assert.rejects(deliverInto(broken, spool, 17, names));
    assert.deepEqual(await listDir(join(broken, "tmp")), []);
    assert.deepEqual(await listDir(join(box, "new")), [path.slice(path.lastIndexOf("/") + 1)]);
  });
});

Deno.test("folderFor() uses .detail when it is a Maildir folder, else the inbox", async () => {
  await withDir(async (dir) => {
    await ensureMaildir(join(dir, ".work"));
    await Deno.mkdir(join(dir, ".half")); // no new/: not a folder
    assert.deepEqual(await folderFor(dir, "work"), { dir: join(dir, ".work"), folder: ".work" });
    assert.deepEqual(await folderFor(dir, "half"), { dir, folder: "INBOX" });
    assert.deepEqual(await folderFor(dir, "none"), { dir, folder: "INBOX" });
    assert.deepEqual(await folderFor(dir), { dir, folder: "INBOX" });
  });
});

Deno.test("cleanTmp() removes only tmp/ files older than 36 hours", async () => {
  await withDir(async (dir) => {
    await ensureMaildir(dir);
    await Deno.writeTextFile(join(dir, "tmp", "old"), "x");
    await Deno.writeTextFile(join(dir, "tmp", "fresh"), "x");
    const now = Date.now();
    const old = new Date(now - 37 * 3600 * 1000);
    await Deno.utime(join(dir, "tmp", "old"), old, old);
    assert.equal(await cleanTmp(dir, now), 1);
    assert.deepEqual(await listDir(join(dir, "tmp")), ["fresh"]);
  });
});

Deno.test("the quota counts new/ and cur/ of the inbox and folders, once per interval", async () => {
  await withDir(async (dir) => {
    await ensureMaildir(dir);
    await ensureMaildir(join(dir, ".work"));
    await Deno.writeTextFile(join(dir, "new", "1.a.h,S=100"), "ignored: the name says 100");
    await Deno.writeTextFile(join(dir, "cur", "2.b.h:2,S"), "12345"); // no size in the name: stat
    await Deno.writeTextFile(join(dir, ".work", "cur", "3.c.h,S=50:2,S"), "");
    await Deno.writeTextFile(join(dir, "tmp", "4.d.h,S=999"), ""); // tmp/ is not counted
    assert.equal(await maildirSize(dir), 155);
    assert.equal(await maildirSize(join(dir, "missing")), 0);

    let now = 0;
    const quota = new QuotaTracker(() => now, 1000);
    assert.equal(await quota.fits("u", dir, 200, 45), true);
    assert.equal(await quota.fits("u", dir, 200, 46), false);
    assert.equal(await quota.fits("u", dir, 0, 10 ** 12), true, "0 is no quota");
    quota.add("u", 40);
    assert.equal(await quota.usage("u", dir), 195, "deliveries are added to the count");
    now = 1000;
    assert.equal(await quota.usage("u", dir), 155, "recounted after the interval");
  });
});
