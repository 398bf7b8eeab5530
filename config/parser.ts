// Parser of the smx.conf language: turns tokens into a syntax tree of sections (`keyword [name] { ... }`)
// and options (`name = value;`), where a value is a scalar (one word, several words on one line such as
// `1h 5m 12s`, or adjacent strings concatenated) or a list `{ a, b, }`. `name { a, b }` is read as the
// list option `name = { a, b };`. Knows no option names (config/read.ts does). Throws ConfigError.

import { ConfigError } from "./error.ts";
import { describe, lex, type Token } from "./lexer.ts";

export interface Scalar {
  kind: "scalar";
  /** The words joined without blanks, or the strings concatenated. */
  text: string;
  /** True when the value was written as quoted strings. */
  quoted: boolean;
  tokens: Token[];
  line: number;
  col: number;
}

export interface ListValue {
  kind: "list";
  items: Scalar[];
  line: number;
  col: number;
}

export type Value = Scalar | ListValue;

export interface OptionNode {
  kind: "option";
  /** The option name as written (matched case-insensitively later). */
  name: string;
  value: Value;
  line: number;
  col: number;
}

export interface SectionNode {
  kind: "section";
  /** The keyword as written; "" for the top level. */
  keyword: string;
  name?: Scalar;
  entries: Entry[];
  line: number;
  col: number;
}

/**
 * A bare word ended by `;`, as in the README's `allow_by { sender; client_ip; }`: a flag that is on.
 * config/read.ts accepts it only inside the section form of a list option.
 */
export interface FlagNode {
  kind: "flag";
  name: string;
  token: Token;
  line: number;
  col: number;
}

export type Entry = OptionNode | SectionNode | FlagNode;

/** Parses configuration text into the top-level section; `file` only names the text in errors. */
export function parse(text: string, file: string): SectionNode {
  const parser = new Parser(lex(text, file), file);
  return { kind: "section", keyword: "", entries: parser.entries(), line: 1, col: 1 };
}

class Parser {
  #i = 0;

  constructor(private readonly tokens: Token[], private readonly file: string) {}

  #peek(ahead = 0): Token {
    return this.tokens[Math.min(this.#i + ahead, this.tokens.length - 1)];
  }

  #next(): Token {
    const token = this.#peek();
    if (token.kind !== "eof") this.#i++;
    return token;
  }

  #fail(token: Token, detail: string): never {
    throw new ConfigError(this.file, token.line, token.col, detail);
  }

  /** Entries up to the end of file (top level) or up to the `}` closing the section opened by `open`. */
  entries(open?: { token: Token; label: string }): Entry[] {
    const entries: Entry[] = [];
    for (;;) {
      const token = this.#peek();
      if (token.kind === "eof") {
        if (!open) return entries;
        const at = `${open.token.line}:${open.token.col}`;
        this.#fail(token, `unexpected end of file, expected } to close ${open.label} opened at ${at}`);
      }
      if (token.kind === "}") {
        if (!open) this.#fail(token, "unbalanced }, expected an option or a section");
        this.#next();
        return entries;
      }
      if (token.kind !== "word") {
        this.#fail(token, `unexpected ${describe(token)}, expected an option or a section`);
      }
      entries.push(this.#entry());
    }
  }

  #entry(): Entry {
    const key = this.#next();
    const after = this.#peek();
    if (after.kind === "=") {
      this.#next();
      const value = this.#value(key);
      this.#terminator(key);
      return { kind: "option", name: key.text, value, line: key.line, col: key.col };
    }
    if (after.kind === ";") {
      this.#next();
      return { kind: "flag", name: key.text, token: key, line: key.line, col: key.col };
    }
    if (after.kind === "{") {
      if (!this.#listAhead()) return this.#section(key);
      const value = this.#list();
      if (this.#peek().kind === ";") this.#next();
      return { kind: "option", name: key.text, value, line: key.line, col: key.col };
    }
    if ((after.kind === "word" || after.kind === "string") && this.#peek(1).kind === "{") {
      this.#next();
      const name: Scalar = {
        kind: "scalar",
        text: after.text,
        quoted: after.kind === "string",
        tokens: [after],
        line: after.line,
        col: after.col,
      };
      return this.#section(key, name);
    }
    this.#fail(after, `unexpected ${describe(after)} after ${key.text}, expected = or {`);
  }

  /** After `name {`: does a list (`{ a, b }`) follow rather than a section body? */
  #listAhead(): boolean {
    const first = this.#peek(1);
    if (first.kind === "string") return true;
    const second = this.#peek(2).kind;
    return first.kind === "word" && (second === "," || second === "}");
  }

  #section(key: Token, name?: Scalar): SectionNode {
    this.#next(); // the `{`
    const label = name ? `${key.text} ${name.text}` : key.text;
    const entries = this.entries({ token: key, label });
    if (this.#peek().kind === ";") this.#next();
    return { kind: "section", keyword: key.text, name, entries, line: key.line, col: key.col };
  }

  #terminator(key: Token): void {
    const token = this.#peek();
    if (token.kind === ";") {
      this.#next();
      return;
    }
    this.#fail(token, `unexpected ${describe(token)} after the value of ${key.text}, expected ;`);
  }

  #value(key: Token): Value {
    const token = this.#peek();
    if (token.kind === "{") return this.#list();
    if (token.kind === "word" || token.kind === "string") return this.#scalar(true);
    this.#fail(token, `unexpected ${describe(token)}, expected a value for ${key.text}`);
  }

  /**
   * A scalar: adjacent strings are concatenated; with `words`, further words on the same line join the
   * first (a time like `1h 5m 12s`) unless one starts the next entry (is followed by `=` or `{`).
   */
  #scalar(words: boolean): Scalar {
    const first = this.#next();
    const tokens = [first];
    if (first.kind === "string") {
      while (this.#peek().kind === "string") tokens.push(this.#next());
    } else if (words) {
      for (;;) {
        const token = this.#peek();
        const follower = this.#peek(1).kind;
        const sameLine = token.line === tokens[tokens.length - 1].line;
        if (token.kind !== "word" || !sameLine || follower === "=" || follower === "{") break;
        tokens.push(this.#next());
      }
    }
    const text = tokens.map((t) => t.text).join("");
    return {
      kind: "scalar",
      text,
      quoted: first.kind === "string",
      tokens,
      line: first.line,
      col: first.col,
    };
  }

  #list(): ListValue {
    const open = this.#next();
    const items: Scalar[] = [];
    const unclosed =
      `unexpected end of file, expected } to close the list opened at ${open.line}:${open.col}`;
    for (;;) {
      let token = this.#peek();
      if (token.kind === "}") break;
      if (token.kind === "eof") this.#fail(token, unclosed);
      if (token.kind !== "word" && token.kind !== "string") {
        this.#fail(token, `unexpected ${describe(token)} in a list, expected a value or }`);
      }
      items.push(this.#scalar(false));
      token = this.#peek();
      if (token.kind === "}") break;
      if (token.kind === "eof") this.#fail(token, unclosed);
      if (token.kind !== ",") this.#fail(token, `unexpected ${describe(token)} in a list, expected , or }`);
      this.#next();
    }
    this.#next(); // the `}`
    return { kind: "list", items, line: open.line, col: open.col };
  }
}
