// The sendmail milter protocol, version 6, as the MTA speaks it: the command and reply codes, the action
// and protocol-step bits of option negotiation, and the frame (a 4-byte big-endian length, one command
// byte, its data). Facts from libmilter's mfdef.h as documented by milter libraries; the code is ours.
// Pure: encodes and decodes bytes, no I/O.

/** Commands the MTA sends (SMFIC_*). */
export const Cmd = {
  abort: "A",
  body: "B",
  connect: "C",
  macro: "D",
  bodyEob: "E",
  helo: "H",
  quitNewConnection: "K",
  header: "L",
  mail: "M",
  eoh: "N",
  optneg: "O",
  quit: "Q",
  rcpt: "R",
  data: "T",
  unknown: "U",
} as const;

/** Replies and modification requests the milter sends (SMFIR_*). */
export const Reply = {
  addRcpt: "+",
  delRcpt: "-",
  addRcptPar: "2",
  shutdown: "4",
  accept: "a",
  replBody: "b",
  continue: "c",
  discard: "d",
  chgFrom: "e",
  connFail: "f",
  addHeader: "h",
  insHeader: "i",
  setSymList: "l",
  chgHeader: "m",
  progress: "p",
  quarantine: "q",
  reject: "r",
  skip: "s",
  tempfail: "t",
  replyCode: "y",
  optneg: "O",
} as const;

export const MILTER_VERSION = 6;

/** Actions a milter may ask for at end of message (SMFIF_*). */
export const Action = {
  addHeaders: 0x01,
  changeBody: 0x02,
  addRcpt: 0x04,
  delRcpt: 0x08,
  changeHeaders: 0x10,
  quarantine: 0x20,
  changeFrom: 0x40,
  addRcptPar: 0x80,
  setSymList: 0x100,
} as const;

/** Every action smtps carries out. */
export const ALL_ACTIONS = 0x1ff;

/** Protocol steps a milter may leave out or not answer (SMFIP_*). */
export const Step = {
  noConnect: 0x01,
  noHelo: 0x02,
  noMail: 0x04,
  noRcpt: 0x08,
  noBody: 0x10,
  noHeaders: 0x20,
  noEoh: 0x40,
  noReplyHeader: 0x80,
  noUnknown: 0x100,
  noData: 0x200,
  skip: 0x400,
  rcptRejected: 0x800,
  noReplyConnect: 0x1000,
  noReplyHelo: 0x2000,
  noReplyMail: 0x4000,
  noReplyRcpt: 0x8000,
  noReplyData: 0x10000,
  noReplyUnknown: 0x20000,
  noReplyEoh: 0x40000,
  noReplyBody: 0x80000,
  headerLeadingSpace: 0x100000,
} as const;

/**
 * The steps smtps lets a milter choose: every "no" and "no reply" step, SKIP and leading-space headers.
 * Not offered: rejected recipients (RCPT_REJ; smtps never shows a milter a recipient it refused) and the
 * larger body chunks (MDS_256K/1M; chunks stay at 65535 bytes).
 */
export const OFFERED_STEPS = 0x1fffff & ~Step.rcptRejected;

/** Macro stages of SETSYMLIST (SMFIM_*), and the command each belongs to. */
export const MACRO_STAGES = [Cmd.connect, Cmd.helo, Cmd.mail, Cmd.rcpt, Cmd.data, Cmd.bodyEob, Cmd.eoh];

/** The largest body chunk sent (MILTER_CHUNK_SIZE). */
export const CHUNK_SIZE = 65535;

/** The largest frame accepted from a milter: a replaced body chunk or a header with room to spare. */
export const MAX_FRAME = 1024 * 1024;

const encoder = new TextEncoder();

/** A frame from the milter: its command byte and data. */
export interface Frame {
  code: string;
  data: Uint8Array;
}

/** One frame: length (command byte + data), command byte, data. */
export function encodeFrame(code: string, ...parts: (Uint8Array | string)[]): Uint8Array {
  const bytes = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const length = 1 + bytes.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(4 + length);
  new DataView(out.buffer).setUint32(0, length);
  out[4] = code.charCodeAt(0);
  let at = 5;
  for (const b of bytes) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** NUL-terminated strings, as the protocol carries them (a NUL inside one would split it: refused). */
export function cstrings(...items: string[]): string {
  for (const item of items) {
    if (item.includes("\0")) throw new RangeError("Encode milter string: it contains a NUL byte");
  }
  return items.map((s) => `${s}\0`).join("");
}

/** A 32-bit big-endian number. */
export function uint32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0);
  return out;
}

/** A 16-bit big-endian number. */
export function uint16(n: number): Uint8Array {
  const out = new Uint8Array(2);
  new DataView(out.buffer).setUint16(0, n & 0xffff);
  return out;
}

/** Garbage from a milter: a frame that breaks the protocol. */
export class MilterProtocolError extends Error {
  override name = "MilterProtocolError";
}

/** Splits the NUL-terminated strings of `data` (the last one must be terminated). */
export function splitStrings(data: Uint8Array, what: string): string[] {
  if (data.length === 0 || data[data.length - 1] !== 0) {
    throw new MilterProtocolError(`Read milter ${what}: its strings are not NUL-terminated`);
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(data.subarray(0, data.length - 1));
  return text.split("\0");
}

/** Reads frames from a byte stream, one at a time; a frame over MAX_FRAME is garbage. */
export class FrameReader {
  #buffer = new Uint8Array(0);

  /** Adds bytes read from the socket. */
  push(bytes: Uint8Array): void {
    if (this.#buffer.length === 0) {
      this.#buffer = bytes.slice();
      return;
    }
    const joined = new Uint8Array(this.#buffer.length + bytes.length);
    joined.set(this.#buffer);
    joined.set(bytes, this.#buffer.length);
    this.#buffer = joined;
  }

  /** The next complete frame, or undefined when more bytes are needed. */
  next(): Frame | undefined {
    if (this.#buffer.length < 4) return undefined;
    const length = new DataView(this.#buffer.buffer, this.#buffer.byteOffset).getUint32(0);
    if (length === 0 || length > MAX_FRAME) {
      throw new MilterProtocolError(`Read milter frame: bad length ${length}`);
    }
    if (this.#buffer.length < 4 + length) return undefined;
    const code = String.fromCharCode(this.#buffer[4]);
    const data = this.#buffer.slice(5, 4 + length);
    this.#buffer = this.#buffer.subarray(4 + length);
    return { code, data };
  }
}
