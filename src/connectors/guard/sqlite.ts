// SQLite rules: sql-parser-cst's complete SQLite grammar, plus an explicit allowlist of the
// PRAGMAs that only describe the schema. SQLite has no executable comments, so none are kept.

import { FormattedSyntaxError, parse, type Program } from "sql-parser-cst";
import { serverWhitespaceAsSpaces } from "./server-whitespace.js";
import { classifyProgram, type DialectHook } from "./cst-rules.js";
import { sqlParserCstError } from "./parse-errors.js";
import { pragmaNotAllowed, READ_ONLY_PRAGMAS } from "./sqlite-pragmas.js";
import { accept, refuse, refuseSession, type GuardVerdict } from "./verdict.js";

const OPTIONS = { dialect: "sqlite", filename: "statement" } as const;

const classifyPragma: DialectHook = (statement) => {
  if (statement.type !== "pragma_stmt") return undefined;
  const pragma = statement.pragma;
  const nameNode = pragma.type === "pragma_assignment" || pragma.type === "pragma_func_call" ? pragma.name : pragma;
  const name = (nameNode.type === "member_expr" ? nameNode.property : nameNode) as { type: string; name?: string };
  const pragmaName = name.type === "identifier" && name.name !== undefined ? name.name.toLowerCase() : "";
  if (pragma.type === "pragma_assignment") return refuseSession(`PRAGMA ${pragmaName} = ...`);
  if (!READ_ONLY_PRAGMAS.has(pragmaName)) {
    return refuse("pragma_not_allowed", pragmaNotAllowed(pragmaName));
  }
  return accept("pragma");
};

export function classifySqlite(sql: string): GuardVerdict {
  let program: Program;
  try {
    program = parse(serverWhitespaceAsSpaces("sqlite", sql), OPTIONS);
  } catch (error) {
    if (error instanceof FormattedSyntaxError) return sqlParserCstError(error.message);
    throw error;
  }
  return classifyProgram(program, "sqlite", classifyPragma);
}

/** The tree the rules judge; undefined when the statement does not parse. */
export function parseSqliteProgram(sql: string): Program | undefined {
  try {
    return parse(serverWhitespaceAsSpaces("sqlite", sql), OPTIONS);
  } catch (error) {
    if (error instanceof FormattedSyntaxError) return undefined;
    throw error;
  }
}

/** Warms the parser so the first real request does not pay for JIT compilation. */
export function warmSqliteParser(): void {
  parse("SELECT a, COUNT(*) FROM t WHERE b = 'x' GROUP BY a ORDER BY 2 DESC LIMIT 5", OPTIONS);
}
