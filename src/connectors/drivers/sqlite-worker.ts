// The thread that owns one read-only better-sqlite3 connection. better-sqlite3 runs
// statements synchronously, so they run here and never block the service's event loop;
// sqlite.ts talks to this thread with the small request/reply protocol below.

import { parentPort, workerData } from "node:worker_threads";

import Database from "better-sqlite3";

import { DomainError, type ErrorCode } from "../../errors.js";
import type { ForeignKey, QueryResult, TableSchema } from "../types.js";
import { RowCollector } from "./collect.js";

export interface SqliteWorkerData {
  filePath: string;
  /** What error messages may call the file: never the absolute server path. */
  displayName: string;
}

export type SqliteRequest =
  | { id: number; kind: "query"; sql: string; maxRows: number; maxBytes: number; timeoutMs: number }
  | { id: number; kind: "introspect" }
  | { id: number; kind: "probe" };

export interface ProbeReply {
  version: string;
  readOnly: boolean;
}

export type SqliteReply =
  | { kind: "ready" }
  | { kind: "open_failed"; message: string }
  | { kind: "reply"; id: number; ok: true; value: QueryResult | TableSchema[] | ProbeReply }
  | { kind: "reply"; id: number; ok: false; code: ErrorCode; message: string; extra: Record<string, unknown> };

const port = parentPort;
if (!port) throw new Error("sqlite-worker.ts runs only as a worker thread");
const { filePath, displayName } = workerData as SqliteWorkerData;
const post = (reply: SqliteReply) => port.postMessage(reply);

const db = openReadOnly();
if (db) {
  port.on("message", (request: SqliteRequest) => {
    try {
      post({ kind: "reply", id: request.id, ok: true, value: handle(db, request) });
    } catch (error) {
      // SQLite's message is the answer to a bad statement (the agent corrects itself from it).
      const message = error instanceof Error ? error.message : String(error);
      if (error instanceof DomainError) post({ kind: "reply", id: request.id, ok: false, code: error.code, message, extra: error.extra });
      else post({ kind: "reply", id: request.id, ok: false, code: "sql_failed", message, extra: {} });
    }
  });
  post({ kind: "ready" });
}

function openReadOnly(): Database.Database | null {
  let opened: Database.Database | undefined;
  try {
    opened = new Database(filePath, { readonly: true, fileMustExist: true });
    restoreSafety(opened);
    // Opening is lazy: reading the schema is what finds out the file is not a database.
    opened.prepare("SELECT count(*) FROM sqlite_schema").get();
    return opened;
  } catch (error) {
    opened?.close();
    post({ kind: "open_failed", message: openFailure(error) });
    return null;
  }
}

function openFailure(error: unknown): string {
  // SQLite's own messages may carry the absolute path; say what happened in our words.
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  if (code === "SQLITE_NOTADB") return `"${displayName}" is not a SQLite database`;
  if (code === "SQLITE_CANTOPEN" || (error instanceof TypeError && /does not exist/.test(error.message))) {
    return `SQLite file "${displayName}" does not exist or can not be opened`;
  }
  return `Could not open SQLite file "${displayName}"${typeof code === "string" ? ` (${code})` : ""}`;
}

/** Re-applied before every statement: a statement that switched them off lasts one statement. */
function restoreSafety(conn: Database.Database): void {
  conn.pragma("query_only = ON");
  conn.pragma("trusted_schema = OFF");
}

function handle(conn: Database.Database, request: SqliteRequest): QueryResult | TableSchema[] | ProbeReply {
  switch (request.kind) {
    case "query":
      return runStatement(conn, request);
    case "introspect":
      return introspect(conn);
    case "probe":
      return {
        version: conn.prepare("SELECT sqlite_version()").pluck().get() as string,
        readOnly: conn.readonly && conn.pragma("query_only", { simple: true }) === 1,
      };
  }
}

function runStatement(conn: Database.Database, request: Extract<SqliteRequest, { kind: "query" }>): QueryResult {
  const startedAt = performance.now();
  restoreSafety(conn);
  const stmt = conn.prepare(request.sql);
  let result: QueryResult;
  // Every statement runs in a transaction of its own, like PostgreSQL's BEGIN READ ONLY:
  // SQLite refuses VACUUM (and VACUUM INTO, which otherwise creates its target file before
  // failing) inside one, and ROLLBACK undoes whatever a statement managed to start.
  conn.exec("BEGIN");
  try {
    if (stmt.reader) {
      stmt.raw(true).safeIntegers(true);
      const columns = stmt.columns().map((c) => ({ name: c.name, type: (c.type ?? "").toLowerCase() }));
      result = collect(stmt.iterate() as Iterable<unknown[]>, request, startedAt).result(columns, startedAt);
    } else {
      // Not a read. Layer 2 must not rely on layer 1 having refused it: let the database
      // itself answer (readonly + query_only refuse writes with SQLITE_READONLY).
      stmt.run();
      result = new RowCollector(request).result([], startedAt);
    }
  } finally {
    if (conn.inTransaction) conn.exec("ROLLBACK");
  }
  if (!stmt.reader && detachOthers(conn) > 0) {
    throw new DomainError("sql_failed", "ATTACH is not allowed: a connection reads its own database only");
  }
  return result;
}

/** Steps through the rows only as far as the caps want (so a huge result is never
 * materialised), and gives up at the deadline whenever SQLite hands back a row; a statement
 * stuck inside one step is sqlite.ts's to stop. */
function collect(source: Iterable<unknown[]>, limits: Extract<SqliteRequest, { kind: "query" }>, startedAt: number): RowCollector {
  const collector = new RowCollector(limits);
  const deadline = startedAt + limits.timeoutMs;
  for (const row of source) {
    if (!collector.push(row)) break;
    if (performance.now() > deadline) {
      throw new DomainError("query_timeout", `The query ran longer than ${limits.timeoutMs} ms and was stopped`);
    }
  }
  return collector;
}

/** A read-only connection may still ATTACH another existing file; undo it. */
function detachOthers(conn: Database.Database): number {
  const names = conn
    .prepare("SELECT name FROM pragma_database_list WHERE name NOT IN ('main', 'temp')")
    .pluck()
    .all() as string[];
  for (const name of names) conn.exec(`DETACH DATABASE "${name.replaceAll('"', '""')}"`);
  return names.length;
}

interface CatalogRow {
  name: string;
  type: "table" | "view";
  /** JSON [[name, declared type, notnull, pk position, hidden], ...] in column order. */
  cols: string;
  /** JSON [[id, seq, parent table, from, to], ...] ordered by id and seq. */
  fks: string;
}

const CATALOG_SQL = `
SELECT m.name, m.type,
  (SELECT json_group_array(json_array(x.name, x.type, x."notnull", x.pk, x.hidden) ORDER BY x.cid)
     FROM pragma_table_xinfo(m.name) AS x) AS cols,
  (SELECT json_group_array(json_array(f.id, f.seq, f."table", f."from", f."to") ORDER BY f.id, f.seq)
     FROM pragma_foreign_key_list(m.name) AS f) AS fks
FROM sqlite_schema AS m
WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'`;

/** Tables and views with columns, keys and row estimates: one catalog statement (plus one
 * for sqlite_stat1 when ANALYZE has run). */
function introspect(conn: Database.Database): TableSchema[] {
  restoreSafety(conn);
  let catalog: CatalogRow[];
  try {
    catalog = conn.prepare(`${CATALOG_SQL} ORDER BY m.name`).all() as CatalogRow[];
  } catch {
    // One broken view (naming a table that is gone) fails the whole statement: fall back
    // to one object at a time and describe a broken one without columns.
    const names = conn
      .prepare("SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
      .all() as { name: string; type: CatalogRow["type"] }[];
    const one = conn.prepare(`${CATALOG_SQL} AND m.name = ?`);
    catalog = names.map((n) => {
      try {
        return one.get(n.name) as CatalogRow;
      } catch {
        return { ...n, cols: "[]", fks: "[]" };
      }
    });
  }
  const estimates = rowEstimates(conn);
  const tables = catalog.map((row): TableSchema => {
    // Hidden 1 marks a virtual table's hidden columns; 2 and 3 are generated columns, kept.
    const cols = (JSON.parse(row.cols) as [string, string, number, number, number][]).filter((c) => c[4] !== 1);
    return {
      schema: null,
      name: row.name,
      kind: row.type,
      comment: null,
      estimated_rows: estimates.get(row.name) ?? null,
      // SQLite lets a non-INTEGER primary key hold NULL (a legacy quirk); describe the intent.
      columns: cols.map(([name, type, notnull, pk]) => ({ name, type: type.toLowerCase(), nullable: notnull === 0 && pk === 0, comment: null })),
      primary_key: cols.filter((c) => c[3] > 0).sort((a, b) => a[3] - b[3]).map((c) => c[0]),
      foreign_keys: [],
    };
  });
  const byName = new Map(tables.map((t) => [t.name, t]));
  for (const row of catalog) {
    byName.get(row.name)!.foreign_keys = foreignKeys(JSON.parse(row.fks) as [number, number, string, string, string | null][], byName);
  }
  return tables;
}

function foreignKeys(
  parts: [id: number, seq: number, parent: string, from: string, to: string | null][],
  tables: Map<string, TableSchema>,
): ForeignKey[] {
  const byId = new Map<number, ForeignKey>();
  for (const [id, , parent, from, to] of parts) {
    let fk = byId.get(id);
    if (!fk) {
      fk = { columns: [], references: { schema: null, table: parent, columns: [] } };
      byId.set(id, fk);
    }
    fk.columns.push(from);
    if (to !== null) fk.references.columns.push(to);
  }
  for (const fk of byId.values()) {
    // `REFERENCES parent` without columns means the parent's primary key.
    if (fk.references.columns.length === 0) fk.references.columns = [...(tables.get(fk.references.table)?.primary_key ?? [])];
  }
  return [...byId.values()];
}

/** Rows per table from sqlite_stat1 when ANALYZE has run: the first number of a table's
 * stat (whole table, or any of its indexes). */
function rowEstimates(conn: Database.Database): Map<string, number> {
  const estimates = new Map<string, number>();
  const analyzed = conn.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'").get();
  if (!analyzed) return estimates;
  const stats = conn.prepare("SELECT tbl, stat FROM sqlite_stat1").all() as { tbl: string; stat: string | null }[];
  for (const { tbl, stat } of stats) {
    const rows = Number.parseInt(stat ?? "", 10);
    if (Number.isFinite(rows)) estimates.set(tbl, Math.max(rows, estimates.get(tbl) ?? 0));
  }
  return estimates;
}
