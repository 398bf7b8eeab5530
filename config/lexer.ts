// Lexer of the smx.conf language: turns configuration text into tokens (words, quoted strings, the
// punctuation `{ } = ; ,`) with their 1-based line and column, ending with an "eof" token. Skips blanks and
// `#` comments; decodes the escapes `\" \\ \n \t \r` in strings. Throws ConfigError. Touches nothing.

import { ConfigError } from "./error.ts";

export type TokenKind = "word" | "string" | "{" | "}" | "=" | ";" | "," | "eof";

export interface Token {
  kind: TokenKind;
  /** A word as written, a string decoded (without quotes), or the punctuation character. */
  text: string;
  line: number;
  col: number;
}

const PUNCTUATION = new Set(["{", "}", "=", ";", ","]);
const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", n: "\n", t: "\t", r: "\r" };

/** A character that may appear in an unquoted word (`127.0.0.1`, `var/cdb`, `[::1]`, `1h`, `user@host`). */
function isWordChar(ch: string): boolean {
  const code = ch.codePointAt(0)!;
  return code > 0x20 && code !== 0x7f && !PUNCTUATION.has(ch) && ch !== '"' && ch !== "#";
}

/** How a token is named in error messages. */
export function describe(token: Token): string {
  switch (token.kind) {
    case "word":
      return `word ${token.text}`;
    case "string":
      return `string ${JSON.stringify(token.text)}`;
    case "eof":
      return "end of file";
    default:
      return token.kind;
  }
}

/** Splits configuration text into tokens; `file` only names the text in errors. */
export function lex(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let i = text.startsWith("\uFEFF") ? 1 : 0;
  let line = 1;
  let col = 1;
  /** The character at i (a whole surrogate pair counts as one character and one column). */
  const char = () => String.fromCodePoint(text.codePointAt(i)!);
  const advance = () => {
    const ch = char();
    i += ch.length;
    if (ch === "\n") {
      line++;
      col = 1;
    } else {
      col++;
    }
    return ch;
  };
  const fail = (l: number, c: number, detail: string): never => {
    throw new ConfigError(file, l, c, detail);
  };

  while (i < text.length) {
    const ch = char();
    if (ch === " " || ch === "\t" || ch === "\r" || ch === "\n" || ch === "\f" || ch === "\v") {
      advance();
    } else if (ch === "#") {
      while (i < text.length && text[i] !== "\n") advance();
    } else if (PUNCTUATION.has(ch)) {
      tokens.push({ kind: ch as TokenKind, text: ch, line, col });
      advance();
    } else if (ch === '"') {
      const start = { line, col };
      advance();
      let value = "";
      for (;;) {
        if (i >= text.length || text[i] === "\n") {
          fail(start.line, start.col, 'unterminated string, expected a closing " on the same line');
        }
        const c = advance();
        if (c === '"') break;
        if (c !== "\\") {
          value += c;
          continue;
        }
        if (i >= text.length || text[i] === "\n") {
          fail(start.line, start.col, 'unterminated string, expected a closing " on the same line');
        }
        const escLine = line;
        const escCol = col - 1;
        const e = advance();
        if (!(e in ESCAPES)) {
          fail(escLine, escCol, `unknown escape \\${e} in a string, expected one of \\" \\\\ \\n \\t \\r`);
        }
        value += ESCAPES[e];
      }
      tokens.push({ kind: "string", text: value, line: start.line, col: start.col });
    } else if (isWordChar(ch)) {
      const start = { line, col };
      let word = "";
      while (i < text.length && isWordChar(char())) word += advance();
      tokens.push({ kind: "word", text: word, line: start.line, col: start.col });
    } else {
      const code = ch.codePointAt(0)!.toString(16).padStart(4, "0");
      fail(line, col, `unexpected character U+${code}, expected a word, a "string" or one of { } = ; ,`);
    }
  }
  tokens.push({ kind: "eof", text: "", line, col });
  return tokens;
}
