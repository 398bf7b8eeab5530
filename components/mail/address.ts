// Mail addresses as SMTP carries them (RFC 5321 4.1.2, and RFC 6531 for SMTPUTF8): parses a reverse- or
// forward-path such as `<"john doe"@Example.COM>` into its canonical `local@domain` form (domain
// lower-cased, quotes only where the local part needs them), enforcing the length limits of RFC 5321
// 4.5.3.1 in octets. Non-ASCII (UTF-8) local parts and domain labels are accepted only when the caller
// allows them (the transaction asked for SMTPUTF8). Pure functions: no I/O. Used by smtps and the lda for
// MAIL/RCPT and by anything that needs to split or compare addresses.

import { isIPv4, isIPv6 } from "node:net";

/** RFC 5321 4.5.3.1 size limits, in octets. */
export const MAX_LOCAL_PART = 64;
export const MAX_DOMAIN = 255;
export const MAX_PATH = 256;

export interface Mailbox {
  /** Canonical `local@domain`; "" for the null path `<>`; "postmaster" for a bare `<postmaster>`. */
  address: string;
  /** The local part in canonical form (quoted only when it must be). */
  local: string;
  /** The domain lower-cased, or an address literal such as `[192.0.2.1]`; "" for `<>` and `<postmaster>`. */
  domain: string;
}

/**
 * Why a path was refused: its syntax, the path's length (RFC 5321 4.5.3.1.10: 501), the local part's or
 * domain's length (553: not allowed), or non-ASCII where SMTPUTF8 was not asked for.
 */
export type PathProblem = "syntax" | "path_too_long" | "too_long" | "utf8";

export type PathResult = { ok: true; mailbox: Mailbox } | { ok: false; reason: string; problem: PathProblem };

export interface PathOptions {
  /** Accept the null path `<>` (MAIL FROM). */
  allowNull?: boolean;
  /** Accept `<postmaster>` without a domain (RCPT TO, RFC 5321 4.5.1). */
  allowPostmaster?: boolean;
  /** Accept UTF-8 in the local part and domain labels (the transaction uses SMTPUTF8, RFC 6531). */
  utf8?: boolean;
}

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const SUBDOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
// RFC 6531 3.3: atext and sub-domains may also hold UTF8-non-ascii (C1 controls excluded here).
const UTF8_ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u00a0-\u{10ffff}]+$/u;
const UTF8_SUBDOMAIN =
  /^[A-Za-z0-9\u00a0-\u{10ffff}](?:[A-Za-z0-9\u00a0-\u{10ffff}-]*[A-Za-z0-9\u00a0-\u{10ffff}])?$/u;
// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
const encoder = new TextEncoder();

const fail = (reason: string, problem: PathProblem = "syntax"): PathResult => ({
  ok: false,
  reason,
  problem,
});

/** The length of `s` in octets once UTF-8 encoded (the unit of every SMTP limit). */
export function octets(s: string): number {
  return NON_ASCII.test(s) ? encoder.encode(s).length : s.length;
}

/** True when `s` holds a character outside US-ASCII. */
export function isNonAscii(s: string): boolean {
  return NON_ASCII.test(s);
}

/** True for a Dot-string: atoms of atext separated by single dots (UTF-8 atext when `utf8`). */
export function isDotString(s: string, utf8 = false): boolean {
  const atext = utf8 ? UTF8_ATEXT : ATEXT;
  return s.length > 0 && s.split(".").every((atom) => atext.test(atom));
}

/** True for a domain name made of LDH labels (no trailing dot); U-labels too when `utf8`. */
export function isDomainName(s: string, utf8 = false): boolean {
  const sub = utf8 ? UTF8_SUBDOMAIN : SUBDOMAIN;
  return s.length > 0 && octets(s) <= MAX_DOMAIN &&
    s.split(".").every((l) => octets(l) <= 63 && sub.test(l));
}

/** Parses an address literal `[1.2.3.4]` or `[IPv6:...]`; returns its canonical form or undefined. */
export function parseAddressLiteral(s: string): string | undefined {
  if (!s.startsWith("[") || !s.endsWith("]")) return undefined;
  const inner = s.slice(1, -1);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(inner) && isIPv4(inner)) return `[${inner}]`;
  if (/^ipv6:/i.test(inner) && isIPv6(inner.slice(5))) return `[IPv6:${inner.slice(5).toLowerCase()}]`;
  return undefined;
}

/** Decodes a Quoted-string (`"..."` with backslash pairs); undefined when malformed. */
function unquote(s: string, utf8: boolean): string | undefined {
  if (s.length < 2 || !s.startsWith('"') || !s.endsWith('"')) return undefined;
  const text = (c: number) => (c >= 32 && c <= 126) || (utf8 && c >= 0xa0);
  let out = "";
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c) {
      const n = s.charCodeAt(++i);
      if (i >= s.length - 1 || !text(n)) return undefined;
      out += s[i];
    } else if (c === 0x22 || !text(c)) return undefined;
    else out += s[i];
  }
  return out;
}

/** The canonical spelling of a local part: a Dot-string when possible, else a minimal Quoted-string. */
export function canonicalLocalPart(raw: string, utf8 = false): string {
  return isDotString(raw, utf8) ? raw : `"${raw.replace(/(["\\])/g, "\\$1")}"`;
}

/** Splits `local@domain` at the last `@` outside quotes; undefined when there is none. */
function splitMailbox(s: string): [string, string] | undefined {
  let quoted = false;
  let at = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === "\\") i++;
    else if (c === '"') quoted = !quoted;
    else if (c === "@" && !quoted) at = i;
  }
  return at < 0 ? undefined : [s.slice(0, at), s.slice(at + 1)];
}

/** Parses a Mailbox `local@domain` (no angle brackets) into canonical form. */
export function parseMailbox(s: string, utf8 = false): PathResult {
  const parts = splitMailbox(s);
  if (!parts) return fail("missing @domain");
  const [localText, domainText] = parts;
  let local: string;
  if (localText.startsWith('"')) {
    const raw = unquote(localText, utf8);
    if (raw === undefined) return fail("malformed quoted local part");
    local = canonicalLocalPart(raw, utf8);
  } else if (isDotString(localText, utf8)) local = localText;
  else return fail("malformed local part");
  if (octets(local) > MAX_LOCAL_PART) {
    return fail(`local part longer than ${MAX_LOCAL_PART} octets`, "too_long");
  }
  let domain: string;
  if (domainText.startsWith("[")) {
    const literal = parseAddressLiteral(domainText);
    if (!literal) return fail("malformed address literal");
    domain = literal;
  } else if (octets(domainText) > MAX_DOMAIN) {
    return fail(`domain longer than ${MAX_DOMAIN} octets`, "too_long");
  } else if (isDomainName(domainText, utf8)) domain = domainText.toLowerCase();
  else return fail("malformed domain");
  return { ok: true, mailbox: { address: `${local}@${domain}`, local, domain } };
}

/** Strips an `@a,@b:` source route (RFC 5321 4.1.2 A-d-l, accepted and ignored); undefined if malformed. */
function stripSourceRoute(s: string): string | undefined {
  if (!s.startsWith("@")) return s;
  const colon = s.indexOf(":");
  if (colon < 0) return undefined;
  const hops = s.slice(0, colon).split(",");
  const okHop = (h: string) =>
    h.startsWith("@") && (isDomainName(h.slice(1)) || parseAddressLiteral(h.slice(1)) !== undefined);
  if (!hops.every(okHop)) return undefined;
  return s.slice(colon + 1);
}

/** Parses a Reverse-path or Forward-path written with its angle brackets, e.g. `<user@example.com>`. */
export function parsePath(path: string, options: PathOptions = {}): PathResult {
  const nonAscii = isNonAscii(path);
  if (nonAscii && !options.utf8) return fail("non-ASCII local part or domain without SMTPUTF8", "utf8");
  if ((nonAscii ? octets(path) : path.length) > MAX_PATH) {
    return fail(`path longer than ${MAX_PATH} octets`, "path_too_long");
  }
  if (!path.startsWith("<") || !path.endsWith(">")) return fail("path not enclosed in <>");
  const inner = path.slice(1, -1);
  if (inner === "") {
    return options.allowNull
      ? { ok: true, mailbox: { address: "", local: "", domain: "" } }
      : fail("null path not allowed here");
  }
  if (options.allowPostmaster && inner.toLowerCase() === "postmaster") {
    return { ok: true, mailbox: { address: "postmaster", local: "postmaster", domain: "" } };
  }
  const mailbox = stripSourceRoute(inner);
  if (mailbox === undefined) return fail("malformed source route");
  return parseMailbox(mailbox, options.utf8);
}

/**
 * Finds where a path written after `FROM:` / `TO:` ends: the `>` that closes the leading `<`, skipping
 * quoted strings. Returns the index just past it, or -1 when the text does not start with a whole path.
 */
export function pathEnd(s: string): number {
  if (!s.startsWith("<")) return -1;
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === "\\") i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ">" && !quoted) return i + 1;
  }
  return -1;
}

/**
 * Splits the argument of MAIL or RCPT (`FROM:<path> params`) after `keyword` into the path and the
 * parameters; undefined when the keyword or the path is missing.
 */
export function splitPathAndParams(
  arg: string,
  keyword: string,
): { path: string; params: string[] } | undefined {
  if (arg.slice(0, keyword.length).toUpperCase() !== keyword) return undefined;
  const rest = arg.slice(keyword.length).trimStart(); // tolerate "MAIL FROM: <a@b>"
  if (rest === "") return undefined;
  const end = pathEnd(rest);
  const path = end < 0 ? rest.split(" ")[0] : rest.slice(0, end);
  const tail = rest.slice(path.length);
  if (tail !== "" && !tail.startsWith(" ")) return { path: rest, params: [] }; // "<a@b>junk": a bad path
  return { path, params: tail.split(" ").filter((p) => p !== "") };
}

/** The domain of a canonical address (after the last @), lower-case; "" when there is none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0 ? "" : address.slice(at + 1).toLowerCase();
}
