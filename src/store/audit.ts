// Repository of the audit trail: batched inserts, the owner's filtered pages (newest first,
// keyset on id), and retention in bounded batches.

import { and, asc, desc, eq, gte, inArray, lt, lte, sql, type SQL } from "drizzle-orm";

import type { Db } from "./client.js";
import { auditRecords, type AuditRecordRow } from "./schema.js";

export type NewAuditRecord = Omit<typeof auditRecords.$inferInsert, "id">;

/** One multi-row INSERT with a parameter per column (arrays unnested by the store), not per
 * value: building a 500-row `insert().values()` costs drizzle about 85 µs a row of the
 * event loop, more than a whole /query; this costs a few. Times go as epoch milliseconds and
 * numbers as array literals made here (see numberArray): `toISOString` and pg's generic array
 * encoder were most of what is left. */
export async function insertAuditRecords(db: Db, records: NewAuditRecord[]): Promise<void> {
  if (records.length === 0) return;
  const numbers = (pick: (r: NewAuditRecord) => number | null | undefined) => sql.param(numberArray(records.map(pick)));
  const texts = (pick: (r: NewAuditRecord) => string | null | undefined) => sql.param(records.map((r) => pick(r) ?? null));
  await db.execute(sql`
    INSERT INTO audit_records (at, owner_id, connection_id, source, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule)
    SELECT to_timestamp(at_ms / 1000), owner_id, connection_id, source, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule
    FROM unnest(
      ${numbers((r) => r.at.getTime())}::double precision[], ${numbers((r) => r.ownerId)}::integer[], ${numbers((r) => r.connectionId)}::integer[],
      ${texts((r) => r.source)}::text[], ${texts((r) => r.sql)}::text[], ${numbers((r) => r.sqlLength)}::integer[],
      ${texts((r) => r.sqlSha256)}::text[], ${numbers((r) => r.rowCount)}::integer[], ${numbers((r) => r.durationMs)}::double precision[],
      ${texts((r) => r.outcome)}::text[], ${texts((r) => r.errorCode)}::text[], ${texts((r) => r.rule)}::text[]
    ) AS r(at_ms, owner_id, connection_id, source, sql, sql_length, sql_sha256, row_count, duration_ms, outcome, error_code, rule)`);
}

/** A PostgreSQL array literal of numbers (`{1,2.5,NULL}`). pg's encoder quotes and escapes
 * every element as if it were text, which a number never needs. */
const numberArray = (values: (number | null | undefined)[]) => `{${values.map((v) => v ?? "NULL").join(",")}}`;

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
