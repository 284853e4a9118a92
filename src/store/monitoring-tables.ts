// Repository of monitored tables: owner-scoped CRUD for the API, and the scheduler's lease
// (claim due tables with FOR UPDATE SKIP LOCKED, then complete or release them).

import { and, asc, eq, inArray, isNull, lt, lte, or, sql } from "drizzle-orm";

import type { ColumnSnapshot } from "../monitoring/check-config.js";
import type { Db } from "./client.js";
import { monitoredTables, type MonitoredTableRow } from "./schema.js";

export type NewMonitoredTable = Omit<
  typeof monitoredTables.$inferInsert,
  "id" | "createdAt" | "updatedAt" | "leaseOwner" | "leaseUntil" | "lastRunAt" | "schemaSnapshot"
>;
export type MonitoredTablePatch = Partial<
  Pick<MonitoredTableRow, "schemaName" | "tableName" | "intervalSeconds" | "checks" | "alertConfig" | "enabled" | "nextRunAt" | "schemaSnapshot">
>;

export async function insertMonitoredTable(db: Db, input: NewMonitoredTable): Promise<MonitoredTableRow> {
  const [row] = await db.insert(monitoredTables).values(input).returning();
  return row!;
}

export async function listMonitoredTables(db: Db, ownerId: number): Promise<MonitoredTableRow[]> {
  return db.select().from(monitoredTables).where(eq(monitoredTables.ownerId, ownerId)).orderBy(asc(monitoredTables.id));
}

export async function getMonitoredTable(db: Db, ownerId: number, id: number): Promise<MonitoredTableRow | null> {
  const [row] = await db
    .select()
    .from(monitoredTables)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .limit(1);
  return row ?? null;
}

export async function updateMonitoredTable(
  db: Db,
  ownerId: number,
  id: number,
  patch: MonitoredTablePatch,
): Promise<MonitoredTableRow | null> {
  const [row] = await db
    .update(monitoredTables)
    .set(patch)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .returning();
  return row ?? null;
}

export async function deleteMonitoredTable(db: Db, ownerId: number, id: number): Promise<boolean> {
  const rows = await db
    .delete(monitoredTables)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .returning({ id: monitoredTables.id });
  return rows.length > 0;
}

export async function saveSchemaSnapshot(db: Db, id: number, columns: ColumnSnapshot[] | null): Promise<void> {
  await db.update(monitoredTables).set({ schemaSnapshot: columns }).where(eq(monitoredTables.id, id));
}

/**
 * Leases up to `limit` due tables to `owner` until `leaseUntil`, oldest due first. Rows
 * another instance is claiming right now are skipped (SKIP LOCKED), and rows it holds a live
 * lease on are not due: so each due table goes to exactly one instance. Times come from the
 * caller's clock (instances are expected to keep theirs NTP-synchronised; leases are minutes).
 */
export async function claimDueTables(
  db: Db,
  args: { owner: string; now: Date; leaseUntil: Date; limit: number },
): Promise<MonitoredTableRow[]> {
  if (args.limit <= 0) return [];
  const due = db
    .select({ id: monitoredTables.id })
    .from(monitoredTables)
    .where(
      and(
        eq(monitoredTables.enabled, true),
        lte(monitoredTables.nextRunAt, args.now),
        or(isNull(monitoredTables.leaseUntil), lt(monitoredTables.leaseUntil, args.now)),
      ),
    )
    .orderBy(asc(monitoredTables.nextRunAt))
    .limit(args.limit)
    .for("update", { skipLocked: true });
  return db
    .update(monitoredTables)
    .set({ leaseOwner: args.owner, leaseUntil: args.leaseUntil, updatedAt: sql`${monitoredTables.updatedAt}` })
    .where(inArray(monitoredTables.id, due))
    .returning();
}

/** Extends `owner`'s lease on a running table to `leaseUntil`. False when the lease was lost
 * meanwhile (expired and taken by another instance, or completed). */
export async function renewLease(db: Db, args: { id: number; owner: string; leaseUntil: Date }): Promise<boolean> {
  const rows = await db
    .update(monitoredTables)
    .set({ leaseUntil: args.leaseUntil, updatedAt: sql`${monitoredTables.updatedAt}` })
    .where(and(eq(monitoredTables.id, args.id), eq(monitoredTables.leaseOwner, args.owner)))
    .returning({ id: monitoredTables.id });
  return rows.length > 0;
}

/** Ends a lease after a run: the next run is due at `nextRunAt`. False when the lease was
 * lost meanwhile (expired and taken by another instance), which then owns the schedule. */
export async function completeLease(
  db: Db,
  args: { id: number; owner: string; nextRunAt: Date; lastRunAt: Date },
): Promise<boolean> {
  const rows = await db
    .update(monitoredTables)
    .set({ nextRunAt: args.nextRunAt, lastRunAt: args.lastRunAt, leaseOwner: null, leaseUntil: null, updatedAt: sql`${monitoredTables.updatedAt}` })
    .where(and(eq(monitoredTables.id, args.id), eq(monitoredTables.leaseOwner, args.owner)))
    .returning({ id: monitoredTables.id });
  return rows.length > 0;
}

/** A monitored table by id, whoever owns it: for operators' tools (`npm run check`), never the API. */
export async function findMonitoredTable(db: Db, id: number): Promise<MonitoredTableRow | null> {
  const [row] = await db.select().from(monitoredTables).where(eq(monitoredTables.id, id)).limit(1);
  return row ?? null;
}
