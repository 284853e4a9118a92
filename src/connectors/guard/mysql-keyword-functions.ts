// sql-parser-cst reads some MySQL/MariaDB built-in functions as the keywords they share a name
// with (REPLACE and INSERT the statements, REPEAT the loop, CURRENT_DATE without parentheses),
// so `SELECT REPLACE(name, 'a', 'b')` does not parse, and lacks two argument forms:
// `GROUP_CONCAT(... SEPARATOR ',')` and `CONVERT(x USING utf8mb4)`. For a second parse only,
// each call of one is written as a quoted name, which the grammar reads as an ordinary function
// call, and the separator or character set (a constant) is blanked out; the statement the server
// runs is the one the user wrote.

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

/** The statement with every call of a keyword-named function quoted and those constant
 * arguments blanked, or undefined when there is none. The first word is never touched: it is the statement's verb (REPLACE INTO, INSERT). */
export function quoteKeywordFunctions(sql: string): string | undefined {
  const tokens = tokenizeMysql(sql);
  if (!Array.isArray(tokens)) return undefined;
  let quoted = "";
  let copied = 0;
  for (let i = 1; i < tokens.length - 1; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1]!;
    if (token.kind !== "word") continue;
    if (KEYWORD_FUNCTIONS.has(token.value) && next.kind === "punct" && next.value === "(") {
      quoted += `${sql.slice(copied, token.start)}\`${sql.slice(token.start, token.end)}\``;
      copied = token.end;
    } else if (isConstantArgument(token, next, tokens[i + 2])) {
      quoted += sql.slice(copied, token.start) + " ".repeat(next.end - token.start);
      copied = next.end;
      i++;
    }
  }
  return copied === 0 ? undefined : quoted + sql.slice(copied);
}

/** `SEPARATOR 'x'` before a call's closing parenthesis, or `USING charset` there. */
function isConstantArgument(token: Token, next: Token, after: Token | undefined): boolean {
  if (after?.kind !== "punct" || after.value !== ")") return false;
  return (token.value === "SEPARATOR" && next.kind === "string") || (token.value === "USING" && next.kind === "word");
}
