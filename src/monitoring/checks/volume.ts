// Volume: the table's row count, from catalog statistics where they are right and a bounded
// exact count where the table is small, judged by fixed bounds or the learned baseline.
// One statement on the monitored database per run.

import type { Cell, Dialect } from "../../connectors/types.js";
import { formatNumber } from "../baselines.js";
import type { VolumeCheck } from "../../store/column-types.js";
import { judgedByBaseline } from "../check-config.js";
import { judgeAgainstBaseline, judgeFixedBounds } from "./judging.js";
import { qualifiedName, quoteLiteral } from "../../connectors/sql-text.js";
import { firstRow, numberOf, type CheckContext, type CheckResult } from "./types.js";

/** Below this many estimated rows a bounded count(*) is cheap and exact (a few ms). */
export const EXACT_COUNT_BELOW = 100_000;

/**
 * Where the estimates are wrong, and what is done about it:
 * - PostgreSQL `pg_class.reltuples` is -1 before the first VACUUM/ANALYZE, and afterwards only
 *   as fresh as the last (auto)vacuum/analyze: a DELETE of half a big table shows once
 *   autovacuum has run. It is replicated, so it is the right number on a standby.
 * - `pg_stat_user_tables.n_live_tup` follows every committed write on the primary, but on a
 *   standby it only counts the standby's own (no) activity, and a crash resets it: it is used
 *   on a primary only, and only when it has seen anything.
 * - MySQL/MariaDB `information_schema.TABLES.TABLE_ROWS` is a sampled InnoDB estimate that
 *   can be off by half (and MySQL 8 caches it for `information_schema_stats_expiry`, a day).
 * - Partitioned PostgreSQL parents carry no estimate of their own (reltuples -1, and autovacuum
 *   never analyzes them): their leaf partitions' estimates are added up (none while any leaf has
 *   none), and so are their live tuples.
 * - A view has no statistics at all (reltuples -1, or 0 before PostgreSQL 14): it can only be
 *   counted.
 * So tables under `exact_count_below` estimated rows (or with no estimate) are counted exactly
 * with a count(*) bounded by LIMIT, in the same statement; when that count hits its bound
 * the estimate is used after all. So is a table a primary's live tuples say is empty, whatever
 * its estimate: after a DELETE of all of a big table, reltuples says full until autovacuum runs
 * (never, where it is off), and a volume check that most needs to fail passed. SQLite keeps no
 * statistics worth the name: count(*).
 */
export function volumeStatement(dialect: Dialect, schema: string | null, table: string, exactBelow: number): string {
  const name = qualifiedName(dialect, schema, table);
  const bounded = `(SELECT count(*) FROM (SELECT 1 FROM ${name} LIMIT ${exactBelow + 1}) bounded)`;
  switch (dialect) {
    case "postgresql":
      return `SELECT e.reltuples, e.live_tuples, pg_is_in_recovery() AS replica, e.relkind::text AS kind,
  CASE WHEN e.reltuples < ${exactBelow} OR (e.live_tuples = 0 AND NOT pg_is_in_recovery()) THEN ${bounded} END AS bounded_count
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
CROSS JOIN LATERAL (
  SELECT c.relkind, CASE WHEN c.relkind = 'v' THEN -1 ELSE c.reltuples::float8 END AS reltuples, s.n_live_tup::float8 AS live_tuples WHERE c.relkind <> 'p'
  UNION ALL
  SELECT c.relkind, CASE WHEN bool_and(l.reltuples >= 0) THEN sum(l.reltuples::float8) ELSE -1 END, sum(ls.n_live_tup)::float8
  FROM pg_catalog.pg_partition_tree(c.oid) pt
  JOIN pg_catalog.pg_class l ON l.oid = pt.relid
  LEFT JOIN pg_catalog.pg_stat_user_tables ls ON ls.relid = pt.relid
  WHERE pt.isleaf
  HAVING c.relkind = 'p'
) e
WHERE n.nspname = ${quoteLiteral(dialect, schema ?? "public")} AND c.relname = ${quoteLiteral(dialect, table)}`;
    case "mysql":
      return `SELECT t.TABLE_ROWS AS estimate, t.TABLE_TYPE AS kind,
  CASE WHEN t.TABLE_ROWS IS NULL OR t.TABLE_ROWS < ${exactBelow} THEN ${bounded} END AS bounded_count
FROM information_schema.TABLES t
WHERE t.TABLE_SCHEMA = ${quoteLiteral(dialect, schema ?? "")} AND t.TABLE_NAME = ${quoteLiteral(dialect, table)}
  AND CAST(t.TABLE_SCHEMA AS BINARY) = CAST(${quoteLiteral(dialect, schema ?? "")} AS BINARY) AND CAST(t.TABLE_NAME AS BINARY) = CAST(${quoteLiteral(dialect, table)} AS BINARY)`;
    case "sqlite":
      return `SELECT count(*) AS bounded_count FROM ${name}`;
  }
}

interface RowCount {
  rows: number;
  method: "exact" | "reltuples" | "n_live_tup" | "table_rows";
}

/** The row count and how it was obtained; null when there is nothing trustworthy to report. */
export function rowCountOf(dialect: Dialect, row: Record<string, Cell>, exactBelow: number): RowCount | null {
  const bounded = numberOf(row.bounded_count);
  if (bounded !== null && (dialect === "sqlite" || bounded <= exactBelow)) return { rows: bounded, method: "exact" };
  if (dialect === "mysql") {
    const estimate = numberOf(row.estimate);
    return estimate === null ? null : { rows: Math.max(estimate, bounded ?? 0), method: "table_rows" };
  }
  const reltuples = numberOf(row.reltuples);
  const live = numberOf(row.live_tuples);
  const replica = row.replica === true;
  if (!replica && live !== null && live > 0) return { rows: Math.max(live, bounded ?? 0), method: "n_live_tup" };
  if (reltuples !== null && reltuples >= 0) return { rows: Math.max(reltuples, bounded ?? 0), method: "reltuples" };
  return null;
}

export async function runVolume(ctx: CheckContext, check: VolumeCheck): Promise<CheckResult> {
  const exactBelow = check.exact_count_below ?? EXACT_COUNT_BELOW;
  const dialect = ctx.connector.dialect;
  const result = await ctx.query(volumeStatement(dialect, ctx.table.schema, ctx.table.name, exactBelow), 1);
  const row = firstRow(result);
  if (!row) return { status: "error", value: null, message: "the table was not found in the catalog" };
  const count = rowCountOf(dialect, row, exactBelow);
  if (!count) {
    const view = row.kind === "v" || row.kind === "VIEW";
    const remedy = view
      ? `a view has none: raise exact_count_below above its row count to count it, or monitor the tables it reads`
      : `run ANALYZE on the table (on the primary)`;
    return { status: "error", value: null, message: `more than ${formatNumber(exactBelow)} rows and no row estimate: ${remedy}` };
  }
  const details = { method: count.method };
  if (!judgedByBaseline(check)) {
    return { ...judgeFixedBounds(count.rows, check.min_rows, check.max_rows, "row count"), details };
  }
  const judged = await judgeAgainstBaseline(ctx, count.rows, check.baseline, { label: "row count" });
  return { ...judged, details: { ...judged.details, ...details } };
}
