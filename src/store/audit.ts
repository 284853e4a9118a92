// Repository of the audit trail: batched inserts, the owner's filtered pages (newest first,
// keyset on id), and retention in bounded batches.

import { and, asc, desc, eq, gte, inArray, lt, lte, type SQL } from "drizzle-orm";

import type { Db } from "./client.js";
import { auditRecords, type AuditRecordRow } from "./schema.js";

export type NewAuditRecord = Omit<typeof auditRecords.$inferInsert, "id">;

/** One multi-row INSERT. */
export async function insertAuditRecords(db: Db, records: NewAuditRecord[]): Promise<void> {
  if (records.length === 0) return;
  await db.insert(auditRecords).values(records);
}

export interface AuditFilter {
  ownerId: number;
  connectionId?: number | undefined;
  source?: AuditRecordRow["source"] | undefined;
  outcome?: AuditRecordRow["outcome"] | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  /** Only records older than this id (the previous page's last). */
  before?: number | undefined;
  limit: number;
}

export async function listAuditRecords(db: Db, filter: AuditFilter): Promise<AuditRecordRow[]> {
  const conditions: SQL[] = [eq(auditRecords.ownerId, filter.ownerId)];
  if (filter.connectionId !== undefined) conditions.push(eq(auditRecords.connectionId, filter.connectionId));
  if (filter.source !== undefined) conditions.push(eq(auditRecords.source, filter.source));
  if (filter.outcome !== undefined) conditions.push(eq(auditRecords.outcome, filter.outcome));
  if (filter.from !== undefined) conditions.push(gte(auditRecords.at, filter.from));
  if (filter.to !== undefined) conditions.push(lte(auditRecords.at, filter.to));
  if (filter.before !== undefined) conditions.push(lt(auditRecords.id, filter.before));
  return db
    .select()
    .from(auditRecords)
    .where(and(...conditions))
    .orderBy(desc(auditRecords.id))
    .limit(filter.limit);
}

/** Deletes records older than `before`, `batch` at a time and at most `maxBatches` batches
 * (so a backlog never holds long locks nor one housekeeping pass); returns how many went. */
export async function pruneAuditRecords(db: Db, before: Date, batch: number, maxBatches: number): Promise<number> {
  let pruned = 0;
  for (let i = 0; i < maxBatches; i++) {
    const old = db.select({ id: auditRecords.id }).from(auditRecords).where(lt(auditRecords.at, before)).orderBy(asc(auditRecords.at)).limit(batch);
    const rows = await db.delete(auditRecords).where(inArray(auditRecords.id, old)).returning({ id: auditRecords.id });
    pruned += rows.length;
    if (rows.length < batch) break;
  }
  return pruned;
}
