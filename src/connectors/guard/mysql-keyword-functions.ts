// sql-parser-cst reads some MySQL/MariaDB built-in functions as the keywords they share a name
// with (REPLACE and INSERT the statements, REPEAT the loop, CURRENT_DATE without parentheses),
// so `SELECT REPLACE(name, 'a', 'b')` does not parse, and lacks some forms: `GROUP_CONCAT(...
// SEPARATOR ',')`, `CONVERT(x USING utf8mb4)`, a character set after a cast's type (`CAST(x AS
// CHAR CHARACTER SET utf8mb4)`), the integer types of a cast (`CAST(x AS SIGNED)`, `AS UNSIGNED
// INTEGER`), CHAR as CONVERT's type, the SQL-standard arguments of TRIM and SUBSTRING
// (`TRIM(LEADING '0' FROM x)`, `SUBSTRING(x FROM 2 FOR 3)`) and system variables (`@@version`).
// For a second parse only, each call of one is written as a quoted name, which the grammar reads
// as an ordinary function call; the separator or character set (a constant) and TRIM's side are
// blanked out; a cast's SIGNED or UNSIGNED is read as INT (a type name: nothing there runs);
// TRIM's and SUBSTRING's FROM and FOR become commas (their arguments stay, each still judged);
// and `@@name` becomes a column name (reading a system variable changes nothing). The statement
// the server runs is the one the user wrote.

import { isKeyword, isKeywordIn, isPunct, isString, isWord, tokenizeMysql, type Token } from "./mysql-tokens.js";

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

/** Functions whose arguments may be separated by FROM and FOR (and TRIM's also preceded by a
 * side), as `TRIM(LEADING '0' FROM x)`. */
const STANDARD_ARGUMENT_FUNCTIONS: ReadonlySet<string> = new Set(["TRIM", "SUBSTRING", "SUBSTR"]);
const TRIM_SIDES: ReadonlySet<string> = new Set(["LEADING", "TRAILING", "BOTH"]);

/** The statement as the grammar can read it (see above), or undefined when nothing in it needs
 * rewriting. Lengths are kept where they can be, so that a parse error still points at the
 * user's own text. The first word is never touched: it is the statement's verb (REPLACE INTO,
 * INSERT). */
export function secondParseText(sql: string): string | undefined {
  const tokens = tokenizeMysql(sql);
  if (!Array.isArray(tokens)) return undefined;
  let rewritten = "";
  let copied = 0;
  const put = (start: number, end: number, text: string) => {
    rewritten += sql.slice(copied, start) + text;
    copied = end;
  };
  /** The calls of STANDARD_ARGUMENT_FUNCTIONS open around the token, by parenthesis depth. */
  const calls: { name: string; depth: number }[] = [];
  let depth = 0;
  for (let i = 1; i < tokens.length - 1; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1]!;
    if (isPunct(token, "(")) {
      depth++;
    } else if (isPunct(token, ")")) {
      if (calls.at(-1)?.depth === depth) calls.pop();
      depth--;
    } else if (isSystemVariable(tokens, i)) {
      put(token.start, next.end, "__");
      i++;
    }
    if (!isWord(token)) continue;
    const opensCall = isPunct(next, "(");
    const call = calls.at(-1)?.depth === depth ? calls.at(-1) : undefined;
    const castType = isCastAs(token) ? integerCastType(tokens, i + 1) : undefined;
    if (castType) {
      put(next.start, castType.end, "INT".padEnd(castType.end - next.start));
      i = castType.last;
    } else if ((KEYWORD_FUNCTIONS.has(token.value) && opensCall && !isCastAs(tokens[i - 1])) || isConvertedToChar(tokens, i)) {
      put(token.start, token.end, `\`${sql.slice(token.start, token.end)}\``);
    } else if (STANDARD_ARGUMENT_FUNCTIONS.has(token.value) && opensCall) {
      calls.push({ name: token.value, depth: depth + 1 });
    } else if (call?.name === "TRIM" && TRIM_SIDES.has(token.value)) {
      put(token.start, token.end, " ".repeat(token.end - token.start));
    } else if (call && (token.value === "FROM" || token.value === "FOR")) {
      // TRIM(BOTH FROM x) trims spaces: no argument before FROM, no comma.
      const previous = tokens[i - 1];
      const first = isPunct(previous, "(") || isKeywordIn(previous, TRIM_SIDES);
      put(token.start, token.end, (first ? " " : ",").padEnd(token.end - token.start));
    } else {
      const constant = constantArgument(tokens, i);
      if (constant === undefined) continue;
      put(token.start, tokens[constant]!.end, " ".repeat(tokens[constant]!.end - token.start));
      i = constant;
    }
  }
  return copied === 0 ? undefined : rewritten + sql.slice(copied);
}

/** System variables that hold what the connection's previous statement left (as FOUND_ROWS()
 * does, see dangerous-functions.ts): on Pulse's shared connections, not the user's. */
const STATEMENT_STATE_VARIABLES: ReadonlySet<string> = new Set(["WARNING_COUNT", "ERROR_COUNT", "IDENTITY", "LAST_INSERT_ID", "INSERT_ID", "LAST_GTID"]);

/** `@@name` or `@@scope.name` (spaces and comments may stand around the dot, as the server
 * reads them), the two @ written together and apart from a word before them (`SELECT@@x` would
 * join it), not assigned to (`@@x := 1`) and naming none of STATEMENT_STATE_VARIABLES: the
 * others, left as they are, do not parse and are refused. */
function isSystemVariable(tokens: readonly Token[], at: number): boolean {
  const first = tokens[at];
  const second = tokens[at + 1];
  const word = tokens[at + 2];
  if (!isPunct(first, "@") || !isPunct(second, "@") || second.start !== first.end) return false;
  if (!isWord(word) || word.start !== second.end) return false;
  // Joined to a word, or to any token spelled @ (`@@@x`, and `'@'@@x`, a syntax error to the
  // server too): left as written.
  const before = tokens[at - 1];
  if (before !== undefined && before.end === first.start && (isWord(before) || before.value === "@")) return false;
  const scoped = isPunct(tokens[at + 3], ".");
  const name = scoped ? tokens[at + 4] : word;
  if (!isWord(name) || STATEMENT_STATE_VARIABLES.has(name.value) || STATEMENT_STATE_VARIABLES.has(word.value)) return false;
  return !isPunct(tokens[scoped ? at + 5 : at + 3], ":");
}

/** AS, after which CHAR(10) is a cast's type rather than a call of CHAR(). */
function isCastAs(token: Token | undefined): boolean {
  return isKeyword(token, "AS");
}

/** CHAR as CONVERT(x, CHAR)'s type, with no length: quoted, the grammar reads it as a name. */
function isConvertedToChar(tokens: readonly Token[], at: number): boolean {
  const after = tokens[at + 1];
  // Any kind spelled `(` counts: after CHAR, a string '(' is a syntax error to the server too.
  return isPunct(tokens[at - 1], ",") && isKeyword(tokens[at], "CHAR") && after !== undefined && after.value !== "(";
}

/** Where a constant argument starting at `tokens[at]` ends (the index of its last token), when
 * it is one just before a call's closing parenthesis: `SEPARATOR 'x'`, `USING charset`,
 * `CHARACTER SET charset` or `CHARSET charset`. */
function constantArgument(tokens: readonly Token[], at: number): number | undefined {
  const first = tokens[at];
  if (isKeyword(first, "SEPARATOR") && isString(tokens[at + 1]) && isPunct(tokens[at + 2], ")")) return at + 1;
  if ((isKeyword(first, "USING") || isKeyword(first, "CHARSET")) && isWord(tokens[at + 1]) && isPunct(tokens[at + 2], ")")) return at + 1;
  if (isKeyword(first, "CHARACTER") && isKeyword(tokens[at + 1], "SET") && isWord(tokens[at + 2]) && isPunct(tokens[at + 3], ")")) return at + 2;
  return undefined;
}

/** `SIGNED`, `UNSIGNED`, `SIGNED INTEGER` or `UNSIGNED INT` starting at `tokens[at]` and closing
 * a cast (`)` follows): the index of its last token and where it ends. */
function integerCastType(tokens: readonly Token[], at: number): { last: number; end: number } | undefined {
  if (!isKeyword(tokens[at], "SIGNED") && !isKeyword(tokens[at], "UNSIGNED")) return undefined;
  const last = isKeyword(tokens[at + 1], "INT") || isKeyword(tokens[at + 1], "INTEGER") ? at + 1 : at;
  if (!isPunct(tokens[last + 1], ")")) return undefined;
  return { last, end: tokens[last]!.end };
}
