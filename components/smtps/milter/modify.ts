// Carries out what one milter changed at end of message, as one step on the stored content before it is
// committed: header fields added, inserted, changed or deleted; the body replaced; recipients added or
// removed and the sender changed in the transaction; the quarantine reason kept (the message is held).
// A malformed field or address is refused and logged, the rest still applies. The file is rewritten
// (MessageFile.replace) only when its header or body changed. Touches: the message file.

import { parsePath } from "../../mail/address.ts";
import { log } from "../../util/log.ts";
import type { ChunkedMessage, Transaction } from "../transaction.ts";
import { bytesOf, type Content, type HeaderField, newField, nthField } from "./content.ts";
import type { Change, Milter } from "./milter.ts";
import { fileChunks } from "../../util/file_chunks.ts";

const COMPONENT = "smtps";

/** Applies `changes` of `milter` to the message `m` of transaction `t`; resolves the quarantine reason. */
export async function applyChanges(
  t: Transaction,
  m: ChunkedMessage,
  content: Content,
  changes: Change[],
  milter: Milter,
): Promise<{ quarantine?: string }> {
  const refuse = (why: string) => log.warn(COMPONENT, `${m.id}: milter ${milter.name}: refused ${why}`);
  const headers = [...content.headers];
  let headersChanged = false;
  const body: Uint8Array[] = [];
  let bodyReplaced = false;
  let quarantine: string | undefined;
  const utf8 = t.mail.smtputf8 === true;
  const field = (name: string, value: string): HeaderField | undefined => {
    const f = newField(name, value, milter.leadingSpace);
    if (typeof f === "string") return void refuse(`header change: ${f}`);
    return f;
  };
  for (const c of changes) {
    switch (c.kind) {
      case "add_header": {
        const f = field(c.name, c.value);
        if (f) headers.push(f), headersChanged = true;
        break;
      }
      case "insert_header": {
        const f = field(c.name, c.value);
        if (f) headers.splice(Math.min(c.index, headers.length), 0, f), headersChanged = true;
        break;
      }
      case "change_header": {
        const at = nthField(headers, c.name, c.index);
        if (c.value === "") {
          if (at >= 0) headers.splice(at, 1), headersChanged = true;
          break;
        }
        const f = field(c.name, c.value);
        if (!f) break;
        if (at >= 0) headers[at] = f;
        else headers.push(f); // no such field: it is added (as sendmail does)
        headersChanged = true;
        break;
      }
      case "add_rcpt": {
        const p = parsePath(bracketed(c.address), { utf8 });
        if (!p.ok) {
          refuse(`add recipient ${JSON.stringify(c.address.slice(0, 100))}: ${p.reason}`);
          break;
        }
        if (!t.recipients.some((r) => r.address === p.mailbox.address)) {
          t.addRecipient({ address: p.mailbox.address });
          log.info(COMPONENT, `${m.id}: milter ${milter.name}: added recipient <${p.mailbox.address}>`);
        }
        break;
      }
      case "del_rcpt": {
        const p = parsePath(bracketed(c.address), { utf8, allowPostmaster: true });
        if (!p.ok) {
          refuse(`delete recipient ${JSON.stringify(c.address.slice(0, 100))}: ${p.reason}`);
          break;
        }
        const before = t.recipients.length;
        t.removeRecipient(p.mailbox.address);
        if (t.recipients.length < before) {
          log.info(COMPONENT, `${m.id}: milter ${milter.name}: removed recipient <${p.mailbox.address}>`);
        }
        break;
      }
      case "change_from": {
        const p = parsePath(bracketed(c.address), { utf8, allowNull: true });
        if (!p.ok) {
          refuse(`change sender ${JSON.stringify(c.address.slice(0, 100))}: ${p.reason}`);
          break;
        }
        log.info(
          COMPONENT,
          `${m.id}: milter ${milter.name}: sender <${t.sender}> changed to <${p.mailbox.address}>`,
        );
        t.mail.sender = p.mailbox.address;
        break;
      }
      case "replace_body":
        body.push(c.chunk);
        bodyReplaced = true;
        break;
      case "quarantine":
        quarantine = c.reason || "quarantined by a milter";
        log.info(COMPONENT, `${m.id}: milter ${milter.name}: quarantine: ${quarantine}`);
        break;
    }
  }
  if (headersChanged || bodyReplaced) {
    await m.file.replace(rewritten(m.file.path, content, headers, bodyReplaced ? crlf(body) : undefined));
  }
  return quarantine === undefined ? {} : { quarantine };
}

function bracketed(address: string): string {
  const a = address.trim();
  return a.startsWith("<") ? a : `<${a}>`;
}

/** The new content: the header fields, the empty line, and the new body or the old one from the file. */
async function* rewritten(
  path: string,
  content: Content,
  headers: HeaderField[],
  body: Uint8Array | undefined,
): AsyncGenerator<Uint8Array> {
  yield bytesOf(headers.map((h) => h.raw).join(""));
  if (body) {
    yield new Uint8Array([0x0d, 0x0a]);
    yield body;
    return;
  }
  if (content.separator) yield new Uint8Array([0x0d, 0x0a]);
  yield* fileChunks(path, content.bodyOffset);
}

/** A replaced body with every line ending CRLF (milters may send bare LF). */
function crlf(chunks: Uint8Array[]): Uint8Array {
  const out: number[] = [];
  let prev = 0;
  for (const chunk of chunks) {
    for (const b of chunk) {
      if (b === 0x0a && prev !== 0x0d) out.push(0x0d);
      out.push(b);
      prev = b;
    }
  }
  return new Uint8Array(out);
}
