// Repository of check runs: one row per check execution with its metric value, the history a
// baseline learns from, and retention.

import { and, asc, desc, eq, gte, inArray, lt, min, sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { checkRuns, type CheckRunRow } from "./schema.js";

export type NewCheckRun = Omit<typeof checkRuns.$inferInsert, "id">;

export async function insertCheckRuns(db: Db, runs: NewCheckRun[]): Promise<CheckRunRow[]> {
  if (runs.length === 0) return [];
  return db.insert(checkRuns).values(runs).returning();
}

export async function listCheckRuns(
  db: Db,
  tableId: number,
  options: { limit: number; checkKey?: string | undefined; before?: Date | undefined },
): Promise<CheckRunRow[]> {
  const conditions = [eq(checkRuns.tableId, tableId)];
  if (options.checkKey !== undefined) conditions.push(eq(checkRuns.checkKey, options.checkKey));
  if (options.before !== undefined) conditions.push(lt(checkRuns.startedAt, options.before));
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

/** Deletes runs older than `before`, at most `limit` at a time (so a big backlog never holds
 * long locks); returns how many went. */
export async function pruneCheckRuns(db: Db, before: Date, limit: number): Promise<number> {
  const old = db.select({ id: checkRuns.id }).from(checkRuns).where(lt(checkRuns.startedAt, before)).orderBy(asc(checkRuns.startedAt)).limit(limit);
  const rows = await db.delete(checkRuns).where(inArray(checkRuns.id, old)).returning({ id: checkRuns.id });
  return rows.length;
}
