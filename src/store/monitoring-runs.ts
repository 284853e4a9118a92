// Repository of check runs: one row per check execution with its metric value, the history a
// baseline learns from, and retention.

import { and, asc, desc, eq, gte, inArray, lt, min, sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { onNextPage, type PageBefore } from "./page-before.js";
import { rowsOf } from "./rows.js";
import { checkRuns, type CheckRunRow } from "./schema.js";

export type NewCheckRun = Omit<typeof checkRuns.$inferInsert, "id">;

export async function insertCheckRuns(db: Db, runs: NewCheckRun[]): Promise<CheckRunRow[]> {
  if (runs.length === 0) return [];
  return db.insert(checkRuns).values(runs).returning();
}

/** One page of the table's runs, newest first by start time, then by id (awaitable; `toSQL()`
 * shows the statement). */
export function listCheckRuns(db: Db, tableId: number, options: { limit: number; checkKey?: string | undefined; before?: PageBefore | undefined }) {
  const conditions = [eq(checkRuns.tableId, tableId)];
  if (options.checkKey !== undefined) conditions.push(eq(checkRuns.checkKey, options.checkKey));
  if (options.before) conditions.push(onNextPage(options.before, checkRuns.startedAt, checkRuns.id));
  return db
    .select()
    .from(checkRuns)
    .where(and(...conditions))
    .orderBy(desc(checkRuns.startedAt), desc(checkRuns.id))
    .limit(options.limit);
}

export interface HistoryPoint {
  at: number;
  value: number;
  anomalous: boolean;
}

/**
 * The newest `points` measured values of one check at or after `since`, oldest first: a
 * baseline's window, or only the values since its last training (baseline-cache.ts).
 */
export async function metricPoints(
  db: Db,
  args: { tableId: number; checkKey: string; points: number; since: Date },
): Promise<HistoryPoint[]> {
  const rows = await db
    .select({ at: checkRuns.startedAt, value: checkRuns.value, anomalous: checkRuns.anomalous })
    .from(checkRuns)
    .where(
      and(
        eq(checkRuns.tableId, args.tableId),
        eq(checkRuns.checkKey, args.checkKey),
        gte(checkRuns.startedAt, args.since),
        sql`${checkRuns.value} IS NOT NULL`,
        inArray(checkRuns.status, ["pass", "fail"]),
      ),
    )
    .orderBy(desc(checkRuns.startedAt))
    .limit(args.points);
  return rows.reverse().map((r) => ({ at: r.at.getTime(), value: r.value!, anomalous: r.anomalous }));
}

/**
 * When a check's series began (epoch ms), null before its first run. Baselines need it as
 * proof of how far back the series reaches (a weekly pattern is only judged after a week),
 * which the newest few hundred points of a one-minute check could never show.
 */
export async function seriesStart(db: Db, args: { tableId: number; checkKey: string }): Promise<number | null> {
  const [first] = await db
    .select({ at: min(checkRuns.startedAt) })
    .from(checkRuns)
    .where(and(eq(checkRuns.tableId, args.tableId), eq(checkRuns.checkKey, args.checkKey)));
  return first?.at ? first.at.getTime() : null;
}

/**
 * Of `keys`, the checks of the table whose newest `runs` runs were all skipped (so at least
 * that many ran), none of them because Pulse's own store failed (a store restart opens no
 * alerts). One probe of the series index per key, whatever the history's length.
 */
/** The code in the details of a run skipped because Pulse's own store failed under its check. */
export const STORE_UNAVAILABLE = "store_unavailable";

export async function skippedInARow(db: Db, tableId: number, keys: string[], runs: number): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const result = await db.execute(sql`
    SELECT k.key AS check_key
    FROM (VALUES ${sql.join(keys.map((key) => sql`(${key})`), sql`, `)}) AS k(key)
    CROSS JOIN LATERAL (
      SELECT count(*)::int AS runs,
             count(*) FILTER (WHERE r.status = 'skipped' AND r.details->>'code' IS DISTINCT FROM ${STORE_UNAVAILABLE})::int AS skipped
      FROM (SELECT status, details FROM check_runs WHERE table_id = ${tableId} AND check_key = k.key ORDER BY started_at DESC LIMIT ${runs}) r
    ) s
    WHERE s.runs = ${runs} AND s.skipped = ${runs}`);
  return new Set(rowsOf<{ check_key: string }>(result).map((r) => r.check_key));
}

/** Deletes up to `limit` of the runs older than `before`, oldest first; returns how many went.
 * The caller repeats it while whole batches go (src/monitoring/scheduler.ts), so a backlog
 * never holds long locks nor runs past the store's statement timeout. */
export async function pruneCheckRuns(db: Db, before: Date, limit: number): Promise<number> {
  const old = db.select({ id: checkRuns.id }).from(checkRuns).where(lt(checkRuns.startedAt, before)).orderBy(asc(checkRuns.startedAt)).limit(limit);
  const rows = await db.delete(checkRuns).where(inArray(checkRuns.id, old)).returning({ id: checkRuns.id });
  return rows.length;
}

/**
 * The tables that have runs but are gone (deleted on their own, with their connection or with
 * their owner: runs have no foreign key, see schema.ts). One probe of the series index per
 * table with runs (a loose index scan), not a scan of the runs.
 */
export async function orphanedRunTables(db: Db): Promise<number[]> {
  const result = await db.execute(sql`
    WITH RECURSIVE ids AS (
      (SELECT table_id AS id FROM check_runs ORDER BY table_id LIMIT 1)
      UNION ALL
      SELECT (SELECT table_id FROM check_runs WHERE table_id > ids.id ORDER BY table_id LIMIT 1) FROM ids WHERE ids.id IS NOT NULL
    )
    SELECT id FROM ids WHERE id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM monitored_tables t WHERE t.id = ids.id)`);
  return rowsOf<{ id: number }>(result).map((r) => r.id);
}

/** Deletes up to `limit` runs of the tables `tableIds`; returns how many went. */
export async function purgeOrphanedRuns(db: Db, tableIds: number[], limit: number): Promise<number> {
  const some = db.select({ id: checkRuns.id }).from(checkRuns).where(inArray(checkRuns.tableId, tableIds)).limit(limit);
  const rows = await db.delete(checkRuns).where(inArray(checkRuns.id, some)).returning({ id: checkRuns.id });
  return rows.length;
}
