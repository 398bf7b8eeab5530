// The client's deadlines, per RFC 5321 section 4.5.3.2: the greeting 5 minutes, MAIL 5, RCPT 5, the DATA
// command 2, each data block 3, the reply to the final dot 10. They are given for the default
// io_timeout of 5 minutes and scale with it: io_timeout = 1m makes them a fifth (greeting 1m, DATA 24s,
// final dot 2m). The other commands (EHLO, STARTTLS and the TLS handshake, RSET) get io_timeout itself;
// connecting gets at most 30 s, QUIT at most 2 s. Pure arithmetic, touches nothing.

const MINUTE = 60_000;
/** The io_timeout the RFC values are given for. */
export const RFC_BASE = 5 * MINUTE;

export interface Deadlines {
  connect: number;
  greeting: number;
  /** EHLO, HELO, LHLO, STARTTLS, the TLS handshake, RSET. */
  command: number;
  mail: number;
  rcpt: number;
  data: number;
  /** Each write of content (at most 64 KiB). */
  block: number;
  /** The reply to the final dot; for LMTP, all the replies together. */
  dot: number;
  quit: number;
}

/** The deadlines for `ioTimeout` (ms). */
export function deadlines(ioTimeout: number): Deadlines {
  const scale = (rfc: number) => Math.max(1, Math.round((rfc * ioTimeout) / RFC_BASE));
  return {
    connect: Math.min(30_000, ioTimeout),
    greeting: scale(5 * MINUTE),
    command: ioTimeout,
    mail: scale(5 * MINUTE),
    rcpt: scale(5 * MINUTE),
    data: scale(2 * MINUTE),
    block: scale(3 * MINUTE),
    dot: scale(10 * MINUTE),
    quit: Math.min(2_000, ioTimeout),
  };
}
