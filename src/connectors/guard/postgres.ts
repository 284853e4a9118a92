// PostgreSQL rules, on the tree of PostgreSQL's own parser (libpg-query, WASM): what the
// server will execute is exactly what we inspect, including nested comments and dollar quotes.

import { loadModule, parseSync } from "libpg-query";
import { findDangerousFunction } from "./dangerous-functions.js";
import { postgresParseError } from "./parse-errors.js";
import {
  accept,
  errorMessage,
  refuse,
  refuseCteWrite,
  refuseDangerousFunction,
  refuseEmpty,
  refuseExplainAnalyzeWrite,
  refuseLocking,
  refuseMultiple,
  refuseSession,
  refuseTransaction,
  refuseWrite,
  type GuardVerdict,
  type Refusal,
} from "./verdict.js";

type PgNode = Record<string, unknown>;

let loaded = false;

/** The WASM module loads asynchronously; after this, every parse is synchronous. */
export async function loadPostgresParser(): Promise<void> {
  await loadModule();
  parseSync("SELECT 1");
  loaded = true;
}

export function isPostgresParserLoaded(): boolean {
  return loaded;
}

const WRITES: ReadonlySet<string> = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);

/** Statements that change what later statements on this pooled connection see. */
const SESSION: ReadonlySet<string> = new Set([
  "VariableSetStmt",
  "DiscardStmt",
  "ListenStmt",
  "UnlistenStmt",
  "NotifyStmt",
  "PrepareStmt",
  "ExecuteStmt",
  "DeallocateStmt",
  "LockStmt",
  "DeclareCursorStmt",
  "FetchStmt",
  "ClosePortalStmt",
]);

const LABELS: Readonly<Record<string, string>> = {
  InsertStmt: "INSERT",
  UpdateStmt: "UPDATE",
  DeleteStmt: "DELETE",
  MergeStmt: "MERGE",
  CreateStmt: "CREATE TABLE",
  CreateTableAsStmt: "CREATE TABLE AS",
  IndexStmt: "CREATE INDEX",
  ViewStmt: "CREATE VIEW",
  DropStmt: "DROP",
  TruncateStmt: "TRUNCATE",
  CopyStmt: "COPY (which can write server files and run programs)",
  CallStmt: "CALL",
  DoStmt: "DO",
  LoadStmt: "LOAD",
  CheckPointStmt: "CHECKPOINT",
  ReindexStmt: "REINDEX",
  RenameStmt: "ALTER ... RENAME",
  AlterSystemStmt: "ALTER SYSTEM",
  DiscardStmt: "DISCARD",
  ListenStmt: "LISTEN",
  UnlistenStmt: "UNLISTEN",
  NotifyStmt: "NOTIFY",
  PrepareStmt: "PREPARE",
  ExecuteStmt: "EXECUTE",
  DeallocateStmt: "DEALLOCATE",
  LockStmt: "LOCK TABLE",
  DeclareCursorStmt: "DECLARE CURSOR",
  FetchStmt: "FETCH/MOVE",
  ClosePortalStmt: "CLOSE",
  ConstraintsSetStmt: "SET CONSTRAINTS",
};

const LOCK_STRENGTHS: Readonly<Record<string, string>> = {
  LCS_FORUPDATE: "FOR UPDATE",
  LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE",
  LCS_FORSHARE: "FOR SHARE",
  LCS_FORKEYSHARE: "FOR KEY SHARE",
};

/** "CreateSchemaStmt" -> "CREATE SCHEMA": good enough for the long tail of DDL. */
function labelOf(type: string, body: PgNode): string {
  if (type === "VacuumStmt") return body.is_vacuumcmd === true ? "VACUUM" : "ANALYZE";
  if (type === "GrantStmt" || type === "GrantRoleStmt") return body.is_grant === true ? "GRANT" : "REVOKE";
  if (type === "VariableSetStmt") return String(body.kind ?? "").startsWith("VAR_RESET") ? "RESET" : "SET";
  if (type === "TransactionStmt") return String(body.kind ?? "TRANS_STMT").replace("TRANS_STMT_", "").replaceAll("_", " ");
  const known = LABELS[type];
  if (known !== undefined) return known;
  return type
    .replace(/Stmt$/, "")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toUpperCase();
}

function isNode(value: unknown): value is PgNode {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A node is `{ TypeName: body }`; the raw parse tree never wraps more than one type. */
function unwrap(wrapper: unknown): [string, PgNode] | undefined {
  if (!isNode(wrapper)) return undefined;
  for (const [type, body] of Object.entries(wrapper)) {
    if (isNode(body)) return [type, body];
  }
  return undefined;
}

function functionName(call: PgNode): string | undefined {
  const parts = call.funcname;
  if (!Array.isArray(parts) || parts.length === 0) return undefined;
  const last: unknown = parts[parts.length - 1];
  if (!isNode(last) || !isNode(last.String)) return undefined;
  const sval = last.String.sval;
  return typeof sval === "string" ? sval : undefined;
}

function inspectSelect(select: PgNode): Refusal | undefined {
  if (select.intoClause !== undefined) {
    return refuse("select_into", "SELECT ... INTO creates a table; only reads are allowed.");
  }
  const locking = select.lockingClause;
  if (Array.isArray(locking) && locking.length > 0) {
    const first: unknown = locking[0];
    const strength = isNode(first) && isNode(first.LockingClause) ? String(first.LockingClause.strength) : "";
    return refuseLocking(LOCK_STRENGTHS[strength] ?? "FOR UPDATE/SHARE");
  }
  return undefined;
}

/** Visits every node below `value`: a write or a dangerous call anywhere refuses the whole. */
function findRefusal(value: unknown): Refusal | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findRefusal(item);
      if (found) return found;
    }
    return undefined;
  }
  if (!isNode(value)) return undefined;
  for (const [key, child] of Object.entries(value)) {
    if (isNode(child)) {
      if (key === "FuncCall") {
        const name = functionName(child);
        const danger = name === undefined ? undefined : findDangerousFunction("postgresql", name);
        if (danger) return refuseDangerousFunction(danger.name, danger.why);
      } else if (key === "SelectStmt") {
        const found = inspectSelect(child);
        if (found) return found;
      } else if (WRITES.has(key)) {
        return refuseCteWrite(labelOf(key, child));
      } else if (/^[A-Z]/.test(key) && key.endsWith("Stmt")) {
        // Nothing but the above can nest in a query; anything else is a surprise, so refuse.
        // Node types only: a field such as InsertStmt's `selectStmt` is looked into below.
        return refuseWrite(labelOf(key, child));
      }
    }
    if (typeof child === "object" && child !== null) {
      const found = findRefusal(child);
      if (found) return found;
    }
  }
  return undefined;
}

/** Whether EXPLAIN runs the statement, as PostgreSQL's defGetBoolean reads the options: the
 * last ANALYZE wins, and only 0, false and off (any case) turn it off. Anything else counts
 * as on, including values the server would reject. */
function explainRuns(options: unknown[]): boolean {
  const analyze = options
    .map((option) => (isNode(option) && isNode(option.DefElem) ? option.DefElem : undefined))
    .filter((option) => option?.defname === "analyze")
    .at(-1);
  if (!analyze) return false;
  const arg = analyze.arg;
  if (!isNode(arg)) return true;
  if (isNode(arg.Integer)) return (arg.Integer.ival ?? 0) !== 0;
  if (isNode(arg.String) && typeof arg.String.sval === "string") return !/^(false|off)$/i.test(arg.String.sval);
  return true;
}

function classifyExplain(explain: PgNode): GuardVerdict {
  const analyze = explainRuns(Array.isArray(explain.options) ? explain.options : []);
  const target = unwrap(explain.query);
  if (!target) return refuse("parse_error", "EXPLAIN without a statement to explain.");
  const [type, body] = target;
  if (WRITES.has(type)) {
    if (analyze) return refuseExplainAnalyzeWrite(labelOf(type, body));
    // Plain EXPLAIN only plans the write; calls inside are still refused on principle.
    return findRefusal(body) ?? accept("explain");
  }
  const inner = classifyNode(type, body);
  if (inner.ok || !analyze) return inner.ok ? accept("explain") : inner;
  // Worth its own rule: PostgreSQL (seen on 15 and 18) runs EXPLAIN ANALYZE CREATE TABLE AS and
  // SELECT INTO even inside BEGIN READ ONLY, so the read-only transaction does not stop these.
  if (inner.rule === "select_into") return refuseExplainAnalyzeWrite("SELECT ... INTO");
  return inner.rule === "not_read_only" ? refuseExplainAnalyzeWrite(labelOf(type, body)) : inner;
}

function classifyNode(type: string, body: PgNode): GuardVerdict {
  if (type === "SelectStmt") return findRefusal({ SelectStmt: body }) ?? accept("select");
  if (type === "ExplainStmt") return classifyExplain(body);
  if (type === "VariableShowStmt") return accept("show");
  if (type === "TransactionStmt" || type === "ConstraintsSetStmt") return refuseTransaction(labelOf(type, body));
  if (type === "VariableSetStmt" && (body.name === "TRANSACTION" || body.name === "SESSION CHARACTERISTICS")) {
    return refuseTransaction(`SET ${String(body.name)}`);
  }
  if (SESSION.has(type)) return refuseSession(labelOf(type, body));
  return refuseWrite(labelOf(type, body));
}

export function classifyPostgres(sql: string): GuardVerdict {
  if (!loaded) throw new Error("loadGuard() must be awaited before classifying PostgreSQL statements");
  let statements: unknown[];
  try {
    const tree = parseSync(sql);
    statements = Array.isArray(tree.stmts) ? tree.stmts : [];
  } catch (error) {
    if (error instanceof RangeError) throw error;
    const cursor = (error as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition;
    return postgresParseError(sql, errorMessage(error), cursor);
  }
  if (statements.length === 0) return refuseEmpty();
  if (statements.length > 1) return refuseMultiple(statements.length);
  const raw = statements[0];
  const target = isNode(raw) ? unwrap(raw.stmt) : undefined;
  if (!target) return refuseEmpty();
  return classifyNode(target[0], target[1]);
}
