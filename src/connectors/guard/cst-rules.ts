// Rules shared by MySQL/MariaDB and SQLite, on sql-parser-cst's syntax tree: one statement,
// a read at the top, and no write, INTO, lock or dangerous call anywhere beneath it.

import type { Node, Program } from "sql-parser-cst";
import { findDangerousFunction, findDangerousRelation } from "./dangerous-functions.js";
import { pragmaNotAllowed, READ_ONLY_PRAGMAS, tableValuedPragma } from "./sqlite-pragmas.js";
import {
  accept,
  refuse,
  refuseCteWrite,
  refuseDangerousFunction,
  refuseDangerousRelation,
  refuseEmpty,
  refuseExplainAnalyzeWrite,
  refuseLeftByEarlier,
  refuseLocking,
  refuseMultiple,
  refuseSession,
  refuseTransaction,
  refuseWrite,
  type GuardVerdict,
  type Refusal,
} from "./verdict.js";

export type CstDialect = "mysql" | "sqlite";

type Statement = Program["statements"][number];

/** Classifies a statement the generic rules do not know (SQLite PRAGMA); undefined = not mine. */
export type DialectHook = (statement: Statement) => GuardVerdict | undefined;

const READS: ReadonlySet<string> = new Set(["select_stmt", "compound_select_stmt"]);
const WRITES: ReadonlySet<string> = new Set(["insert_stmt", "update_stmt", "delete_stmt", "merge_stmt"]);

const TRANSACTION: ReadonlySet<string> = new Set([
  "start_transaction_stmt",
  "commit_transaction_stmt",
  "rollback_transaction_stmt",
  "savepoint_stmt",
  "release_savepoint_stmt",
]);

const SESSION: ReadonlySet<string> = new Set([
  "set_stmt",
  "set_parameter_stmt",
  "reset_parameter_stmt",
  "set_role_stmt",
  "reset_role_stmt",
  "set_time_zone_parameter_stmt",
  "prepare_stmt",
  "execute_stmt",
  "execute_immediate_stmt",
  "deallocate_stmt",
  "declare_stmt",
]);

/** "attach_database_stmt" -> "ATTACH DATABASE"; REPLACE is an insert_stmt with another
 * keyword, and BEGIN/END are transaction statements better named by what was written. */
export function statementLabel(node: Node): string {
  if (node.type === "insert_stmt") {
    const first = node.clauses[0];
    if (first?.type === "insert_clause") return first.insertKw.name;
  }
  if (node.type === "start_transaction_stmt") return node.startKw.name;
  if (node.type === "commit_transaction_stmt") return node.commitKw.name;
  if (node.type === "rollback_transaction_stmt") return node.rollbackKw.name;
  return node.type.replace(/_stmt$/, "").replaceAll("_", " ").toUpperCase();
}

function isNode(value: unknown): value is Node {
  return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string";
}

function lastName(name: Node): string | undefined {
  if (name.type === "identifier") return name.name;
  if (name.type === "member_expr") return isNode(name.property) ? lastName(name.property) : undefined;
  return undefined;
}

/** Tables of the system schemas (MySQL/MariaDB) that show what earlier statements on the
 * connection left (its counters, its variables: `SHOW SESSION STATUS` as a table, which
 * mysql-show.ts refuses as a statement; @@warning_count and @@last_insert_id), or other
 * connections' variables, each with what to read instead. Pulse's connections are pooled. */
const SESSION_STATE_SCHEMAS = new Set(["information_schema", "performance_schema"]);
const SESSION_STATE_TABLES = new Map([
  ["session_status", "Use global_status for the server's counters."],
  ["session_variables", "Use global_variables for the server's settings."],
  ["status_by_thread", "Use global_status for the server's counters."],
  ["variables_by_thread", "Use global_variables for the server's settings."],
  ["user_variables_by_thread", "User variables are not kept between statements."],
]);

/** The table of SESSION_STATE_TABLES `node` names, with its advice; undefined for any other. */
function sessionStateTable({ object, property }: Extract<Node, { type: "member_expr" }>): [name: string, advice: string] | undefined {
  if (object.type !== "identifier" || !SESSION_STATE_SCHEMAS.has(object.name.toLowerCase()) || property.type !== "identifier") return undefined;
  const name = property.name.toLowerCase();
  const advice = SESSION_STATE_TABLES.get(name);
  return advice === undefined ? undefined : [name, advice];
}

/** The check for one node, before its children are visited. */
function inspect(node: Node, dialect: CstDialect): Refusal | undefined {
  switch (node.type) {
    case "func_call": {
      const name = lastName(node.name);
      const danger = name === undefined ? undefined : findDangerousFunction(dialect, name);
      return danger ? refuseDangerousFunction(danger.name, danger.why) : undefined;
    }
    case "identifier": {
      const danger = findDangerousRelation(dialect, node.name);
      if (danger) return refuseDangerousRelation(danger.name, danger.why);
      // A PRAGMA read as a table (`FROM pragma_database_list`) obeys the PRAGMA allow-list.
      const pragma = dialect === "sqlite" ? tableValuedPragma(node.name) : undefined;
      return pragma !== undefined && !READ_ONLY_PRAGMAS.has(pragma) ? refuse("pragma_not_allowed", pragmaNotAllowed(pragma)) : undefined;
    }
    case "member_expr": {
      const table = dialect === "mysql" ? sessionStateTable(node) : undefined;
      return table ? refuseLeftByEarlier(`The ${table[0]} table`, table[1]) : undefined;
    }
    case "binary_expr":
      return node.operator === ":=" ? refuseSession("Assigning a user variable (@var := ...)") : undefined;
    case "into_table_clause":
      return refuse("select_into", "SELECT ... INTO creates a table; only reads are allowed.");
    case "into_variables_clause":
      return refuse("select_into", "SELECT ... INTO @variable sets session variables; only reads are allowed.");
    case "into_outfile_clause":
    case "into_dumpfile_clause":
      return refuse(
        "into_outfile",
        `SELECT ... INTO ${node.type === "into_outfile_clause" ? "OUTFILE" : "DUMPFILE"} writes a file on the database server; only reads are allowed.`,
      );
    case "for_clause":
      return refuseLocking(`FOR ${[node.lockStrengthKw].flat().map((kw) => kw.name).join(" ")}`);
    case "lock_in_share_mode_clause":
      return refuseLocking("LOCK IN SHARE MODE");
    default:
      if (WRITES.has(node.type)) return refuseCteWrite(statementLabel(node));
      // Only reads nest inside a read; any other statement down here is a surprise.
      if (node.type.endsWith("_stmt") && !READS.has(node.type)) return refuseWrite(statementLabel(node));
      return undefined;
  }
}

/** Visits every node below `value`, in source order, and returns the first refusal. */
function findRefusal(value: unknown, dialect: CstDialect): Refusal | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findRefusal(item, dialect);
      if (found) return found;
    }
    return undefined;
  }
  if (!isNode(value)) return undefined;
  const here = inspect(value, dialect);
  if (here) return here;
  for (const child of Object.values(value)) {
    if (typeof child === "object" && child !== null) {
      const found = findRefusal(child, dialect);
      if (found) return found;
    }
  }
  return undefined;
}

function findBelow(node: Node, dialect: CstDialect): Refusal | undefined {
  for (const child of Object.values(node)) {
    if (typeof child === "object" && child !== null) {
      const found = findRefusal(child, dialect);
      if (found) return found;
    }
  }
  return undefined;
}

function classifyExplain(statement: Extract<Statement, { type: "explain_stmt" }>, dialect: CstDialect, hook: DialectHook): GuardVerdict {
  const target = statement.statement;
  const analyze = statement.analyzeKw !== undefined;
  if (WRITES.has(target.type)) {
    if (analyze) return refuseExplainAnalyzeWrite(statementLabel(target));
    // Plain EXPLAIN only plans the write; calls inside are still refused on principle.
    return findBelow(target, dialect) ?? accept("explain");
  }
  const inner = classifyStatement(target, dialect, hook);
  if (inner.ok || !analyze) return inner.ok ? accept("explain") : inner;
  if (inner.rule === "select_into") return refuseExplainAnalyzeWrite("SELECT ... INTO");
  return inner.rule === "not_read_only" ? refuseExplainAnalyzeWrite(statementLabel(target)) : inner;
}

function classifyStatement(statement: Statement, dialect: CstDialect, hook: DialectHook): GuardVerdict {
  if (READS.has(statement.type)) return findRefusal(statement, dialect) ?? accept("select");
  if (statement.type === "explain_stmt") return classifyExplain(statement, dialect, hook);
  const special = hook(statement);
  if (special) return special;
  if (TRANSACTION.has(statement.type)) return refuseTransaction(statementLabel(statement));
  if (SESSION.has(statement.type)) return refuseSession(statementLabel(statement));
  return refuseWrite(statementLabel(statement));
}

/** One statement, optionally followed by the `empty` node a trailing semicolon leaves. */
export function classifyProgram(program: Program, dialect: CstDialect, hook: DialectHook): GuardVerdict {
  const statements = program.statements;
  const real = statements.filter((statement) => statement.type !== "empty");
  if (real.length === 0) return refuseEmpty();
  if (real.length > 1) return refuseMultiple(real.length);
  const [first] = statements;
  if (first === undefined || first.type === "empty" || statements.length > 2) {
    return refuse("multiple_statements", "Found stray semicolons around the statement; send one statement with at most one trailing semicolon.");
  }
  return classifyStatement(first, dialect, hook);
}
