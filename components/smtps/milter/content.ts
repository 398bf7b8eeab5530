import { fileChunks } from "../../util/file_chunks.ts";
// A stored message as milters see it and change it: the header fields (name, value without the colon,
// each field's raw bytes kept so untouched fields are written back byte for byte) and where the body
// starts; the header changes a milter asks for (add, insert at an index, change or delete the n-th field
// of a name), each checked before it is taken: a malformed field name or value (a colon or control in
// the name, a bare CR, a continuation line without leading white space, an empty line, a line over 998
// octets) is refused with the reason. Header text is held as binary strings (one char per byte), so
// bytes that are no UTF-8 survive untouched. Pure, except readContent() which reads the message file.

/** One header field: `raw` is the whole field as stored (folds and CRLF included). */
export interface HeaderField {
  name: string;
  /** The text after the colon, folds kept as CRLF, leading white space kept. */
  value: string;
  raw: string;
}

export interface Content {
  headers: HeaderField[];
  /** The byte offset of the body (after the empty line), or the file's size when there is none. */
  bodyOffset: number;
  /** True when an empty line separated the header from the body. */
  separator: boolean;
}

const encoder = new TextEncoder();
const MAX_HEADER_SECTION = 8 * 1024 * 1024;

/** Reads the header section of the message file at `path`, whose content starts at byte `start`. */
export async function readContent(path: string, start = 0): Promise<Content> {
  const absolute = (c: Content): Content => ({ ...c, bodyOffset: c.bodyOffset + start });
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of fileChunks(path, start)) {
    chunks.push(chunk);
    total += chunk.length;
    const joined = join(chunks);
    const end = headerEnd(joined);
    if (end !== undefined || total > MAX_HEADER_SECTION) return absolute(parseHeaders(joined, end));
  }
  const all = join(chunks);
  return absolute(parseHeaders(all, headerEnd(all)));
}

function join(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  chunks.splice(0, chunks.length, out);
  return out;
}

/** The offset just past the empty line ending the header section (CRLF CRLF), if present. */
function headerEnd(bytes: Uint8Array): number | undefined {
  if (bytes[0] === 0x0d && bytes[1] === 0x0a) return 2;
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a && bytes[i + 2] === 0x0d && bytes[i + 3] === 0x0a) {
      return i + 4;
    }
  }
  return undefined;
}

/** Splits the header section into fields; a line that is no field ends it (the body starts there). */
export function parseHeaders(bytes: Uint8Array, end: number | undefined): Content {
  const sectionEnd = end === undefined ? Math.min(bytes.length, MAX_HEADER_SECTION) : end - 2;
  const text = binary(bytes.subarray(0, sectionEnd));
  const headers: HeaderField[] = [];
  let offset = 0; // in bytes
  const lines = text.split(/(?<=\r\n)/);
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0 || !/^[\x21-\x39\x3b-\x7e]+$/.test(line.slice(0, colon)) || !line.endsWith("\r\n")) {
      // Not a field: the body starts here (no empty line before it).
      return { headers, bodyOffset: offset, separator: false };
    }
    let raw = line;
    i++;
    while (i < lines.length && /^[ \t]/.test(lines[i]) && lines[i].endsWith("\r\n")) raw += lines[i++];
    headers.push({ name: line.slice(0, colon), value: raw.slice(colon + 1, -2), raw });
    offset += raw.length;
  }
  if (end === undefined) return { headers, bodyOffset: offset, separator: false };
  return { headers, bodyOffset: end, separator: true };
}

/** A field's value as a milter gets it: folds as LF, leading white space kept only if it asked for it. */
export function milterValue(field: HeaderField, leadingSpace: boolean): string {
  const value = field.value.replaceAll("\r\n", "\n");
  return leadingSpace ? value : value.replace(/^[ \t]+/, "");
}

/** Builds a field from a milter's name and value; a string saying why when it is malformed. */
export function newField(name: string, text: string, leadingSpace: boolean): HeaderField | string {
  const value = binary(encoder.encode(text));
  if (!/^[\x21-\x39\x3b-\x7e]{1,200}$/.test(name)) {
    return `bad header name ${JSON.stringify(name.slice(0, 60))}`;
  }
  if (/\r(?!\n)/.test(value)) return `bare CR in the value of ${name}`;
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(value)) return `control character in the value of ${name}`;
  const lines = value.replaceAll("\r\n", "\n").split("\n");
  for (const [i, line] of lines.entries()) {
    if (i > 0 && !/^[ \t]/.test(line)) return `continuation line without leading white space in ${name}`;
    if (i > 0 && line.trim() === "") return `empty continuation line in ${name}`;
  }
  const v = leadingSpace ? lines.join("\r\n") : ` ${lines.join("\r\n")}`;
  const raw = `${name}:${v}\r\n`;
  if (raw.split("\r\n").some((l) => l.length > 998)) {
    return `line over 998 octets in ${name}`;
  }
  return { name, value: v, raw };
}

/** The position of the `index`-th (1-based) field named `name` (case-insensitive), or -1. */
export function nthField(headers: HeaderField[], name: string, index: number): number {
  let seen = 0;
  const lower = name.toLowerCase();
  for (const [i, h] of headers.entries()) {
    if (h.name.toLowerCase() === lower && ++seen === Math.max(index, 1)) return i;
  }
  return -1;
}

/** Bytes as a binary string (one char per byte, 0-255). */
export function binary(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return out;
}

/** A binary string back to its bytes. */
export function bytesOf(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
