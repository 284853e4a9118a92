// Real schemas and questions for the schema-context tests and bench: Chinook introspected
// from its SQLite file, the Spider dev databases built from tables.json, and each Spider
// question's gold tables read from its gold SQL with a real parser.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import Database from "better-sqlite3";
import { parse, type Node } from "sql-parser-cst";

import type { ColumnSchema, ForeignKey, SchemaSnapshot, TableSchema } from "../../src/connectors/types.js";

const shared = (relative: string) => fileURLToPath(new URL(`../../../shared/data/${relative}`, import.meta.url));

export const CHINOOK_SQLITE = shared("chinook/Chinook_Sqlite.sqlite");
export const SPIDER_DIR = shared("spider_dev/spider_data");
/** Spider's databases with rows, as SQLite files: `<dir>/<db_id>/<db_id>.sqlite`. */
export const SPIDER_SQLITE_DIR = shared("spiderman/database_sqlite");

/** Tables, columns, keys and row counts of a SQLite file, opened read-only. */
export function introspectSqliteFile(file: string): SchemaSnapshot {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const names = db
      .prepare("SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
      .all() as { name: string; type: "table" | "view" }[];
    const tables = names.map(({ name, type }): TableSchema => {
      const cols = db.prepare("SELECT name, type, \"notnull\" AS nn, pk FROM pragma_table_xinfo(?) WHERE hidden <> 1 ORDER BY cid").all(name) as {
        name: string;
        type: string;
        nn: number;
        pk: number;
      }[];
      const fkRows = db.prepare('SELECT id, "table" AS parent, "from" AS src, "to" AS dst FROM pragma_foreign_key_list(?) ORDER BY id, seq').all(name) as {
        id: number;
        parent: string;
        src: string;
        dst: string | null;
      }[];
      const fks = new Map<number, ForeignKey>();
      for (const r of fkRows) {
        const fk = fks.get(r.id) ?? { columns: [], references: { schema: null, table: r.parent, columns: [] } };
        fk.columns.push(r.src);
        if (r.dst !== null) fk.references.columns.push(r.dst);
        fks.set(r.id, fk);
      }
      const rows = type === "table" ? (db.prepare(`SELECT count(*) AS n FROM "${name.replaceAll('"', '""')}"`).get() as { n: number }).n : null;
      return {
        schema: null,
        name,
        kind: type,
        comment: null,
        estimated_rows: rows,
        columns: cols.map((c): ColumnSchema => ({ name: c.name, type: c.type.toLowerCase(), nullable: c.nn === 0 && c.pk === 0, comment: null })),
        primary_key: cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name),
        foreign_keys: [...fks.values()],
      };
    });
    return { dialect: "sqlite", tables, introspected_at: new Date(0).toISOString() };
  } finally {
    db.close();
  }
}

interface SpiderTables {
  db_id: string;
  table_names_original: string[];
  column_names_original: [number, string][];
  column_types: string[];
  primary_keys: (number | number[])[];
  foreign_keys: [number, number][];
}

/** Spider's databases as snapshots, keyed by db_id (Spider's own column types: text, number, time, ...). */
export function spiderSnapshots(): Map<string, SchemaSnapshot> {
  const dbs = JSON.parse(readFileSync(`${SPIDER_DIR}/tables.json`, "utf8")) as SpiderTables[];
  return new Map(dbs.map((db) => [db.db_id, spiderSnapshot(db)]));
}

function spiderSnapshot(db: SpiderTables): SchemaSnapshot {
  const column = (i: number) => db.column_names_original[i]!;
  const pkColumns = new Set(db.primary_keys.flat());
  const tables = db.table_names_original.map(
    (name, t): TableSchema => ({
      schema: null,
      name,
      kind: "table",
      comment: null,
      estimated_rows: null,
      columns: db.column_names_original
        .map(([owner, col], i) => ({ owner, col, i }))
        .filter((c) => c.owner === t)
        .map((c) => ({ name: c.col, type: db.column_types[c.i] ?? "text", nullable: !pkColumns.has(c.i), comment: null })),
      primary_key: [...pkColumns].filter((i) => column(i)[0] === t).map((i) => column(i)[1]),
      foreign_keys: db.foreign_keys
        .filter(([from]) => column(from)[0] === t)
        .map(([from, to]) => ({
          columns: [column(from)[1]],
          references: { schema: null, table: db.table_names_original[column(to)[0]]!, columns: [column(to)[1]] },
        })),
    }),
  );
  return { dialect: "sqlite", tables, introspected_at: new Date(0).toISOString() };
}

export interface SpiderQuestion {
  db_id: string;
  question: string;
  query: string;
  /** Tables the gold SQL reads, as spelled in the schema. */
  gold: string[];
}

/** The dev questions with their gold tables, in dev.json order. */
export function spiderQuestions(snapshots: Map<string, SchemaSnapshot>): SpiderQuestion[] {
  const dev = JSON.parse(readFileSync(`${SPIDER_DIR}/dev.json`, "utf8")) as { db_id: string; question: string; query: string }[];
  return dev.map((q) => {
    const names = new Map(snapshots.get(q.db_id)!.tables.map((t) => [t.name.toLowerCase(), t.name]));
    const gold = [...tablesRead(q.query)].flatMap((n) => names.get(n.toLowerCase()) ?? []);
    return { db_id: q.db_id, question: q.question, query: q.query, gold: [...new Set(gold)].sort() };
  });
}

/** Names in table position (FROM and JOIN operands, at any depth) of one SQLite statement. */
export function tablesRead(sql: string): Set<string> {
  const found = new Set<string>();
  const operand = (node: Node): void => {
    switch (node.type) {
      case "identifier":
        found.add(node.name);
        break;
      case "member_expr":
        if (node.property.type === "identifier") found.add(node.property.name);
        break;
      case "alias":
        operand(node.expr);
        break;
      case "join_expr":
        operand(node.left);
        operand(node.right);
        break;
      case "paren_expr":
        operand(node.expr);
        break;
      default:
        break; // a subquery: its own FROM is reached by the walk below
    }
  };
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (value === null || typeof value !== "object") return;
    const node = value as Node;
    if (node.type === "from_clause") operand(node.expr);
    for (const child of Object.values(node)) walk(child);
  };
  walk(parse(sql, { dialect: "sqlite" }));
  return found;
}
