// The scalar value syntax of smx.conf and its inverse: numbers (decimal, `0x` hex, leading-0 octal),
// booleans, times (`w d h m s`, plus `ms`, in sequences like `1h 5m 12s`), sizes (`B KB MB GB`, also
// `K M G`, 1 KB = 1024 B), IP addresses and nameserver addresses. Parsers return undefined on bad syntax
// (the caller knows the position and the option); they do not check ranges. Touches nothing.

import { isIPv4, isIPv6 } from "node:net";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
const MICROSECOND = 1 / 1000;
const TIME_UNITS: [string, number][] = [
  ["w", WEEK],
  ["d", DAY],
  ["h", HOUR],
  ["m", MINUTE],
  ["s", SECOND],
  ["ms", 1],
  ["us", MICROSECOND],
];
const TIME_UNIT = new Map<string, number>([...TIME_UNITS, ["µs", MICROSECOND]]);

const KB = 1024;
const SIZE_UNITS: [string, number][] = [["GB", KB * KB * KB], ["MB", KB * KB], ["KB", KB]];
const SIZE_UNIT = new Map<string, number>([
  ["b", 1],
  ["k", KB],
  ["kb", KB],
  ["m", KB * KB],
  ["mb", KB * KB],
  ["g", KB * KB * KB],
  ["gb", KB * KB * KB],
]);

/** An integer: `100`, `-3`, `0x1F` (hex), `017` (octal). Unsafe magnitudes come back as they are. */
export function parseNumber(text: string): number | undefined {
  const m = /^([+-]?)(?:0x([0-9a-f]+)|(0[0-7]*)|([1-9][0-9]*))$/i.exec(text);
  if (!m) return undefined;
  const [, sign, hex, octal, decimal] = m;
  const n = hex !== undefined
    ? parseInt(hex, 16)
    : octal !== undefined
    ? parseInt(octal, 8)
    : Number(decimal);
  return sign === "-" ? -n : n;
}

/** A boolean: `0 false off no` or `1 true on yes` (any case). */
export function parseBoolean(text: string): boolean | undefined {
  const word = text.toLowerCase();
  if (["1", "true", "on", "yes"].includes(word)) return true;
  if (["0", "false", "off", "no"].includes(word)) return false;
  return undefined;
}

/**
 * A time in milliseconds: units `w d h m s ms us` (`µs` too) in any sequence (`1h5m12s`; the parser joins
 * `1h 5m 12s` into that), or a plain number counted in `plainUnit` milliseconds (seconds unless told
 * otherwise). Microseconds give fractional milliseconds.
 */
export function parseTime(text: string, plainUnit = SECOND): number | undefined {
  const plain = parseNumber(text);
  if (plain !== undefined) return plain * plainUnit;
  const m = /^([+-]?)((?:\d+(?:ms|us|µs|w|d|h|m|s))+)$/i.exec(text);
  if (!m) return undefined;
  let micros = 0;
  for (const [, count, unit] of m[2].matchAll(/(\d+)(ms|us|µs|w|d|h|m|s)/gi)) {
    micros += Number(count) * Math.round(TIME_UNIT.get(unit.toLowerCase())! * 1000);
  }
  const total = micros / 1000;
  return m[1] === "-" ? -total : total;
}

/** Whether `text` is a plain number (no unit): the option's default unit applies. */
export function isPlainNumber(text: string): boolean {
  return parseNumber(text) !== undefined;
}

/**
 * A size in bytes: a decimal count with a unit (`10MB`, `512K`, `64 KB`), or a plain number counted in
 * `plainUnit` bytes (bytes unless told otherwise).
 */
export function parseSize(text: string, plainUnit = 1): number | undefined {
  const plain = parseNumber(text);
  if (plain !== undefined) return plain * plainUnit;
  const m = /^([+-]?)(\d+)([a-z]+)$/i.exec(text);
  const unit = m ? SIZE_UNIT.get(m[3].toLowerCase()) : undefined;
  if (!m || unit === undefined) return undefined;
  const n = Number(m[2]) * unit;
  return m[1] === "-" ? -n : n;
}

/** An IPv4 or IPv6 address (IPv6 may be bracketed: `[::1]`), returned without brackets. */
export function parseIpAddress(text: string): string | undefined {
  const bare = /^\[(.*)\]$/.exec(text)?.[1] ?? text;
  if (isIPv4(bare)) return bare;
  if (isIPv6(bare)) return bare.toLowerCase();
  return undefined;
}

/** A nameserver: `ip`, `ip:port`, bare IPv6 or `[ip6]:port`, port 1-65535; returned as written. */
export function parseNameserver(text: string): string | undefined {
  if (isIPv4(text) || isIPv6(text)) return text;
  const m = /^(?:([0-9.]+)|\[([0-9a-f:.]+)\]):(\d{1,5})$/i.exec(text);
  if (!m) return undefined;
  const [, v4, v6, port] = m;
  const ok = v4 !== undefined ? isIPv4(v4) : isIPv6(v6);
  return ok && Number(port) >= 1 && Number(port) <= 65535 ? text : undefined;
}

/**
 * An IPv4 netmask as a prefix length: a dotted mask (`255.255.255.0`), a number above 32 read as the
 * 32-bit mask (`0xffffff00`), or a prefix length 0-32 (`24`). Undefined unless the mask is contiguous.
 */
export function parseNetmask(text: string): number | undefined {
  let mask: number;
  if (isIPv4(text)) {
    mask = text.split(".").reduce((m, o) => m * 256 + Number(o), 0);
  } else {
    const n = parseNumber(text);
    if (n === undefined || n < 0 || n > 0xffffffff) return undefined;
    if (n <= 32) return n;
    mask = n;
  }
  const bits = mask.toString(2).padStart(32, "0");
  return /^1*0*$/.test(bits) ? bits.indexOf("0") < 0 ? 32 : bits.indexOf("0") : undefined;
}

/** A time with units, largest first (`1h 30m`, `5m`, `10ms`, `500us`, `0s`); parseTime() reads it back. */
export function formatTime(ms: number): string {
  const parts: string[] = [];
  let rest = Math.round(ms * 1000); // in microseconds, so fractions of a millisecond stay exact
  for (const [unit, size] of TIME_UNITS) {
    const micros = Math.round(size * 1000);
    const count = Math.floor(rest / micros);
    if (count > 0) parts.push(`${count}${unit}`);
    rest -= count * micros;
  }
  return parts.length > 0 ? parts.join(" ") : "0s";
}

/**
 * A size with the largest unit that divides it exactly (`10MB`), else in bytes (`1000B`: with its unit,
 * as options whose plain numbers mean KB need); parseSize() reads it back. 0 is `0`.
 */
export function formatSize(bytes: number): string {
  for (const [unit, size] of SIZE_UNITS) {
    if (bytes > 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return bytes === 0 ? "0" : `${bytes}B`;
}
