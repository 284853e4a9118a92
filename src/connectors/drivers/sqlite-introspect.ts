// Reads one SQLite database's tables, views, columns and keys; runs inside the SQLite child
// process (sqlite-child.ts), on its read-only connection.

import type Database from "better-sqlite3";

import type { ForeignKey, TableSchema } from "../types.js";

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
export function introspect(conn: Database.Database): TableSchema[] {
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
  const shadows = shadowTables(conn);
  catalog = catalog.filter((row) => !shadows.has(row.name));
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

/** The tables a virtual table keeps its data in (FTS5's docs_data, docs_idx, ...): its own, not
 * the user's, so not shown (five of them cluttered /ask's context for each full-text index).
 * None known when SQLite cannot tell (a virtual table of a module this build lacks). */
function shadowTables(conn: Database.Database): Set<string> {
  try {
    const rows = conn.prepare("SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow'").all() as { name: string }[];
    return new Set(rows.map((r) => r.name));
  } catch {
    return new Set();
  }
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
