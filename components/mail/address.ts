// Mail addresses as SMTP carries them (RFC 5321 4.1.2): parses a reverse- or forward-path such as
// `<"john doe"@Example.COM>` into its canonical `local@domain` form (domain lower-cased, quotes only where
// the local part needs them). Pure functions: no I/O. Used by smtps for MAIL/RCPT and by anything that
// needs to split or compare addresses.

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

export type PathResult = { ok: true; mailbox: Mailbox } | { ok: false; reason: string };

export interface PathOptions {
  /** Accept the null path `<>` (MAIL FROM). */
  allowNull?: boolean;
  /** Accept `<postmaster>` without a domain (RCPT TO, RFC 5321 4.5.1). */
  allowPostmaster?: boolean;
}

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const SUBDOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

const fail = (reason: string): PathResult => ({ ok: false, reason });

/** True for a Dot-string: atoms of atext separated by single dots. */
export function isDotString(s: string): boolean {
  return s.length > 0 && s.split(".").every((atom) => ATEXT.test(atom));
}

/** True for a domain name made of LDH labels (no trailing dot). */
export function isDomainName(s: string): boolean {
  return s.length > 0 && s.length <= MAX_DOMAIN &&
    s.split(".").every((l) => l.length <= 63 && SUBDOMAIN.test(l));
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
function unquote(s: string): string | undefined {
  if (s.length < 2 || !s.startsWith('"') || !s.endsWith('"')) return undefined;
  let out = "";
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c) {
      const n = s.charCodeAt(++i);
      if (i >= s.length - 1 || n < 32 || n > 126) return undefined;
      out += s[i];
    } else if (c === 0x22 || c < 32 || c > 126) return undefined;
    else out += s[i];
  }
  return out;
}

/** The canonical spelling of a local part: a Dot-string when possible, else a minimal Quoted-string. */
export function canonicalLocalPart(raw: string): string {
  return isDotString(raw) ? raw : `"${raw.replace(/(["\\])/g, "\\$1")}"`;
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
export function parseMailbox(s: string): PathResult {
  const parts = splitMailbox(s);
  if (!parts) return fail("missing @domain");
  const [localText, domainText] = parts;
  let local: string;
  if (localText.startsWith('"')) {
    const raw = unquote(localText);
    if (raw === undefined) return fail("malformed quoted local part");
    local = canonicalLocalPart(raw);
  } else if (isDotString(localText)) local = localText;
  else return fail("malformed local part");
  if (local.length > MAX_LOCAL_PART) return fail(`local part longer than ${MAX_LOCAL_PART} octets`);
  let domain: string;
  if (domainText.startsWith("[")) {
    const literal = parseAddressLiteral(domainText);
    if (!literal) return fail("malformed address literal");
    domain = literal;
  } else if (domainText.length > MAX_DOMAIN) return fail(`domain longer than ${MAX_DOMAIN} octets`);
  else if (isDomainName(domainText)) domain = domainText.toLowerCase();
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
  if (path.length > MAX_PATH) return fail(`path longer than ${MAX_PATH} octets`);
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
  return parseMailbox(mailbox);
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

/** The domain of a canonical address (after the last @), lower-case; "" when there is none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0 ? "" : address.slice(at + 1).toLowerCase();
}
