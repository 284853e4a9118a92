// Repository of monitored tables: owner-scoped CRUD for the API, and the leases of the
// instances running checks (due tables claimed with FOR UPDATE SKIP LOCKED, or one table for a
// manual run; renewed while the checks run, then completed or released).
// Connection affinity: at any moment one instance at most holds live leases on a connection's
// tables, because the monitoring budget that protects a customer database lives in each
// process; with one instance per connection, that instance's budget is the cluster's.

import { and, asc, eq, gt, gte, inArray, isNull, lt, lte, ne, notExists, notInArray, or, sql } from "drizzle-orm";
import { alias, type AnyPgColumn } from "drizzle-orm/pg-core";

import type { ColumnSnapshot } from "./column-types.js";
import type { Db } from "./client.js";
import { alerts, monitoredTables, type MonitoredTableRow } from "./schema.js";

export type NewMonitoredTable = Omit<
  typeof monitoredTables.$inferInsert,
  "id" | "createdAt" | "updatedAt" | "leaseOwner" | "leaseUntil" | "lastRunAt"
>;
export type MonitoredTablePatch = Partial<
  Pick<
    MonitoredTableRow,
    "schemaName" | "tableName" | "intervalSeconds" | "schedule" | "timezone" | "checks" | "alertConfig" | "enabled" | "nextRunAt" | "schemaSnapshot"
  >
>;

export async function insertMonitoredTable(db: Db, input: NewMonitoredTable): Promise<MonitoredTableRow> {
  const [row] = await db.insert(monitoredTables).values(input).returning();
  return row!;
}

/** A page of the owner's tables by id: those after `afterId`, on `connectionIds` if given. */
export async function listMonitoredTables(
  db: Db,
  ownerId: number,
  page: { afterId: number; limit: number; connectionIds: readonly number[] | "all" },
): Promise<MonitoredTableRow[]> {
  return db
    .select()
    .from(monitoredTables)
    .where(
      and(
        eq(monitoredTables.ownerId, ownerId),
        gt(monitoredTables.id, page.afterId),
        page.connectionIds === "all" ? undefined : inArray(monitoredTables.connectionId, [...page.connectionIds]),
      ),
    )
    .orderBy(asc(monitoredTables.id))
    .limit(page.limit);
}

export interface MonitoredTableName {
  id: number;
  connectionId: number;
  schemaName: string | null;
  tableName: string;
}

/** Each of the owner's tables' id, connection and name, without their checks (which may be large). */
export async function listMonitoredTableNames(db: Db, ownerId: number): Promise<MonitoredTableName[]> {
  return db
    .select({ id: monitoredTables.id, connectionId: monitoredTables.connectionId, schemaName: monitoredTables.schemaName, tableName: monitoredTables.tableName })
    .from(monitoredTables)
    .where(eq(monitoredTables.ownerId, ownerId))
    .orderBy(asc(monitoredTables.id));
}

export async function getMonitoredTable(db: Db, ownerId: number, id: number): Promise<MonitoredTableRow | null> {
  const [row] = await db
    .select()
    .from(monitoredTables)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .limit(1);
  return row ?? null;
}

/** Applies `patch` (the alerts of checks taken off go by deleteAlertsOfOtherChecks, in the
 * caller's transaction). */
export async function updateMonitoredTable(db: Db, ownerId: number, id: number, patch: MonitoredTablePatch): Promise<MonitoredTableRow | null> {
  const [row] = await db
    .update(monitoredTables)
    .set(patch)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .returning();
  return row ?? null;
}

/** Deletes the alerts of the table's checks that are no longer among `checkKeys`. */
export async function deleteAlertsOfOtherChecks(db: Db, tableId: number, checkKeys: string[]): Promise<void> {
  await db.delete(alerts).where(and(eq(alerts.tableId, tableId), notInArray(alerts.checkKey, checkKeys)));
}

/** One of the owner's monitored tables, locked for the rest of the transaction (before its
 * alerts, in the order a run locks them). */
export async function lockMonitoredTable(db: Db, ownerId: number, id: number): Promise<MonitoredTableRow | null> {
  const [row] = await db
    .select()
    .from(monitoredTables)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .for("update");
  return row ?? null;
}

/** The owner's monitored tables on a connection, locked for the rest of the transaction. */
export async function lockMonitoredTablesOfConnection(db: Db, ownerId: number, connectionId: number): Promise<MonitoredTableRow[]> {
  return db
    .select()
    .from(monitoredTables)
    .where(and(eq(monitoredTables.connectionId, connectionId), eq(monitoredTables.ownerId, ownerId)))
    .orderBy(asc(monitoredTables.id))
    .for("update");
}

export async function deleteMonitoredTable(db: Db, ownerId: number, id: number): Promise<boolean> {
  const rows = await db
    .delete(monitoredTables)
    .where(and(eq(monitoredTables.id, id), eq(monitoredTables.ownerId, ownerId)))
    .returning({ id: monitoredTables.id });
  return rows.length > 0;
}

/** Monitoring's state, as a lease is (its updated_at kept): not a change of the table's settings
 * that a PATCH made from them would undo. */
export async function saveSchemaSnapshot(db: Db, id: number, columns: ColumnSnapshot[] | null): Promise<void> {
  await db.update(monitoredTables).set({ schemaSnapshot: columns, updatedAt: sql`${monitoredTables.updatedAt}` }).where(eq(monitoredTables.id, id));
}

/** A run's first snapshot of the table it read: taken (true) only while the row has none and
 * still names that table. A run under way when the table was moved (PATCH `table`, which drops the
 * snapshot) read the old one: its columns, kept, made every later run report drift. */
export async function takeSchemaSnapshot(db: Db, read: { id: number; schemaName: string | null; tableName: string }, columns: ColumnSnapshot[]): Promise<boolean> {
  const t = monitoredTables;
  const taken = await db
    .update(t)
    // As saveSchemaSnapshot's.
    .set({ schemaSnapshot: columns, updatedAt: sql`${t.updatedAt}` })
    .where(and(eq(t.id, read.id), isNull(t.schemaSnapshot), eq(t.tableName, read.tableName), read.schemaName === null ? isNull(t.schemaName) : eq(t.schemaName, read.schemaName)))
    .returning({ id: t.id });
  return taken.length > 0;
}

/** Arbitrary constant, apart from the migration lock's: claims and manual leases take turns. */
const LEASE_LOCK_KEY = 7_311_520_432;

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/**
 * Serializes the transactions that take leases, across instances, until the transaction ends.
 * Without it two claims running at once would each see no live lease on a connection and each
 * take one of its tables. Claims are short and once per tick, so the wait is short too.
 */
async function takeLeaseTurn(tx: Tx): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(${LEASE_LOCK_KEY}::bigint)`);
}

/** A live lease held by another owner than `owner`: that owner runs the table's connection. */
const leasedByOther = (t: { leaseOwner: AnyPgColumn; leaseUntil: AnyPgColumn }, owner: string, now: Date) => and(ne(t.leaseOwner, owner), gte(t.leaseUntil, now));

/**
 * Leases up to `limit` due tables to `owner` until `leaseUntil`, skipping the tables of
 * connections another owner holds a live lease on (connection affinity; the owner's own leases
 * do not stop it, its local budget serializes those). Users take turns: each user's oldest due
 * table first, then each one's second, counting the tables `owner` runs for them already, so one
 * user's many (or slow) tables hold up another's by one table run at most, not by all of them.
 * Within a turn, oldest due first. Rows another transaction has locked are skipped (SKIP LOCKED),
 * and rows with a live lease are not due: so each due table goes to exactly one instance. Times
 * come from the caller's clock (instances are expected to keep theirs NTP-synchronised; leases
 * are minutes).
 */
export async function claimDueTables(
  db: Db,
  args: { owner: string; now: Date; leaseUntil: Date; limit: number },
): Promise<MonitoredTableRow[]> {
  if (args.limit <= 0) return [];
  return db.transaction(async (tx) => {
    await takeLeaseTurn(tx);
    const other = alias(monitoredTables, "other");
    const dueNow = and(
      eq(monitoredTables.enabled, true),
      lte(monitoredTables.nextRunAt, args.now),
      or(isNull(monitoredTables.leaseUntil), lt(monitoredTables.leaseUntil, args.now)),
      notExists(
        tx
          .select({ id: other.id })
          .from(other)
          .where(and(eq(other.connectionId, monitoredTables.connectionId), leasedByOther(other, args.owner, args.now))),
      ),
    );
    const mine = alias(monitoredTables, "mine");
    const running = tx
      .select({ userId: mine.ownerId, tables: sql<number>`count(*)`.as("tables") })
      .from(mine)
      .where(and(eq(mine.leaseOwner, args.owner), gte(mine.leaseUntil, args.now)))
      .groupBy(mine.ownerId)
      .as("running");
    const turns = tx
      .select({
        id: monitoredTables.id,
        nextRunAt: monitoredTables.nextRunAt,
        turn: sql<number>`row_number() OVER (PARTITION BY ${monitoredTables.ownerId} ORDER BY ${monitoredTables.nextRunAt}) + coalesce(${running.tables}, 0)`.as("turn"),
      })
      .from(monitoredTables)
      .leftJoin(running, eq(running.userId, monitoredTables.ownerId))
      .where(dueNow)
      .as("turns");
    const fairest = tx.select({ id: turns.id }).from(turns).orderBy(asc(turns.turn), asc(turns.nextRunAt)).limit(args.limit);
    // Locked apart from the ranking (FOR UPDATE cannot go with a window function); claims take
    // turns (takeLeaseTurn), so what was ranked is still due unless the API changed it meanwhile.
    const due = tx
      .select({ id: monitoredTables.id })
      .from(monitoredTables)
      .where(and(inArray(monitoredTables.id, fairest), dueNow))
      .for("update", { skipLocked: true });
    return tx
      .update(monitoredTables)
      .set({ leaseOwner: args.owner, leaseUntil: args.leaseUntil, updatedAt: sql`${monitoredTables.updatedAt}` })
      .where(inArray(monitoredTables.id, due))
      .returning();
  });
}

/** Why a lease was refused: another owner runs checks of the table's connection, or `owner`
 * itself is running this table's checks already. */
export type ManualLease = { leased: MonitoredTableRow } | { busy: "connection" | "table" };

/**
 * Leases one table to `owner` for a run outside the schedule, under the claims' rule: refused
 * while another owner holds a live lease on its connection (this table's included) or the
 * table itself has a live lease (its checks are running). The schedule (next_run_at) is left
 * as it is. Null when there is no such table.
 */
export async function leaseTableForRun(
  db: Db,
  args: { id: number; owner: string; now: Date; leaseUntil: Date },
): Promise<ManualLease | null> {
  return db.transaction(async (tx) => {
    await takeLeaseTurn(tx);
    const [table] = await tx.select().from(monitoredTables).where(eq(monitoredTables.id, args.id)).for("update");
    if (!table) return null;
    const [other] = await tx
      .select({ id: monitoredTables.id })
      .from(monitoredTables)
      .where(and(eq(monitoredTables.connectionId, table.connectionId), leasedByOther(monitoredTables, args.owner, args.now)))
      .limit(1);
    if (other) return { busy: "connection" };
    if (table.leaseUntil && table.leaseUntil >= args.now) return { busy: "table" };
    const [leased] = await tx
      .update(monitoredTables)
      .set({ leaseOwner: args.owner, leaseUntil: args.leaseUntil, updatedAt: sql`${monitoredTables.updatedAt}` })
      .where(eq(monitoredTables.id, args.id))
      .returning();
    return { leased: leased! };
  });
}

/** Extends `owner`'s lease on a running table to `leaseUntil`. False when the lease was lost
 * meanwhile (expired and taken by another instance, or completed). */
export async function renewLease(db: Db, args: { id: number; owner: string; leaseUntil: Date }): Promise<LeaseFate> {
  const rows = await db
    .update(monitoredTables)
    .set({ leaseUntil: args.leaseUntil, updatedAt: sql`${monitoredTables.updatedAt}` })
    .where(and(eq(monitoredTables.id, args.id), eq(monitoredTables.leaseOwner, args.owner)))
    .returning({ id: monitoredTables.id });
  return rows.length > 0 ? "kept" : lostOrGone(db, args.id);
}

/** What became of a lease an instance renewed or ended: `kept` (as asked), `lost` (expired and
 * taken by another instance, which now owns the table's schedule), or `gone` with its table,
 * deleted meanwhile (nothing amiss: the run's outcomes are dropped). */
export type LeaseFate = "kept" | "lost" | "gone";

async function lostOrGone(db: Db, id: number): Promise<LeaseFate> {
  const [row] = await db.select({ id: monitoredTables.id }).from(monitoredTables).where(eq(monitoredTables.id, id));
  return row ? "lost" : "gone";
}

/** Ends a lease after a run, its next run set by `nextRunAfter` from the table's timing as it is
 * now: a PATCH of the interval, schedule or zone made while it ran counts from this run's end
 * (the PATCH cannot: it saw the table due), and a table moved to another table or schema while
 * it ran is due at once, the run that ended having read the old one. */
export async function completeLease(
  db: Db,
  args: {
    id: number;
    owner: string;
    lastRunAt: Date;
    claimed: Pick<MonitoredTableRow, "schemaName" | "tableName">;
    nextRunAfter: (timing: Pick<MonitoredTableRow, "intervalSeconds" | "schedule" | "timezone">) => Date;
    now: Date;
    /** The lease's end as this owner last set it, when known: only that lease is ended. */
    leaseUntil?: Date | null | undefined;
  },
): Promise<LeaseFate> {
  const t = monitoredTables;
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select({ intervalSeconds: t.intervalSeconds, schedule: t.schedule, timezone: t.timezone, schemaName: t.schemaName, tableName: t.tableName })
      .from(t)
      .where(and(eq(t.id, args.id), eq(t.leaseOwner, args.owner), args.leaseUntil ? eq(t.leaseUntil, args.leaseUntil) : undefined))
      .for("update");
    if (!row) return lostOrGone(tx, args.id);
    const moved = row.schemaName !== args.claimed.schemaName || row.tableName !== args.claimed.tableName;
    await tx
      .update(t)
      .set({ nextRunAt: moved ? args.now : args.nextRunAfter(row), lastRunAt: args.lastRunAt, leaseOwner: null, leaseUntil: null, updatedAt: sql`${t.updatedAt}` })
      .where(eq(t.id, args.id));
    return "kept";
  });
}

/** Ends a lease taken for a run outside the schedule, leaving the schedule as it is. Only
 * `owner`'s lease is cleared (and, when `leaseUntil` is known, only the lease ending then): one
 * lost meanwhile belongs to whoever took it. */
export async function releaseLease(db: Db, args: { id: number; owner: string; lastRunAt?: Date | undefined; leaseUntil?: Date | null | undefined }): Promise<void> {
  await db
    .update(monitoredTables)
    .set({ leaseOwner: null, leaseUntil: null, ...(args.lastRunAt ? { lastRunAt: args.lastRunAt } : {}), updatedAt: sql`${monitoredTables.updatedAt}` })
    .where(
      and(eq(monitoredTables.id, args.id), eq(monitoredTables.leaseOwner, args.owner), args.leaseUntil ? eq(monitoredTables.leaseUntil, args.leaseUntil) : undefined),
    );
}

/** A monitored table by id, whoever owns it: for operators' tools (`pulse check`), never the API. */
export async function findMonitoredTable(db: Db, id: number): Promise<MonitoredTableRow | null> {
  const [row] = await db.select().from(monitoredTables).where(eq(monitoredTables.id, id)).limit(1);
  return row ?? null;
}
