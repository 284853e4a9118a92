// A small MySQL tokenizer for what sql-parser-cst cannot parse (SHOW, DESCRIBE t, LOAD DATA...):
// it feeds the closed SHOW/DESCRIBE grammar, names refusals and finds built-in functions the
// parser takes for keywords (mysql-keyword-functions.ts); it never judges a full query.

import { checkBlockComment, checkLineComment, checkStringLiteral } from "./mysql-lexing.js";
import { refuse, type Refusal } from "./verdict.js";

export type TokenKind = "word" | "quoted_identifier" | "string" | "number" | "punct";

export interface Token {
  kind: TokenKind;
  /** Words upper-cased, identifiers and strings unquoted, punctuation as written. */
  value: string;
  /** Where the token starts in the statement, and where it ends (exclusive). */
  start: number;
  end: number;
}

/** A token known to be of one kind (what the predicates below narrow to). */
export type TokenOf<K extends TokenKind> = Token & { kind: K };

// The one way to test a token: by kind, and for words and punctuation by value. Words are
// upper-cased once by the tokenizer, so a keyword is compared as written in upper case; none of
// these allocates (they run for every token of a statement the parser rejected).

/** A word: a keyword or an unquoted name. */
export function isWord(token: Token | undefined): token is TokenOf<"word"> {
  return token?.kind === "word";
}

/** The word `word`, given in upper case (`isKeyword(token, "FROM")`). */
export function isKeyword(token: Token | undefined, word: string): token is TokenOf<"word"> {
  return token?.kind === "word" && token.value === word;
}

/** One of `words`, given in upper case. */
export function isKeywordIn(token: Token | undefined, words: ReadonlySet<string>): token is TokenOf<"word"> {
  return token?.kind === "word" && words.has(token.value);
}

/** The punctuation character `char`: never a string or quoted identifier that holds it. */
export function isPunct(token: Token | undefined, char: string): token is TokenOf<"punct"> {
  return token?.kind === "punct" && token.value === char;
}

/** A name: a word or a backquoted identifier. */
export function isName(token: Token | undefined): token is TokenOf<"word" | "quoted_identifier"> {
  return token?.kind === "word" || token?.kind === "quoted_identifier";
}

/** A quoted string. */
export function isString(token: Token | undefined): token is TokenOf<"string"> {
  return token?.kind === "string";
}

function isWordChar(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    code === 0x5f ||
    code === 0x24 ||
    code >= 0x80
  );
}

function unterminated(what: string): Refusal {
  return refuse("parse_error", `Unterminated ${what} in the statement.`);
}

/** Reads a quoted run starting at `start`; returns the unquoted value and the index after it. */
function readQuoted(sql: string, start: number, quote: string, escapes: boolean): { value: string; end: number } | undefined {
  let value = "";
  for (let i = start + 1; i < sql.length; i++) {
    const char = sql[i];
    if (escapes && char === "\\") {
      value += sql[i + 1] ?? "";
      i++;
    } else if (char === quote) {
      if (sql[i + 1] !== quote) return { value, end: i + 1 };
      value += quote;
      i++;
    } else {
      value += char;
    }
  }
  return undefined;
}

export function tokenizeMysql(sql: string): Token[] | Refusal {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const code = sql.charCodeAt(i);
    const char = sql[i] ?? "";
    if (code <= 0x20) {
      i++;
    } else if (char === "#" || (char === "-" && sql[i + 1] === "-" && (i + 2 >= sql.length || sql.charCodeAt(i + 2) <= 0x20))) {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
    } else if (char === "-" && sql[i + 1] === "-") {
      // Not a comment to MySQL (no space after the dashes): refuse rather than guess.
      const hazard = checkLineComment(sql.slice(i, i + 3));
      if (hazard) return hazard;
      tokens.push({ kind: "punct", value: "-", start: i, end: i + 1 });
      i++;
    } else if (char === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      if (end < 0) return unterminated("comment");
      const hazard = checkBlockComment(sql.slice(i, end + 2));
      if (hazard) return hazard;
      i = end + 2;
    } else if (char === "'" || char === '"') {
      const read = readQuoted(sql, i, char, true);
      if (!read) return unterminated("string");
      const hazard = checkStringLiteral(sql.slice(i, read.end));
      if (hazard) return hazard;
      tokens.push({ kind: "string", value: read.value, start: i, end: read.end });
      i = read.end;
    } else if (char === "`") {
      const read = readQuoted(sql, i, "`", false);
      if (!read) return unterminated("quoted identifier");
      tokens.push({ kind: "quoted_identifier", value: read.value, start: i, end: read.end });
      i = read.end;
    } else if (isWordChar(code)) {
      let end = i + 1;
      while (end < sql.length && isWordChar(sql.charCodeAt(end))) end++;
      const text = sql.slice(i, end);
      const numeric = text.charCodeAt(0) >= 0x30 && text.charCodeAt(0) <= 0x39;
      tokens.push({ kind: numeric ? "number" : "word", value: numeric ? text : text.toUpperCase(), start: i, end });
      i = end;
    } else {
      tokens.push({ kind: "punct", value: char, start: i, end: i + 1 });
      i++;
    }
  }
  return tokens;
}
