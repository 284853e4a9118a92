// Repository of alerts (one row per monitored table and check, carrying the alert reducer's
// state) and of the notification outbox that their transitions fill.

import { and, asc, desc, eq, gt, inArray, isNotNull, isNull, lt, lte, ne, or, sql } from "drizzle-orm";

import type { Db } from "./client.js";
import { onNextPage, type PageBefore } from "./page-before.js";
import type { CheckConfig } from "./column-types.js";
import { alerts, monitoredTables, notificationChannels, sentNotifications, type AlertRow, type MonitoredTableRow, type SentNotificationRow } from "./schema.js";

/** A transaction handle: repositories take it wherever they take a Db. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

export type AlertFields = Pick<
  typeof alerts.$inferInsert,
  "status" | "state" | "openedAt" | "acknowledgedAt" | "mutedUntil" | "resolvedAt" | "lastDetail"
>;

/** The alerts of an incident not over (a resolving alert is still open): as alerts_open_idx is
 * made, so that the planner reads that index. */
const isOpen = () => inArray(alerts.status, ["open", "resolving"]);

/** The statement that counts the alerts open now across the deployment (awaitable; `toSQL()`
 * shows it). */
export const openAlertsCount = (db: Db) => db.select({ n: sql<number>`count(*)::int` }).from(alerts).where(isOpen());

export async function countOpenAlerts(db: Db): Promise<number> {
  const [row] = await openAlertsCount(db);
  return row?.n ?? 0;
}

/** An alert with the table it is about. */
export interface AlertOnTable {
  alert: AlertRow;
  connectionId: number;
  schemaName: string | null;
  tableName: string;
}

/** The statement of activeAlertsOnTables (`toSQL()` shows it). A query builder runs again at
 * every `then`: callers that share the result (a cache) await activeAlertsOnTables. */
export function activeAlertsQuery(db: Db, ownerId: number) {
  return db
    .select({ alert: alerts, connectionId: monitoredTables.connectionId, schemaName: monitoredTables.schemaName, tableName: monitoredTables.tableName })
    .from(alerts)
    .innerJoin(monitoredTables, eq(monitoredTables.id, alerts.tableId))
    .where(and(eq(alerts.ownerId, ownerId), isOpen()));
}

/** The owner's alerts still open (acknowledged and muted ones included), with their tables. */
export async function activeAlertsOnTables(db: Db, ownerId: number): Promise<AlertOnTable[]> {
  return activeAlertsQuery(db, ownerId);
}

/** The table's checks as they are now, its row locked against a change until the transaction
 * ends; null once the table is deleted. */
export async function lockChecksOfTable(tx: Tx, tableId: number): Promise<CheckConfig[] | null> {
  const [row] = await tx.select({ checks: monitoredTables.checks }).from(monitoredTables).where(eq(monitoredTables.id, tableId)).for("share");
  return row?.checks ?? null;
}

export async function alertsOfTable(db: Db, tableId: number): Promise<AlertRow[]> {
  return db.select().from(alerts).where(eq(alerts.tableId, tableId));
}

/** Locks the alert of (table, check) for the rest of the transaction, creating it first with
 * `initial` if it does not exist yet. */
export async function lockAlertOfCheck(
  tx: Tx,
  key: { ownerId: number; tableId: number; checkKey: string; checkKind: string },
  initial: AlertFields,
): Promise<AlertRow> {
  await tx
    .insert(alerts)
    .values({ ...key, ...initial })
    .onConflictDoNothing({ target: [alerts.tableId, alerts.checkKey] });
  const [row] = await tx
    .select()
    .from(alerts)
    .where(and(eq(alerts.tableId, key.tableId), eq(alerts.checkKey, key.checkKey)))
    .for("update");
  return row!;
}

/** Locks the alerts of the owner's monitored tables that are about to be deleted (the tables of
 * `where`: one table, or every table of a connection) for the rest of the transaction, with
 * their tables. */
export async function lockAlertsOfTables(
  tx: Tx,
  ownerId: number,
  where: { tableId: number } | { connectionId: number },
): Promise<{ alert: AlertRow; table: MonitoredTableRow }[]> {
  const tableFilter = "tableId" in where ? eq(monitoredTables.id, where.tableId) : eq(monitoredTables.connectionId, where.connectionId);
  return tx
    .select({ alert: alerts, table: monitoredTables })
    .from(alerts)
    .innerJoin(monitoredTables, eq(monitoredTables.id, alerts.tableId))
    .where(and(eq(alerts.ownerId, ownerId), eq(monitoredTables.ownerId, ownerId), tableFilter))
    .orderBy(asc(alerts.id))
    .for("update", { of: alerts });
}

/** Locks one of the owner's alerts for the rest of the transaction; null if not theirs. */
export async function lockAlert(tx: Tx, ownerId: number, id: number): Promise<AlertRow | null> {
  const [row] = await tx
    .select()
    .from(alerts)
    .where(and(eq(alerts.id, id), eq(alerts.ownerId, ownerId)))
    .for("update");
  return row ?? null;
}

export async function saveAlert(tx: Tx, id: number, fields: AlertFields): Promise<AlertRow> {
  const [row] = await tx.update(alerts).set(fields).where(eq(alerts.id, id)).returning();
  return row!;
}

export async function getAlert(db: Db, ownerId: number, id: number): Promise<AlertRow | null> {
  const [row] = await db
    .select()
    .from(alerts)
    .where(and(eq(alerts.id, id), eq(alerts.ownerId, ownerId)))
    .limit(1);
  return row ?? null;
}

/** What a listing filters on: a status as shown (alert-state.ts alertPhase: muting shows over
 * acknowledgement over the status while the incident is open), or "active", every alert whose
 * incident is still open whatever it shows. */
export type AlertListFilter = "open" | "acknowledged" | "muted" | "resolving" | "resolved" | "active";

/** alertPhase in SQL, so that a filter finds every matching alert however many others the owner
 * has (a filter applied to the newest few thousand left older open ones out). The columns mirror
 * the reducer's state (monitoring/alerts.ts fieldsOf). */
function phaseIs(filter: AlertListFilter, now: Date) {
  const incident = isOpen();
  const notMuted = or(isNull(alerts.mutedUntil), lte(alerts.mutedUntil, now))!;
  switch (filter) {
    case "active":
      return incident;
    case "muted":
      return and(incident, gt(alerts.mutedUntil, now))!;
    case "acknowledged":
      return and(eq(alerts.status, "open"), isNotNull(alerts.acknowledgedAt), notMuted)!;
    case "open":
      return and(eq(alerts.status, "open"), isNull(alerts.acknowledgedAt), notMuted)!;
    case "resolving":
      return and(eq(alerts.status, "resolving"), notMuted)!;
    case "resolved":
      // Opened once (the listing's own condition), over now.
      return eq(alerts.status, "ok");
  }
}

/** The owner's alerts that ever opened, most recently opened first. `status` and `tableIds` (only
 * alerts of these tables: a credential limited to some connections) apply before the limit, so
 * a page is never cut short by alerts that do not match or that the caller may not see. */
export async function listAlerts(
  db: Db,
  ownerId: number,
  options: {
    status?: AlertListFilter | undefined;
    now: Date;
    tableId?: number | undefined;
    tableIds?: readonly number[] | undefined;
    before?: PageBefore | undefined;
    limit: number;
  },
): Promise<AlertRow[]> {
  if (options.tableIds?.length === 0) return [];
  const conditions = [eq(alerts.ownerId, ownerId), isNotNull(alerts.openedAt)];
  if (options.status !== undefined) conditions.push(phaseIs(options.status, options.now));
  if (options.tableId !== undefined) conditions.push(eq(alerts.tableId, options.tableId));
  if (options.tableIds !== undefined) conditions.push(inArray(alerts.tableId, [...options.tableIds]));
  if (options.before) conditions.push(onNextPage(options.before, alerts.openedAt, alerts.id));
  return db
    .select()
    .from(alerts)
    .where(and(...conditions))
    .orderBy(desc(alerts.openedAt), desc(alerts.id))
    .limit(options.limit);
}

// ---- Notification outbox ----

export type NewOutboxEntry = Pick<typeof sentNotifications.$inferInsert, "dedupKey" | "channelId" | "alertId" | "payload" | "nextAttemptAt">;

/** Records notifications to send; a key already recorded (sent or pending) is left alone, so
 * the same notification is never queued twice, whichever instance or restart asks. */
export async function enqueueNotifications(tx: Tx | Db, entries: NewOutboxEntry[]): Promise<number> {
  if (entries.length === 0) return 0;
  const rows = await tx
    .insert(sentNotifications)
    .values(entries)
    .onConflictDoNothing({ target: sentNotifications.dedupKey })
    .returning({ id: sentNotifications.id });
  return rows.length;
}

export async function enabledChannelIds(tx: Tx | Db, ownerId: number): Promise<number[]> {
  const rows = await tx
    .select({ id: notificationChannels.id })
    .from(notificationChannels)
    .where(and(eq(notificationChannels.ownerId, ownerId), eq(notificationChannels.enabled, true)))
    .orderBy(asc(notificationChannels.id));
  return rows.map((r) => r.id);
}

/** The oldest due notifications a claim ranks, besides each channel's oldest: read in order from
 * the pending index, so a claim costs the same however large the backlog (ranking all of it
 * took 0.8 s at 500,000). */
const CLAIM_CANDIDATES_PER_SLOT = 20;

/** Takes up to `limit` due notifications for sending: their next attempt moves to `retryAt`, so
 * a crash mid-send retries them then and nobody else sends them meanwhile. Users take turns (each
 * one's oldest first, then each one's second...) among the oldest due (CLAIM_CANDIDATES_PER_SLOT
 * per slot) and the oldest due of every channel, so however large one user's backlog, another
 * user's alert goes out in the next claim. Channels with anything pending are found by skipping
 * through their index (one probe each), not by reading the backlog. */
export async function claimDueNotifications(db: Db, args: { now: Date; retryAt: Date; limit: number }): Promise<SentNotificationRow[]> {
  const now = sql`${args.now.toISOString()}::timestamptz`;
  const fairest = sql`(
    WITH RECURSIVE pending_channels(id) AS (
      SELECT min(channel_id) FROM sent_notifications WHERE status = 'pending'
      UNION ALL
      SELECT (SELECT min(channel_id) FROM sent_notifications WHERE status = 'pending' AND channel_id > p.id)
      FROM pending_channels p WHERE p.id IS NOT NULL
    ), candidates AS (
      (SELECT id, channel_id, next_attempt_at FROM sent_notifications
        WHERE status = 'pending' AND next_attempt_at <= ${now}
        ORDER BY next_attempt_at LIMIT ${args.limit * CLAIM_CANDIDATES_PER_SLOT})
      UNION
      SELECT head.id, head.channel_id, head.next_attempt_at
      FROM pending_channels p CROSS JOIN LATERAL (
        SELECT id, channel_id, next_attempt_at FROM sent_notifications
        WHERE status = 'pending' AND channel_id = p.id AND next_attempt_at <= ${now}
        ORDER BY next_attempt_at LIMIT 1
      ) head
    ), turns AS (
      SELECT c.id, c.next_attempt_at, row_number() OVER (PARTITION BY ch.owner_id ORDER BY c.next_attempt_at) AS turn
      FROM candidates c JOIN notification_channels ch ON ch.id = c.channel_id
    )
    SELECT id FROM turns ORDER BY turn, next_attempt_at LIMIT ${args.limit}
  )`;
  const dueNow = and(eq(sentNotifications.status, "pending"), lte(sentNotifications.nextAttemptAt, args.now));
  // Locked apart from the ranking (FOR UPDATE cannot go with a window function); what another
  // claim took meanwhile is locked (skipped) or no longer due (its next attempt moved).
  const due = db
    .select({ id: sentNotifications.id })
    .from(sentNotifications)
    .where(and(sql`${sentNotifications.id} IN ${fairest}`, dueNow))
    .for("update", { skipLocked: true });
  return db
    .update(sentNotifications)
    .set({ attempts: sql`${sentNotifications.attempts} + 1`, nextAttemptAt: args.retryAt })
    .where(inArray(sentNotifications.id, due))
    .returning();
}

export async function markNotificationSent(db: Db, id: number, at: Date): Promise<void> {
  await db.update(sentNotifications).set({ status: "sent", sentAt: at, lastError: null }).where(eq(sentNotifications.id, id));
}

export async function markNotificationFailed(db: Db, id: number, error: string, retryAt: Date | null): Promise<void> {
  await db
    .update(sentNotifications)
    .set(retryAt ? { lastError: error, nextAttemptAt: retryAt } : { lastError: error, status: "failed" })
    .where(eq(sentNotifications.id, id));
}

/** Deletes up to `limit` of the notifications sent, or given up on, before `before`; returns how
 * many went. Their dedup keys (alert, event, sequence) never recur, so none is sent again; a
 * pending one stays whatever its age. */
export async function pruneNotifications(db: Db, before: Date, limit: number): Promise<number> {
  const old = db
    .select({ id: sentNotifications.id })
    .from(sentNotifications)
    .where(and(ne(sentNotifications.status, "pending"), lt(sentNotifications.createdAt, before)))
    .orderBy(asc(sentNotifications.id))
    .limit(limit);
  const rows = await db.delete(sentNotifications).where(inArray(sentNotifications.id, old)).returning({ id: sentNotifications.id });
  return rows.length;
}

export async function notificationsOfAlert(db: Db, alertId: number): Promise<SentNotificationRow[]> {
  return db.select().from(sentNotifications).where(eq(sentNotifications.alertId, alertId)).orderBy(asc(sentNotifications.id));
}
