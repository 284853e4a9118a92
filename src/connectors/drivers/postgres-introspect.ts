// PostgreSQL schema introspection: one pg_catalog query (information_schema's views re-check
// privileges row by row and are an order of magnitude slower on large schemas).

import { forEachInSlices } from "../../in-slices.js";
import type { ForeignKey, TableSchema } from "../types.js";

/** Characters of a table's or column's comment kept. A comment is there to tell the agent what
 * the data means, and a connection's schema is kept in memory (and in its sessions): without a
 * cut, forty 1 MB comments cost 40 MB per connection to that database. (MySQL caps comments at
 * 2,048 characters itself; SQLite has none.) */
export const MAX_COMMENT_CHARS = 1_000;

/** One row per table or view of every non-system schema. Partitions are left out (their
 * parent stands for them). Key columns come back as attribute numbers and are named here from
 * the columns already fetched (a per-constraint name lookup in SQL was a fifth of the time);
 * only a foreign key to a partition, whose columns are not listed, is named in SQL. Comments
 * are hash-joined from pg_description once, not looked up per column, and cut to
 * MAX_COMMENT_CHARS. Each row also says which schema unqualified names resolve to (the role's
 * search_path may put another before public). Only what the login may read: pg_class shows every
 * role every table, and one it may not read put in /ask's context was a query certain to fail
 * (a table in a schema it has no USAGE on, a column it is not granted). A partitioned table's
 * estimate is its leaf partitions' added up (none while a leaf has none), as the volume check's
 * (monitoring/checks/volume.ts): autovacuum never analyzes the parent, so its own reltuples is
 * -1, or as old as the last ANALYZE someone ran on it by hand. The leaves are summed by root in
 * one pass (pg_partition_tree per parent was fifty times slower with 400 of them). */
export const INTROSPECTION_SQL = `
WITH rels AS (
  SELECT c.oid, n.nspname, c.relname, c.relkind, c.reltuples, has_table_privilege(c.oid, 'SELECT') AS readable
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
     AND NOT c.relispartition
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
     AND has_schema_privilege(n.oid, 'USAGE')
     AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT'))
), descs AS MATERIALIZED (
  SELECT objoid, objsubid, left(description, ${MAX_COMMENT_CHARS}) AS description FROM pg_description WHERE classoid = 'pg_class'::regclass
), cols AS (
  SELECT a.attrelid,
         json_agg(json_build_array(a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, d.description)
                  ORDER BY a.attnum) AS columns
    FROM pg_attribute a
    JOIN rels r ON r.oid = a.attrelid
    LEFT JOIN descs d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped AND (r.readable OR has_column_privilege(a.attrelid, a.attnum, 'SELECT'))
   GROUP BY a.attrelid
), keys AS (
  SELECT con.conrelid,
         json_agg(json_build_array(
           con.contype, con.conkey, fn.nspname, fc.relname, con.confrelid::int8, con.confkey,
           CASE WHEN fc.relispartition THEN
             (SELECT json_agg(a.attname ORDER BY k.i)
                FROM unnest(con.confkey) WITH ORDINALITY k(attnum, i)
                JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum)
           END)
           ORDER BY con.contype DESC, con.conname) AS keys
    FROM pg_constraint con
    JOIN rels r ON r.oid = con.conrelid
    LEFT JOIN pg_class fc ON fc.oid = con.confrelid
    LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
   WHERE con.contype IN ('p', 'f')
   GROUP BY con.conrelid
), leaves AS (
  SELECT pg_partition_root(l.oid) AS root, bool_and(l.reltuples >= 0) AS analyzed, sum(l.reltuples) AS reltuples
    FROM pg_class l
   WHERE l.relispartition AND l.relkind IN ('r', 'f')
   GROUP BY 1
)
SELECT r.oid::int8 AS oid, r.nspname AS schema, r.relname AS name, r.relkind AS kind, d.description AS comment, current_schema() AS default_schema,
       CASE WHEN r.relkind = 'p' THEN CASE WHEN leaves.analyzed THEN leaves.reltuples::int8 END
            WHEN r.relkind = 'v' OR r.reltuples < 0 THEN NULL ELSE r.reltuples::int8 END AS estimated_rows,
       coalesce(cols.columns, '[]') AS columns, coalesce(keys.keys, '[]') AS keys
  FROM rels r
  LEFT JOIN cols ON cols.attrelid = r.oid
  LEFT JOIN keys ON keys.conrelid = r.oid
  LEFT JOIN leaves ON leaves.root = r.oid
  LEFT JOIN descs d ON d.objoid = r.oid AND d.objsubid = 0
 ORDER BY r.nspname, r.relname`;

export interface CatalogRow {
  /** int8 arrives as text. */
  oid: string;
  schema: string;
  name: string;
  kind: string;
  comment: string | null;
  /** The same on every row: the first schema of the role's search_path that exists. */
  default_schema: string | null;
  estimated_rows: string | null;
  /** json arrives as text (the driver's parsers keep it exact). */
  columns: string;
  keys: string;
}

type ColumnTuple = [attnum: number, name: string, type: string, nullable: boolean, comment: string | null];
type KeyTuple = [
  kind: "p" | "f",
  attnums: number[],
  refSchema: string | null,
  refTable: string | null,
  refOid: number | null,
  refAttnums: number[] | null,
  refNames: string[] | null,
];

/** The tables of the catalog's rows, in slices (src/in-slices.ts): 5,000 tables held the event
 * loop for 60-80 ms at once. */
export async function tablesOfCatalogRows(rows: CatalogRow[]): Promise<TableSchema[]> {
  const parsed: { row: CatalogRow; columns: ColumnTuple[]; keys: KeyTuple[] }[] = [];
  const namesByOid = new Map<number, Map<number, string>>();
  await forEachInSlices(rows, (row) => {
    const columns = JSON.parse(row.columns) as ColumnTuple[];
    parsed.push({ row, columns, keys: JSON.parse(row.keys) as KeyTuple[] });
    namesByOid.set(Number(row.oid), new Map(columns.map(([attnum, name]) => [attnum, name])));
  });
  /** The columns' names, or null when one is not among those listed: a column (or a table) the
   * login may not read, which a key naming it would send the agent to. */
  const named = (oid: number | null, attnums: number[] | null): string[] | null => {
    const names = (attnums ?? []).map((attnum) => namesByOid.get(oid ?? -1)?.get(attnum));
    return names.every((name) => name !== undefined) ? (names as string[]) : null;
  };

  const tables: TableSchema[] = [];
  await forEachInSlices(parsed, ({ row, columns, keys }) => {
    const oid = Number(row.oid);
    const primary = keys.find((k) => k[0] === "p");
    const foreignKeys: ForeignKey[] = keys
      .filter((k) => k[0] === "f")
      .flatMap(([, attnums, schema, table, refOid, refAttnums, refNames]) => {
        const local = named(oid, attnums);
        const referenced = refNames ?? named(refOid, refAttnums);
        return local && referenced ? [{ columns: local, references: { schema, table: table ?? "", columns: referenced } }] : [];
      });
    tables.push({
      schema: row.schema,
      name: row.name,
      kind: row.kind === "v" || row.kind === "m" ? "view" : "table",
      comment: row.comment,
      estimated_rows: row.estimated_rows === null ? null : Number(row.estimated_rows),
      columns: columns.map(([, name, type, nullable, comment]) => ({ name, type, nullable, comment })),
      primary_key: (primary && named(oid, primary[1])) ?? [],
      foreign_keys: foreignKeys,
    });
  });
  return tables;
}
