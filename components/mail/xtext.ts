// xtext (RFC 3461 4): the encoding of the DSN parameters ENVID and ORCPT and of the AUTH= parameter of MAIL
// (RFC 4954 5): printable ASCII except "+" and "=", which travel as "+XX" (two upper-case hex digits), as
// does everything else. Also the `\x{HEX}` escapes of the utf-8 address type (RFC 6533 3). Pure functions.

const HEX = "0123456789ABCDEF";

/**
 * Decodes xtext into US-ASCII; undefined when malformed (a bad "+XX", a byte outside "!".."~", a bare "=",
 * an encoded byte above 0x7f). Unless `allowControls`, a decoded control character (below 0x20, or 0x7f)
 * is malformed too.
 */
export function decodeXtext(text: string, allowControls = false): string | undefined {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) { // "+": two upper-case hex digits follow
      const hi = HEX.indexOf(text[i + 1]);
      const lo = HEX.indexOf(text[i + 2]);
      if (hi < 0 || lo < 0 || text[i + 1] === undefined || text[i + 2] === undefined) return undefined;
      const code = hi * 16 + lo;
      if (code > 0x7f || (!allowControls && (code < 0x20 || code === 0x7f))) return undefined;
      out += String.fromCharCode(code);
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c === 0x3d) return undefined;
    else out += text[i];
  }
  return out;
}

/** Encodes text as xtext: "+", "=" and anything outside "!".."~" as "+XX" (UTF-8 bytes for non-ASCII). */
export function encodeXtext(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d
      ? `+${HEX[byte >> 4]}${HEX[byte & 15]}`
      : String.fromCharCode(byte);
  }
  return out;
}

/**
 * Decodes the `\x{HEX}` escapes of utf-8-addr-xtext / utf-8-addr-unitext (RFC 6533 3); undefined when an
 * escape is malformed, names a control character, or a surrogate.
 */
export function decodeUtf8AddrEscapes(text: string): string | undefined {
  let bad = false;
  const out = text.replace(/\\x\{([0-9A-Fa-f]{1,6})\}|\\/g, (m, hex: string | undefined) => {
    if (hex === undefined) {
      bad = true; // a backslash that starts no escape
      return m;
    }
    const code = parseInt(hex, 16);
    if (code < 0x20 || code === 0x7f || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) bad = true;
    return bad ? m : String.fromCodePoint(code);
  });
  return bad ? undefined : out;
}
