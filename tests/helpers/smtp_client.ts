// A small raw SMTP client for dialogue tests: sends one line at a time and collects each complete reply
// (multi-line replies joined with "\n"). Uses node:net so a test can pick the local address (127.0.0.2 is
// a loopback client that the default access map does not let relay).

import net from "node:net";

export interface DialogueOptions {
  localAddress?: string;
  /** Give up waiting for a reply after this many ms (default 10 s). */
  timeoutMs?: number;
}

/** A connected client reading replies line by line. */
export class SmtpConnection {
  #buf = "";
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(readonly socket: net.Socket, readonly timeoutMs: number) {
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      this.#buf += d;
      this.#wake();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on("error", () => {
      this.#closed = true;
      this.#wake();
    });
  }

  static open(port: number, opts: DialogueOptions = {}): Promise<SmtpConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, localAddress: opts.localAddress });
      socket.once("connect", () => resolve(new SmtpConnection(socket, opts.timeoutMs ?? 10_000)));
      socket.once("error", reject);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Reads one complete reply; "" when the server closed the connection first. */
  async reply(): Promise<string> {
    const deadline = Date.now() + this.timeoutMs;
    while (true) {
      const lines: string[] = [];
      let pos = 0;
      while (true) {
        const nl = this.#buf.indexOf("\r\n", pos);
        if (nl < 0) break;
        const line = this.#buf.slice(pos, nl);
        lines.push(line);
        pos = nl + 2;
        if (line.length < 4 || line[3] !== "-") {
          this.#buf = this.#buf.slice(pos);
          return lines.join("\n");
        }
      }
      if (this.#closed) return "";
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no reply within ${this.timeoutMs} ms; buffered: ${JSON.stringify(this.#buf)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }

  write(text: string): void {
    this.socket.write(text, "latin1");
  }

  /** Sends a command line and returns its reply. */
  async command(line: string): Promise<string> {
    this.write(line + "\r\n");
    return await this.reply();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) return resolve();
      this.socket.once("close", () => resolve());
      this.socket.end();
      this.socket.destroySoon?.();
    });
  }
}

/** Runs a dialogue: returns the greeting and then one reply per line sent. */
export async function dialogue(port: number, lines: string[], opts: DialogueOptions = {}): Promise<string[]> {
  const c = await SmtpConnection.open(port, opts);
  try {
    const replies = [await c.reply()];
    for (const line of lines) replies.push(await c.command(line));
    return replies;
  } finally {
    await c.close();
  }
}

/** Sends one message (body already CRLF, without the final dot) and returns the reply to the final dot. */
export async function smtpSend(
  port: number,
  m: { from: string; to: string[]; body: string },
  opts: DialogueOptions = {},
): Promise<string> {
  const c = await SmtpConnection.open(port, opts);
  try {
    const expect = async (p: Promise<string>, code: string) => {
      const r = await p;
      if (!r.startsWith(code)) throw new Error(`expected ${code}, got ${JSON.stringify(r)}`);
      return r;
    };
    await expect(c.reply(), "220");
    await expect(c.command("EHLO client.test"), "250");
    await expect(c.command(`MAIL FROM:<${m.from}>`), "250");
    for (const r of m.to) await expect(c.command(`RCPT TO:<${r}>`), "250");
    await expect(c.command("DATA"), "354");
    const stuffed = m.body.replace(/(^|\r\n)\./g, "$1..");
    c.write(stuffed + (stuffed.endsWith("\r\n") ? "" : "\r\n") + ".\r\n");
    const final = await c.reply();
    await c.command("QUIT");
    return final;
  } finally {
    await c.close();
  }
}
