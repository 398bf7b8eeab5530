// A Link: an open connection to one server, greeted and past EHLO/LHLO (and STARTTLS when it was used),
// ready for a MAIL FROM. connect.ts makes links, a delivery runs transactions on one (session.ts), and the
// connection cache (conn_cache.ts) keeps an idle one for the next transaction to the same server. The
// link remembers what reuse needs to know: when it was opened, how many transactions it carried, whether
// the server must get a RSET before the next MAIL. Touches only its own socket.

import type { Relay, TlsPolicyReport } from "../protocol/messages.ts";
import { requirementKey, type TlsRequirement } from "../mail/tls_policy.ts";
import type { Extensions } from "./commands.ts";
import { replyClass } from "./reply_reader.ts";
import type { Deadlines } from "./timeouts.ts";
import type { TlsInfo } from "./tls.ts";
import type { Wire } from "./wire.ts";

export interface LinkTarget {
  protocol: "esmtp" | "lmtp";
  /** The route host: an IPv4 or IPv6 address, or LMTP_SOCKET_ADDRESS for the LMTP unix socket. */
  host: { name: string; address: string };
  port: number;
  /** TLS from the first byte (`smtps:` / `lmtps:` routes). */
  implicitTls?: boolean;
}

/** The cache key of a server: protocol (`s` for implicit TLS), address and port (a unix socket has none). */
export function linkKey(t: LinkTarget): string {
  return `${t.protocol}${t.implicitTls ? "s" : ""}:${t.host.address}:${t.port}`;
}

export class Link {
  readonly key: string;
  /** When the connection was opened (ms, the cache's clock). */
  readonly opened: number;
  /** Transactions started on this link so far. */
  transactions = 0;
  /** The last transaction ended somewhere other than its final reply: RSET before the next MAIL. */
  needsRset = false;
  /** The TLS requirement the link was opened under and met (a cached link serves only the same one). */
  requirement: TlsRequirement | undefined;
  /** What smtpc reports about it with results. */
  report: TlsPolicyReport | undefined;
  /** Who the link authenticated as (connect.ts authIdentity), "" for no AUTH: the cache matches on it. */
  auth = "";

  constructor(
    readonly wire: Wire,
    readonly target: LinkTarget,
    /** `name[address]:port` or `name[path]`, for logs and results. */
    readonly relay: string,
    readonly exts: Extensions,
    readonly deadlines: Deadlines,
    readonly tls: TlsInfo | undefined,
    now: number,
    /** The server as results name it (protocol v2). */
    readonly server: Relay,
  ) {
    this.key = linkKey(target);
    this.opened = now;
  }

  /** Whether the link was opened under requirement `req` (so it meets it). */
  meets(req: TlsRequirement): boolean {
    return this.requirement !== undefined && requirementKey(this.requirement) === requirementKey(req);
  }

  get lmtp(): boolean {
    return this.target.protocol === "lmtp";
  }

  get usable(): boolean {
    return !this.wire.closed;
  }

  /** Sends RSET; true when the server answered 2xx (the link is fit for another MAIL), else closes it. */
  async rset(): Promise<boolean> {
    try {
      await this.wire.write("RSET\r\n", this.deadlines.command);
      const reply = await this.wire.readReply(this.deadlines.command);
      if (replyClass(reply) === 2) {
        this.needsRset = false;
        return true;
      }
    } catch {
      // the connection is gone: nothing to reset
    }
    this.wire.close();
    return false;
  }

  /** Says QUIT, waits briefly for the 221 and closes; never fails. */
  async quit(): Promise<void> {
    try {
      await this.wire.write("QUIT\r\n", this.deadlines.quit);
      await this.wire.readReply(this.deadlines.quit);
    } catch {
      // nothing left to decide
    } finally {
      this.wire.close();
    }
  }

  close(): void {
    this.wire.close();
  }
}
