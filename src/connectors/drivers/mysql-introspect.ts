// MySQL/MariaDB schema introspection of the connection's database: one information_schema
// query (the only catalog these servers expose), columns and keys aggregated per table with
// JSON_ARRAYAGG. MySQL's JSON_ARRAYAGG takes no ORDER BY, so tuples carry their ordinal and
// are sorted here. Names are matched as bytes: information_schema compares them without case,
// and where the server keeps them as written (lower_case_table_names=0), `Orders` and `orders`
// are two tables, which got each other's columns (and databases `Shop` and `shop` each other's
// tables). Databases are matched as bytes only there: elsewhere DATABASE() may be spelled as the
// client wrote it, not as kept. The comparisons without case stay beside them: the server reads
// only the named database's tables for those.

import { forEachInSlices } from "../../in-slices.js";
import type { ForeignKey, TableSchema } from "../types.js";

export const INTROSPECTION_SQL = `
SELECT t.TABLE_SCHEMA AS \`schema\`, t.TABLE_NAME AS name, t.TABLE_TYPE AS kind, t.TABLE_COMMENT AS comment,
       t.TABLE_ROWS AS estimated_rows, c.cols AS columns, k.keys_ AS \`keys\`
  FROM information_schema.TABLES t
  LEFT JOIN (SELECT CAST(TABLE_NAME AS BINARY) AS name_bytes,
                    JSON_ARRAYAGG(JSON_ARRAY(ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_COMMENT)) AS cols
               FROM information_schema.COLUMNS
              WHERE TABLE_SCHEMA = DATABASE() AND (@@lower_case_table_names <> 0 OR CAST(TABLE_SCHEMA AS BINARY) = CAST(DATABASE() AS BINARY))
              GROUP BY name_bytes) c ON c.name_bytes = CAST(t.TABLE_NAME AS BINARY)
  LEFT JOIN (SELECT CAST(TABLE_NAME AS BINARY) AS name_bytes,
                    JSON_ARRAYAGG(JSON_ARRAY(CONSTRAINT_NAME, ORDINAL_POSITION, COLUMN_NAME,
                                             REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME)) AS keys_
               FROM information_schema.KEY_COLUMN_USAGE
              WHERE TABLE_SCHEMA = DATABASE() AND (@@lower_case_table_names <> 0 OR CAST(TABLE_SCHEMA AS BINARY) = CAST(DATABASE() AS BINARY))
                AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL)
              GROUP BY name_bytes) k ON k.name_bytes = CAST(t.TABLE_NAME AS BINARY)
 WHERE t.TABLE_SCHEMA = DATABASE() AND (@@lower_case_table_names <> 0 OR CAST(t.TABLE_SCHEMA AS BINARY) = CAST(DATABASE() AS BINARY))
   AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW')
 ORDER BY t.TABLE_NAME, CAST(t.TABLE_NAME AS BINARY)`;

export interface CatalogRow {
  schema: string;
  name: string;
  kind: string;
  comment: string | null;
  estimated_rows: string | number | null;
  columns: string | null;
  keys: string | null;
}

type ColumnTuple = [position: number, name: string, type: string, nullable: "YES" | "NO", comment: string];
type KeyTuple = [
  constraint: string,
  position: number,
  column: string,
  refSchema: string | null,
  refTable: string | null,
  refColumn: string | null,
];

/** The tables of the catalog's rows, in slices (src/in-slices.ts), as PostgreSQL's. */
export async function tablesOfCatalogRows(rows: CatalogRow[]): Promise<TableSchema[]> {
  const tables: TableSchema[] = [];
  await forEachInSlices(rows, (row) => tables.push(tableOf(row)));
  return tables;
}

function tableOf(row: CatalogRow): TableSchema {
  const view = row.kind === "VIEW";
  const columns = (JSON.parse(row.columns ?? "[]") as ColumnTuple[])
    .sort((a, b) => a[0] - b[0])
    .map(([, name, type, nullable, comment]) => ({ name, type, nullable: nullable === "YES", comment: comment || null }));
  const keys = (JSON.parse(row.keys ?? "[]") as KeyTuple[]).sort((a, b) => a[1] - b[1]);
  // Of the columns listed: MariaDB adds the invisible row_end to a system-versioned table's key,
  // a column no statement names by accident and the schema does not show.
  const listed = new Set(columns.map((c) => c.name));
  const primaryKey = keys.filter((k) => k[0] === "PRIMARY" && listed.has(k[2])).map((k) => k[2]);
  const foreign = new Map<string, ForeignKey>();
  for (const [constraint, , column, refSchema, refTable, refColumn] of keys) {
    if (constraint === "PRIMARY" || refTable === null) continue;
    let fk = foreign.get(constraint);
    if (!fk) {
      fk = { columns: [], references: { schema: refSchema, table: refTable, columns: [] } };
      foreign.set(constraint, fk);
    }
    fk.columns.push(column);
    fk.references.columns.push(refColumn ?? "");
  }
  return {
    schema: row.schema,
    name: row.name,
    kind: view ? "view" : "table",
    // Views carry the comment 'VIEW' in information_schema; it says nothing.
    comment: view || !row.comment ? null : row.comment,
    estimated_rows: view || row.estimated_rows === null ? null : Number(row.estimated_rows),
    columns,
    primary_key: primaryKey,
    foreign_keys: [...foreign.values()],
  };
}
