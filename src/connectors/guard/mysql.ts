// MySQL 8 / MariaDB 10.11 rules: sql-parser-cst's "mysql" grammar (it has LATERAL and `->>`),
// with comments kept so that text the server would execute cannot hide in one.

import { FormattedSyntaxError, parse, type Program } from "sql-parser-cst";
import { serverWhitespaceAsSpaces } from "./server-whitespace.js";
import { classifyProgram, type DialectHook } from "./cst-rules.js";
import { blankExplainModifiers } from "./mysql-explain-forms.js";
import { secondParseText } from "./mysql-keyword-functions.js";
import { checkBlockComment, checkLineComment, checkStringLiteral } from "./mysql-lexing.js";
import { classifyUnparsedMysql } from "./mysql-show.js";
import { sqlParserCstError } from "./parse-errors.js";
import type { GuardVerdict, Refusal } from "./verdict.js";

const OPTIONS = { dialect: "mysql", includeComments: true, filename: "statement" } as const;

/** Comments and strings anywhere in the tree, including the program's own leading/trailing. */
function findLexicalHazard(value: unknown): Refusal | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findLexicalHazard(item);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const node = value as { type?: unknown; text?: unknown };
  if (typeof node.text === "string") {
    if (node.type === "block_comment") return checkBlockComment(node.text);
    if (node.type === "line_comment") return checkLineComment(node.text);
    // A quoted alias (`AS 'a'`, `AS "a"`) is lexed as a string is: the same escapes apply.
    if (node.type === "string_literal" || (node.type === "identifier" && /^['"]/.test(node.text))) return checkStringLiteral(node.text);
  }
  for (const child of Object.values(value)) {
    if (typeof child === "object" && child !== null) {
      const found = findLexicalHazard(child);
      if (found) return found;
    }
  }
  return undefined;
}

const noDialectStatements: DialectHook = () => undefined;

export function classifyMysql(statement: string): GuardVerdict {
  const sql = serverWhitespaceAsSpaces("mysql", statement);
  let program: Program;
  try {
    program = parse(sql, OPTIONS);
  } catch (error) {
    if (!(error instanceof FormattedSyntaxError)) throw error;
    const reparsed = reparse(sql);
    if (!reparsed) return classifyUnparsedMysql(sql, sqlParserCstError(error.message));
    program = reparsed;
  }
  return findLexicalHazard(program) ?? classifyProgram(program, "mysql", noDialectStatements);
}

/** The tree the rules judge (after the second parse when the first fails); undefined when
 * neither parses (SHOW forms the grammar lacks, or not SQL at all). */
export function parseMysqlProgram(statement: string): Program | undefined {
  const sql = serverWhitespaceAsSpaces("mysql", statement);
  try {
    return parse(sql, OPTIONS);
  } catch (error) {
    if (!(error instanceof FormattedSyntaxError)) throw error;
    return reparse(sql);
  }
}

/** The second parse, for `SELECT REPLACE(...)`, `EXPLAIN FORMAT=JSON ...` and the like;
 * undefined when it fails too, and then the first parse's error is the one to report. */
function reparse(sql: string): Program | undefined {
  const blanked = blankExplainModifiers(sql);
  const rewritten = secondParseText(blanked ?? sql) ?? blanked;
  if (rewritten === undefined) return undefined;
  try {
    return parse(rewritten, OPTIONS);
  } catch (error) {
    if (error instanceof FormattedSyntaxError) return undefined;
    throw error;
  }
}

/** Warms the parser so the first real request does not pay for JIT compilation. */
export function warmMysqlParser(): void {
  parse("SELECT a, COUNT(*) FROM t WHERE b = 'x' GROUP BY a ORDER BY 2 DESC LIMIT 5", OPTIONS);
}
