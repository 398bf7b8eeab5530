// `sendmail` for local programs (cron, scripts, PHP's mail(), mail/mailx): reads a message on stdin and
// submits it over SMTP to smx's local smtps listener, the way the sendmail X README's mini_sendmail does.
// It needs only the net permission to that listener (scripts/sendmail.sh passes the server, the user and
// the mail domain on its command line, so no env, sys or file permission is needed). Options, as sendmail
// 8 has them: `-t` (recipients from To:/Cc:/Bcc:, Bcc: removed), `-f sender`/`-r sender`, `-F fullname`,
// `-i`/`-oi` (a line with a single dot does not end the message), `-bm` (the default), `-bs` (SMTP on
// stdin/stdout, relayed to smtps), `--` and other `-o`/`-O`/`-B`/`-N`/`-R`/`-v`/`-X` options accepted and
// ignored. Exit codes are sendmail's (sysexits.h): 0, EX_USAGE 64, EX_DATAERR 65, EX_NOUSER 67,
// EX_UNAVAILABLE 69, EX_SOFTWARE 70, EX_TEMPFAIL 75 (smx down or a 4xx reply), EX_PROTOCOL 76.
// Touches: one TCP connection to the submission listener; stdin, stdout (with -bs) and stderr.

export const EX = {
  OK: 0,
  USAGE: 64,
  DATAERR: 65,
  NOUSER: 67,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  TEMPFAIL: 75,
  PROTOCOL: 76,
} as const;

/** What the command line asked for. */
export interface Invocation {
  /** host:port of smx's submission listener (from the wrapper's --smx-server). */
  server: string;
  /** The invoking user (from --smx-user), for the default sender. */
  user: string;
  /** The domain of unqualified senders (from --smx-domain). */
  domain: string;
  mode: "deliver" | "smtp";
  /** -t: recipients from the headers. */
  fromHeaders: boolean;
  /** -i / -oi: a single dot on a line is content. */
  ignoreDots: boolean;
  sender?: string;
  fullName?: string;
  recipients: string[];
}

export class UsageError extends Error {}

/** Parses sendmail's command line (after the wrapper's --smx-* options). */
export function parseArgs(args: string[]): Invocation {
  const inv: Invocation = {
    server: "127.0.0.1:25",
    user: "root",
    domain: "localhost",
    mode: "deliver",
    fromHeaders: false,
    ignoreDots: false,
    recipients: [],
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = (flag: string): string => {
      if (a.length > flag.length) return a.slice(flag.length);
      const v = args[++i];
      if (v === undefined) throw new UsageError(`option requires an argument -- ${flag.slice(1)}`);
      return v;
    };
    if (a.startsWith("--smx-server=")) inv.server = a.slice(13);
    else if (a.startsWith("--smx-user=")) inv.user = a.slice(11);
    else if (a.startsWith("--smx-domain=")) inv.domain = a.slice(13);
    else if (a === "--") {
      inv.recipients.push(...args.slice(i + 1));
      break;
    } else if (!a.startsWith("-") || a === "-") inv.recipients.push(a);
    else if (a === "-t") inv.fromHeaders = true;
    else if (a === "-i" || a === "-oi") inv.ignoreDots = true;
    else if (a.startsWith("-f") || a.startsWith("-r")) inv.sender = value(a.slice(0, 2));
    else if (a.startsWith("-F")) inv.fullName = value("-F");
    else if (a === "-bm") inv.mode = "deliver";
    else if (a === "-bs") inv.mode = "smtp";
    else if (a.startsWith("-b")) throw new UsageError(`mode ${a} is not supported`);
    else if (a.startsWith("-o") || a.startsWith("-O") || a.startsWith("-B") || a.startsWith("-N")) {
      if (a.length === 2) i++; // -o x, -B 8BITMIME, -N never: accepted, ignored
    } else if (a.startsWith("-R") || a.startsWith("-X") || a.startsWith("-V") || a.startsWith("-L")) {
      if (a.length === 2) i++;
    } else if (
      a === "-v" || a === "-m" || a === "-n" || a === "-U" || a === "-G" || a === "-Am" || a === "-Ac"
    ) {
      // accepted, ignored
    } else throw new UsageError(`illegal option ${a}`);
  }
  return inv;
}

/** The header section and the body of a message (LF or CRLF line ends), as lines without their ends. */
export function splitMessage(text: string): { headers: string[]; body: string[] } {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines.at(-1) === "") lines.pop();
  const blank = lines.indexOf("");
  // A message that does not start with a header field is all body.
  if (lines.length > 0 && !/^[!-9;-~]+:/.test(lines[0]) && !/^From /.test(lines[0])) {
    return { headers: [], body: lines };
  }
  const headers = blank === -1 ? lines : lines.slice(0, blank);
  const body = blank === -1 ? [] : lines.slice(blank + 1);
  // An mbox "From " line is not a header field.
  return { headers: headers.filter((h, i) => i !== 0 || !h.startsWith("From ")), body };
}

/** Unfolded header fields: [name, value]. */
function fields(headers: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const h of headers) {
    if (/^[ \t]/.test(h) && out.length > 0) out[out.length - 1][1] += " " + h.trim();
    else {
      const colon = h.indexOf(":");
      if (colon > 0) out.push([h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim()]);
    }
  }
  return out;
}

/** The addresses of an address-list header value (`A <a@x>, "B, C" <b@y>, c@z (C), group: d@w;`). */
export function addressList(value: string): string[] {
  const parts: string[] = [];
  let cur = "";
  let quoted = false;
  let depth = 0;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === "\\") cur += ch + (value[++i] ?? "");
      else {
        if (ch === '"') quoted = false;
        cur += ch;
      }
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === "(") depth++;
    else if (ch === ")" && depth > 0) depth--;
    else if (ch === "<" && depth === 0) angle = true;
    else if (ch === ">" && depth === 0) angle = false;
    else if ((ch === "," || ch === ";") && depth === 0 && !angle) {
      parts.push(cur);
      cur = "";
      continue;
    } else if (ch === ":" && depth === 0 && !angle) {
      cur = ""; // a group's display name
      continue;
    }
    cur += ch;
  }
  parts.push(cur);
  const out: string[] = [];
  for (const p of parts) {
    const inAngle = p.match(/<([^>]*)>/);
    const addr = inAngle ? inAngle[1] : p.replace(/\((?:[^()\\]|\\.)*\)/g, "").replace(/"[^"]*"/g, "");
    const a = addr.trim();
    if (a !== "") out.push(a);
  }
  return out;
}

/** The recipients of -t: To:, Cc: and Bcc: (also Resent-* when present, as sendmail does). */
export function headerRecipients(headers: string[]): string[] {
  const f = fields(headers);
  const resent = f.some(([n]) => n.startsWith("resent-"));
  const names = resent ? ["resent-to", "resent-cc", "resent-bcc"] : ["to", "cc", "bcc"];
  return f.filter(([n]) => names.includes(n)).flatMap(([, v]) => addressList(v));
}

/** An unqualified address gets the local domain. */
export function qualify(addr: string, domain: string): string {
  return addr.includes("@") || addr === "" ? addr : `${addr}@${domain}`;
}

/**
 * The message as it goes out: Bcc: removed (with -t), From: added when missing (with -F's full name),
 * Date: added when missing; CRLF line ends.
 */
export function prepareMessage(
  text: string,
  inv: Invocation,
  sender: string,
  now = new Date(),
): { lines: string[]; recipients: string[] } {
  const { headers, body } = splitMessage(text);
  const recipients = [...inv.recipients];
  if (inv.fromHeaders) recipients.push(...headerRecipients(headers));
  const out: string[] = [];
  let skipping = false;
  for (const h of headers) {
    if (/^[ \t]/.test(h)) {
      if (!skipping) out.push(h);
      continue;
    }
    skipping = /^(resent-)?bcc:/i.test(h);
    if (!skipping) out.push(h);
  }
  const has = (name: string) => out.some((h) => h.toLowerCase().startsWith(`${name}:`));
  if (!has("from")) {
    const name = inv.fullName?.replace(/["\\]/g, "");
    out.push(`From: ${name ? `"${name}" <${sender}>` : sender}`);
  }
  if (!has("date")) out.push(`Date: ${now.toUTCString().replace("GMT", "+0000")}`);
  const seen = new Set<string>();
  const unique = recipients.map((r) => qualify(r, inv.domain)).filter((r) => {
    const k = r.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return { lines: [...out, "", ...body], recipients: unique };
}

/** Reads stdin to its end, or (without -i) up to a line holding a single dot. */
export async function readMessage(stdin: ReadableStream<Uint8Array>, ignoreDots: boolean): Promise<string> {
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let text = "";
  for await (const chunk of stdin) {
    text += decoder.decode(chunk, { stream: true });
    if (!ignoreDots) {
      const m = text.match(/(^|\n)\.\r?\n/);
      if (m && m.index !== undefined) return text.slice(0, m.index + m[1].length);
    }
  }
  text += decoder.decode();
  if (!ignoreDots) {
    const m = text.match(/(^|\n)\.\r?$/);
    if (m && m.index !== undefined) return text.slice(0, m.index + m[1].length);
  }
  return text;
}

/** A failure that ends the run with `code`. */
export class Exit extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** One SMTP connection: sends lines, reads (multi-line) replies. */
class Client {
  #buf = "";
  #decoder = new TextDecoder();
  constructor(readonly conn: Deno.Conn) {}

  async reply(): Promise<{ code: number; text: string }> {
    const lines: string[] = [];
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl === -1) {
        const chunk = new Uint8Array(16384);
        const n = await this.conn.read(chunk);
        if (n === null) throw new Exit(EX.TEMPFAIL, "connection closed by smx");
        this.#buf += this.#decoder.decode(chunk.subarray(0, n), { stream: true });
        continue;
      }
      const line = this.#buf.slice(0, nl).replace(/\r$/, "");
      this.#buf = this.#buf.slice(nl + 1);
      lines.push(line);
      if (!/^\d{3}[ -]/.test(line) && !/^\d{3}$/.test(line)) {
        throw new Exit(EX.PROTOCOL, `bad reply: ${line}`);
      }
      if (line[3] !== "-") return { code: Number(line.slice(0, 3)), text: lines.join("\n") };
    }
  }

  async send(text: string): Promise<void> {
    const bytes = new TextEncoder().encode(text);
    for (let off = 0; off < bytes.length;) off += await this.conn.write(bytes.subarray(off));
  }

  async command(line: string): Promise<{ code: number; text: string }> {
    await this.send(`${line}\r\n`);
    return this.reply();
  }
}

async function connect(server: string): Promise<Deno.Conn> {
  const colon = server.lastIndexOf(":");
  const hostname = server.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(server.slice(colon + 1));
  try {
    return await Deno.connect({ hostname, port });
  } catch (err) {
    throw new Exit(EX.TEMPFAIL, `cannot connect to smx at ${server}: ${(err as Error).message}`);
  }
}

/** The exit code for a refusal: 4xx EX_TEMPFAIL, else `permanent`. */
const failure = (r: { code: number; text: string }, what: string, permanent: number) =>
  new Exit(r.code >= 400 && r.code < 500 ? EX.TEMPFAIL : permanent, `${what}: ${r.text}`);

/** Submits the message; returns the exit code (0, or EX_NOUSER when some recipients were refused). */
export async function submit(inv: Invocation, text: string, log: (s: string) => void): Promise<number> {
  const sender = inv.sender === undefined ? `${inv.user}@${inv.domain}` : qualify(inv.sender, inv.domain);
  const { lines, recipients } = prepareMessage(text, inv, sender);
  if (recipients.length === 0) throw new Exit(EX.USAGE, "No recipient addresses found in header");
  const c = new Client(await connect(inv.server));
  try {
    const greeting = await c.reply();
    if (greeting.code !== 220) throw failure(greeting, "smx refused the connection", EX.UNAVAILABLE);
    const ehlo = await c.command("EHLO localhost");
    if (ehlo.code !== 250) throw failure(ehlo, "EHLO", EX.PROTOCOL);
    // deno-lint-ignore no-control-regex
    const eightBit = lines.some((l) => /[^\x00-\x7f]/.test(l));
    const body = eightBit && /^250[- ]8BITMIME\b/im.test(ehlo.text) ? " BODY=8BITMIME" : "";
    const mail = await c.command(`MAIL FROM:<${sender}>${body}`);
    if (mail.code !== 250) throw failure(mail, `sender <${sender}>`, EX.DATAERR);
    let accepted = 0;
    let refusedPermanently = 0;
    let refusedTemporarily = 0;
    for (const r of recipients) {
      const reply = await c.command(`RCPT TO:<${r}>`);
      if (reply.code === 250 || reply.code === 251) accepted++;
      else {
        log(`<${r}>: ${reply.text}`);
        if (reply.code >= 500) refusedPermanently++;
        else refusedTemporarily++;
      }
    }
    if (accepted === 0) {
      await c.command("QUIT").catch(() => {});
      return refusedTemporarily > 0 ? EX.TEMPFAIL : EX.NOUSER;
    }
    const data = await c.command("DATA");
    if (data.code !== 354) throw failure(data, "DATA", EX.DATAERR);
    const content = lines.map((l) => (l.startsWith(".") ? `.${l}` : l) + "\r\n").join("");
    await c.send(content + ".\r\n");
    const done = await c.reply();
    if (done.code !== 250) throw failure(done, "message refused", EX.DATAERR);
    await c.command("QUIT").catch(() => {});
    if (refusedTemporarily > 0) return EX.TEMPFAIL;
    return refusedPermanently > 0 ? EX.NOUSER : EX.OK;
  } finally {
    try {
      c.conn.close();
    } catch {
      // already closed
    }
  }
}

/** -bs: relays an SMTP dialogue on stdin/stdout to smx, byte for byte. */
export async function relaySmtp(
  inv: Invocation,
  stdin: ReadableStream<Uint8Array>,
  stdout: WritableStream<Uint8Array>,
): Promise<number> {
  const conn = await connect(inv.server);
  const up = stdin.pipeTo(conn.writable, { preventClose: true }).then(() => conn.closeWrite()).catch(
    () => {},
  );
  await conn.readable.pipeTo(stdout, { preventClose: true }).catch(() => {});
  await Promise.race([up, new Promise((r) => setTimeout(r, 0))]);
  try {
    conn.close();
  } catch {
    // already closed
  }
  return EX.OK;
}

/** Runs the command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const err = (s: string) => console.error(`sendmail: ${s}`);
  let inv: Invocation;
  try {
    inv = parseArgs(args);
  } catch (e) {
    err((e as Error).message);
    return EX.USAGE;
  }
  try {
    if (inv.mode === "smtp") return await relaySmtp(inv, Deno.stdin.readable, Deno.stdout.writable);
    if (!inv.fromHeaders && inv.recipients.length === 0) {
      err("Recipient names must be specified");
      return EX.USAGE;
    }
    const text = await readMessage(Deno.stdin.readable, inv.ignoreDots);
    return await submit(inv, text, err);
  } catch (e) {
    if (e instanceof Exit) {
      err(e.message);
      return e.code;
    }
    err((e as Error).message);
    return EX.SOFTWARE;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
