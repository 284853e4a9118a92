// EXPLAIN forms of MySQL/MariaDB that sql-parser-cst lacks: FORMAT=JSON|TREE|TRADITIONAL,
// EXTENDED and PARTITIONS (they change how the plan is shown, not what runs), and MariaDB's
// ANALYZE [FORMAT=JSON] SELECT, which runs the SELECT like the SELECT itself would. For a second
// parse only, those words are blanked out (with spaces, so positions stay the user's).

import { isKeyword, isKeywordIn, isPunct, tokenizeMysql, type Token } from "./mysql-tokens.js";

const EXPLAIN_WORDS = new Set(["EXPLAIN", "DESCRIBE", "DESC"]);
const FORMATS = new Set(["JSON", "TREE", "TRADITIONAL"]);
const DISPLAY_WORDS = new Set(["EXTENDED", "PARTITIONS"]);
const QUERY_STARTS = new Set(["SELECT", "WITH"]);

/** How many tokens from `at` make a `FORMAT = name` clause, or 0. */
function formatClause(tokens: Token[], at: number): number {
  return isKeyword(tokens[at], "FORMAT") && isPunct(tokens[at + 1], "=") && isKeywordIn(tokens[at + 2], FORMATS) ? 3 : 0;
}

/** The statement with those words blanked, or undefined when it has none of them. */
export function blankExplainModifiers(sql: string): string | undefined {
  const tokens = tokenizeMysql(sql);
  if (!Array.isArray(tokens)) return undefined;
  const blanked: Token[] = [];
  if (isKeywordIn(tokens[0], EXPLAIN_WORDS)) {
    const at = isKeyword(tokens[1], "ANALYZE") ? 2 : 1;
    const format = formatClause(tokens, at);
    if (format > 0) blanked.push(...tokens.slice(at, at + format));
    else if (isKeywordIn(tokens[at], DISPLAY_WORDS)) blanked.push(tokens[at]!);
  } else if (isKeyword(tokens[0], "ANALYZE")) {
    // Only before a query: ANALYZE TABLE is another statement, and TABLE t alone would read.
    const format = formatClause(tokens, 1);
    if (isKeywordIn(tokens[1 + format], QUERY_STARTS)) blanked.push(...tokens.slice(0, 1 + format));
  }
  if (blanked.length === 0) return undefined;
  let text = sql;
  for (const token of blanked) text = text.slice(0, token.start) + " ".repeat(token.end - token.start) + text.slice(token.end);
  return text;
}
