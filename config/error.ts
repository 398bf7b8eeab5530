// ConfigError: the one error the configuration module throws for bad input (a syntax error, an unknown
// option, a bad value, a file that cannot be read). It carries the file and the 1-based line and column of
// the offending token (0:0 when the file itself could not be read). Touches nothing.

/** A position in the configuration text (1-based line and column). */
export interface Pos {
  line: number;
  col: number;
}

/** A problem in a configuration: message `FILE:LINE:COL: what went wrong, expected what`. */
export class ConfigError extends Error {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** The message without the `FILE:LINE:COL: ` prefix. */
  readonly detail: string;

  constructor(file: string, line: number, col: number, detail: string) {
    super(`${file}:${line}:${col}: ${detail}`);
    this.name = "ConfigError";
    this.file = file;
    this.line = line;
    this.col = col;
    this.detail = detail;
  }
}
