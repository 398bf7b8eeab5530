// The trace header smtps prepends to every message (RFC 5321 4.4, RFC 5322 3.6.7), its protocol name
// (RFC 3848, RFC 6531 4.3: ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP...), and the RFC 5322 date it
// carries. Pure functions: the date is passed in, so tests can fix it.

/** What a Received: header says about one hop. */
export interface ReceivedInfo {
  /** The HELO/EHLO argument the client gave. */
  helo: string;
  /** The client's IP address, e.g. "127.0.0.1" or "::1". */
  ip: string;
  /** Our name (the smtps section's hostname). */
  hostname: string;
  /** The `with` protocol: see receivedProtocol(). */
  protocol: string;
  /** Queue id of the message. */
  id: string;
  /** The recipient, given only when the message has exactly one. */
  recipient?: string;
  date: Date;
  /** The TLS version and cipher, when the session used STARTTLS. */
  tls?: { version: string; cipher: string };
  /** The authenticated user, when the configuration asks for it in the header. */
  authUser?: string;
}

/** What decides the protocol name of a hop. */
export interface ProtocolFacts {
  /** EHLO (not HELO). */
  esmtp: boolean;
  /** STARTTLS. */
  tls: boolean;
  /** AUTH succeeded. */
  auth: boolean;
  /** The transaction used SMTPUTF8. */
  utf8: boolean;
}

/** The `with` protocol name: SMTP, ESMTP plus S (TLS) and A (AUTH) (RFC 3848), UTF8SMTP... (RFC 6531). */
export function receivedProtocol(p: ProtocolFacts): string {
  if (!p.esmtp) return "SMTP";
  return `${p.utf8 ? "UTF8SMTP" : "ESMTP"}${p.tls ? "S" : ""}${p.auth ? "A" : ""}`;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const two = (n: number) => String(n).padStart(2, "0");

/** An RFC 5322 date-time in local time with its offset, e.g. `Mon, 2 Jan 2006 15:04:05 +0000`. */
export function rfc5322Date(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  return `${DAYS[d.getDay()]}, ${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())} ${sign}${two(Math.floor(abs / 60))}${
      two(abs % 60)
    }`;
}

/** The address literal for an IP as trace headers write it: `[192.0.2.1]` or `[IPv6:2001:db8::1]`. */
export function ipLiteral(ip: string): string {
  return ip.includes(":") ? `[IPv6:${ip}]` : `[${ip}]`;
}

/** Keeps a client-supplied word safe inside a header: printable ASCII without spaces or parentheses. */
function clean(s: string): string {
  const t = s.replace(/[^\x21-\x7e]|[()\\]/g, "?");
  return t.length > 0 ? t.slice(0, 255) : "unknown";
}

/** The complete Received: header, folded, ending in CRLF. */
export function receivedHeader(r: ReceivedInfo): string {
  const forClause = r.recipient !== undefined ? `\r\n\tfor <${r.recipient}>` : "";
  const tls = r.tls ? `\r\n\t(using ${clean(r.tls.version)} with cipher ${clean(r.tls.cipher)})` : "";
  const auth = r.authUser !== undefined ? `\r\n\t(authenticated user ${clean(r.authUser)})` : "";
  return `Received: from ${clean(r.helo)} (${ipLiteral(r.ip)})${tls}${auth}\r\n` +
    `\tby ${r.hostname} (smX) with ${r.protocol} id ${r.id}${forClause}; ${rfc5322Date(r.date)}\r\n`;
}
