// The tables a read statement reads, from the same parse trees the guard judges (never a
// regex): what health-aware results look up open monitoring alerts for. Names of common table
// expressions are not tables; table functions and subqueries are looked into, not named.

import { createLRU } from "lru.min";
import { parseSync } from "libpg-query";

import type { Dialect } from "../types.js";
import { parseMysqlProgram } from "./mysql.js";
import { isPostgresParserLoaded } from "./postgres.js";
import { parseSqliteProgram } from "./sqlite.js";

export interface TableRef {
  /** As written (PostgreSQL folds unquoted names to lower case, as the server does). */
  schema: string | null;
  name: string;
}

type Tree = Record<string, unknown>;

const isTree = (value: unknown): value is Tree => typeof value === "object" && value !== null;

/** Every value below `value`, depth first, to `visit`; `visit` returns false to skip a subtree. */
function walk(value: unknown, visit: (node: Tree) => boolean): void {
  if (Array.isArray(value)) {
    for (const item of value) walk(item, visit);
    return;
  }
  if (!isTree(value) || !visit(value)) return;
  for (const child of Object.values(value)) if (typeof child === "object" && child !== null) walk(child, visit);
}

function postgresTables(sql: string): { refs: TableRef[]; ctes: Set<string> } | undefined {
  if (!isPostgresParserLoaded()) return undefined;
  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch {
    return undefined;
  }
  const refs: TableRef[] = [];
  const ctes = new Set<string>();
  walk(tree, (node) => {
    const range = node.RangeVar;
    if (isTree(range) && typeof range.relname === "string") {
      refs.push({ schema: typeof range.schemaname === "string" ? range.schemaname : null, name: range.relname });
    }
    const cte = node.CommonTableExpr;
    if (isTree(cte) && typeof cte.ctename === "string") ctes.add(cte.ctename);
    return true;
  });
  return { refs, ctes };
}

/** sql-parser-cst: a name in a FROM clause or a join is a table; the rest is an expression. */
function cstTableOf(node: Tree | undefined, refs: TableRef[]): void {
  if (!node) return;
  switch (node.type) {
    case "join_expr":
      cstTableOf(node.left as Tree, refs);
      cstTableOf(node.right as Tree, refs);
      return;
    case "alias":
      cstTableOf(node.expr as Tree, refs);
      return;
    case "paren_expr":
      // A parenthesised join names tables; a subquery is walked like any other node.
      cstTableOf(node.expr as Tree, refs);
      return;
    case "identifier":
      refs.push({ schema: null, name: node.name as string });
      return;
    case "member_expr": {
      const object = node.object as Tree;
      const property = node.property as Tree;
      if (object.type === "identifier" && property.type === "identifier") refs.push({ schema: object.name as string, name: property.name as string });
      return;
    }
  }
}

function cstTables(program: unknown): { refs: TableRef[]; ctes: Set<string> } {
  const refs: TableRef[] = [];
  const ctes = new Set<string>();
  walk(program, (node) => {
    if (node.type === "from_clause") cstTableOf(node.expr as Tree, refs);
    if (node.type === "common_table_expr" && isTree(node.table) && typeof node.table.name === "string") ctes.add(node.table.name);
    return true;
  });
  return { refs, ctes };
}

function parseTables(dialect: Dialect, sql: string): TableRef[] | undefined {
  let found: { refs: TableRef[]; ctes: Set<string> } | undefined;
  if (dialect === "postgresql") found = postgresTables(sql);
  else {
    const program = dialect === "mysql" ? parseMysqlProgram(sql) : parseSqliteProgram(sql);
    found = program ? cstTables(program) : undefined;
  }
  if (!found) return undefined;
  const seen = new Set<string>();
  const { refs, ctes } = found;
  return refs.filter((ref) => {
    if (ref.schema === null && ctes.has(ref.name)) return false;
    const key = `${ref.schema ?? ""}\0${ref.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Longer statements are not looked at: the guard parses those in worker threads, and this
 * runs on the request's thread (a parse of this much takes a few milliseconds at worst). */
export const TABLES_READ_MAX_CHARS = 8_192;

/** Statements are sent again and again (dashboards, monitoring, retried questions). */
const recent = createLRU<string, readonly TableRef[] | null>({ max: 2_000 });
const CACHED_STATEMENT_LENGTH = 4_096;

/** The tables `sql` reads, each once; null when it does not parse or
 * is longer than TABLES_READ_MAX_CHARS.
 * Call it for statements the guard accepted: its parse is the same, so it is cheap to trust. */
export function tablesRead(dialect: Dialect, sql: string): readonly TableRef[] | null {
  if (sql.length > TABLES_READ_MAX_CHARS) return null;
  const key = `${dialect}\0${sql}`;
  const cacheable = sql.length <= CACHED_STATEMENT_LENGTH;
  const cached = cacheable ? recent.get(key) : undefined;
  if (cached !== undefined) return cached;
  let tables: readonly TableRef[] | null;
  try {
    tables = parseTables(dialect, sql) ?? null;
  } catch {
    // Absurd nesting overflowing the stack: the guard refused it already; nothing to report.
    tables = null;
  }
  if (cacheable) recent.set(key, tables);
  return tables;
}
