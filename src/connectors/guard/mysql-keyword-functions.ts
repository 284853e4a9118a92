// sql-parser-cst reads some MySQL/MariaDB built-in functions as the keywords they share a name
// with (REPLACE and INSERT the statements, REPEAT the loop, CURRENT_DATE without parentheses),
// so `SELECT REPLACE(name, 'a', 'b')` does not parse, and lacks some argument forms:
// `GROUP_CONCAT(... SEPARATOR ',')`, `CONVERT(x USING utf8mb4)`, a character set after a cast's
// type (`CAST(x AS CHAR CHARACTER SET utf8mb4)`) and the integer types of a cast
// (`CAST(x AS SIGNED)`, `AS UNSIGNED INTEGER`), and CHAR as CONVERT's type. For a second parse only, each call of one is
// written as a quoted name, which the grammar reads as an ordinary function call, the separator
// or character set (a constant) is blanked out, and a cast's SIGNED or UNSIGNED is read as INT
// (a type name: nothing there runs); the statement the server runs is the one the user wrote.

import { tokenizeMysql, type Token } from "./mysql-tokens.js";

/** Found by calling every keyword of sql-parser-cst's MySQL and MariaDB lists in a SELECT, on
 * the parser and on MariaDB (tests/unit/guard-builtins.test.ts): those the server runs as a
 * built-in function with an ordinary argument list, and CONVERT. None is in
 * dangerous-functions.ts. */
export const KEYWORD_FUNCTIONS: ReadonlySet<string> = new Set([
  "CHAR",
  "CHARACTER",
  "CONVERT",
  "CURRENT_DATE",
  "CURRENT_TIME",
  "CURRENT_TIMESTAMP",
  "CURRENT_USER",
  "DATABASE",
  "DEFAULT",
  "INSERT",
  "INTERVAL",
  "LOCALTIME",
  "LOCALTIMESTAMP",
  "MOD",
  "REPEAT",
  "REPLACE",
  "SCHEMA",
  "UTC_DATE",
  "UTC_TIME",
  "UTC_TIMESTAMP",
]);

/** The statement with every call of a keyword-named function quoted, those constant arguments
 * blanked and a cast's integer type read as INT, or undefined when there is none of them. The first word is never touched: it is the statement's verb (REPLACE INTO, INSERT). */
export function quoteKeywordFunctions(sql: string): string | undefined {
  const tokens = tokenizeMysql(sql);
  if (!Array.isArray(tokens)) return undefined;
  let quoted = "";
  let copied = 0;
  for (let i = 1; i < tokens.length - 1; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1]!;
    if (token.kind !== "word") continue;
    const castType = isCastAs(token) ? integerCastType(tokens, i + 1) : undefined;
    if (castType) {
      // Padded to the same length, so that a parse error still points at the user's own text.
      quoted += sql.slice(copied, next.start) + "INT".padEnd(castType.end - next.start);
      copied = castType.end;
      i = castType.last;
    } else if (
      (KEYWORD_FUNCTIONS.has(token.value) && next.kind === "punct" && next.value === "(" && !isCastAs(tokens[i - 1])) ||
      isConvertedToChar(tokens, i)
    ) {
      quoted += `${sql.slice(copied, token.start)}\`${sql.slice(token.start, token.end)}\``;
      copied = token.end;
    } else {
      const constant = constantArgument(tokens, i);
      if (constant === undefined) continue;
      quoted += sql.slice(copied, token.start) + " ".repeat(tokens[constant]!.end - token.start);
      copied = tokens[constant]!.end;
      i = constant;
    }
  }
  return copied === 0 ? undefined : quoted + sql.slice(copied);
}

/** AS, after which CHAR(10) is a cast's type rather than a call of CHAR(). */
function isCastAs(token: Token | undefined): boolean {
  return token?.kind === "word" && token.value === "AS";
}

/** CHAR as CONVERT(x, CHAR)'s type, with no length: quoted, the grammar reads it as a name. */
function isConvertedToChar(tokens: readonly Token[], at: number): boolean {
  const [before, token, after] = [tokens[at - 1], tokens[at], tokens[at + 1]];
  return before?.kind === "punct" && before.value === "," && token?.kind === "word" && token.value === "CHAR" && after?.kind !== undefined && after.value !== "(";
}

/** Where a constant argument starting at `tokens[at]` ends (the index of its last token), when
 * it is one just before a call's closing parenthesis: `SEPARATOR 'x'`, `USING charset`,
 * `CHARACTER SET charset` or `CHARSET charset`. */
function constantArgument(tokens: readonly Token[], at: number): number | undefined {
  const words = (...values: string[]) => values.every((value, k) => tokens[at + k]?.kind === "word" && tokens[at + k]!.value === value);
  const closes = (k: number) => tokens[at + k]?.kind === "punct" && tokens[at + k]!.value === ")";
  const name = (k: number) => tokens[at + k]?.kind === "word";
  if (words("SEPARATOR") && tokens[at + 1]?.kind === "string" && closes(2)) return at + 1;
  if ((words("USING") || words("CHARSET")) && name(1) && closes(2)) return at + 1;
  if (words("CHARACTER", "SET") && name(2) && closes(3)) return at + 2;
  return undefined;
}

/** `SIGNED`, `UNSIGNED`, `SIGNED INTEGER` or `UNSIGNED INT` starting at `tokens[at]` and closing
 * a cast (`)` follows): the index of its last token and where it ends. */
function integerCastType(tokens: readonly Token[], at: number): { last: number; end: number } | undefined {
  const first = tokens[at];
  if (first?.kind !== "word" || (first.value !== "SIGNED" && first.value !== "UNSIGNED")) return undefined;
  const second = tokens[at + 1];
  const last = second?.kind === "word" && (second.value === "INT" || second.value === "INTEGER") ? at + 1 : at;
  const after = tokens[last + 1];
  if (after?.kind !== "punct" || after.value !== ")") return undefined;
  return { last, end: tokens[last]!.end };
}
