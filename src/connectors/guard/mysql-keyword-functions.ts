// sql-parser-cst reads some MySQL/MariaDB built-in functions as the keywords they share a name
// with (REPLACE and INSERT the statements, REPEAT the loop, CURRENT_DATE without parentheses),
// so `SELECT REPLACE(name, 'a', 'b')` does not parse. For a second parse only, each call of one
// is written as a quoted name, which the grammar reads as an ordinary function call; the
// statement the server runs is the one the user wrote.

import { tokenizeMysql } from "./mysql-tokens.js";

/** Found by calling every keyword of sql-parser-cst's MySQL and MariaDB lists in a SELECT, on
 * the parser and on MariaDB (tests/unit/guard-builtins.test.ts): those the server runs as a
 * built-in function with an ordinary argument list. None is in dangerous-functions.ts. */
export const KEYWORD_FUNCTIONS: ReadonlySet<string> = new Set([
  "CHAR",
  "CHARACTER",
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

/** The statement with every call of a keyword-named function quoted, or undefined when there is
 * none. The first word is never touched: it is the statement's verb (REPLACE INTO, INSERT). */
export function quoteKeywordFunctions(sql: string): string | undefined {
  const tokens = tokenizeMysql(sql);
  if (!Array.isArray(tokens)) return undefined;
  let quoted = "";
  let copied = 0;
  for (let i = 1; i < tokens.length - 1; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1]!;
    if (token.kind !== "word" || !KEYWORD_FUNCTIONS.has(token.value) || next.kind !== "punct" || next.value !== "(") continue;
    quoted += `${sql.slice(copied, token.start)}\`${sql.slice(token.start, token.end)}\``;
    copied = token.end;
  }
  return copied === 0 ? undefined : quoted + sql.slice(copied);
}
