// Repository of the audit trail: batches appended by COPY, the owner's filtered pages (newest first,
// keyset on time and id), and retention in bounded batches.

import { and, desc, eq, gte, lt, lte, sql, type SQL } from "drizzle-orm";

import type { Db, Store } from "./client.js";
import { rowsOf } from "./rows.js";
import { auditRecords, auditWrites, type AuditRecordRow } from "./schema.js";

export type NewAuditRecord = Omit<typeof auditRecords.$inferInsert, "id">;

const COLUMNS = ["at", "owner_id", "connection_id", "source", "api_key_id", "sql", "sql_length", "sql_sha256", "row_count", "duration_ms", "outcome", "error_code", "rule"] as const;

/** COPY's text format's NULL. */
const NULL = "\\N";
const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const NEEDS_ESCAPE = /[\\\n\r\t]/;
/** A value in COPY's text format: backslash, newline, carriage return and tab escaped (a
 * statement's text has all four), so `\N` written by a user stays text and never reads as NULL. */
const copyText = (value: string | null | undefined) =>
  value == null ? NULL : NEEDS_ESCAPE.test(value) ? value.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!) : value;

const FIRST_4_DIGIT_YEAR_MS = Date.parse("0001-01-01T00:00:00Z");
const PAST_4_DIGIT_YEARS_MS = Date.parse("+010000-01-01T00:00:00Z");

/** Epoch milliseconds as COPY text of a timestamptz. `toISOString` cost about as much as the
 * rest of a record's line; the records of a batch share their second, so each second's text
 * is made once. */
function isoTimes(): (ms: number) => string {
  let second = Number.NaN;
  let prefix = "";
  return (ms) => {
    // A year outside 1-9999 (never Date.now()'s) is not four digits: spelled in full.
    if (ms < FIRST_4_DIGIT_YEAR_MS || ms >= PAST_4_DIGIT_YEARS_MS) return new Date(ms).toISOString();
    const s = Math.floor(ms / 1000);
    if (s !== second) {
      second = s;
      prefix = new Date(s * 1000).toISOString().slice(0, 20); // "2026-12-04T02:45:01."
    }
    return `${prefix}${String(Math.floor(ms) - s * 1000).padStart(3, "0")}Z`;
  };
}

/** Appends records by COPY, one line each: 1-2 µs a record less of the store's CPU than the
 * INSERT ... SELECT FROM unnest(arrays) it replaces, for the same of Pulse's (about 3 µs; where
 * drizzle's `insert().values()` cost about 85): bench/audit-writes.ts, bench/RESULTS.md. In the
 * same transaction, `mark` becomes its writer's last batch (lastAuditBatch). */
export async function appendAuditRecords(store: Pick<Store, "copyRows">, records: NewAuditRecord[], mark?: { writer: string; batch: string }): Promise<void> {
  if (records.length === 0) return;
  const iso = isoTimes();
  let rows = "";
  for (const r of records) {
    rows += `${iso(r.at.getTime())}\t${r.ownerId}\t${r.connectionId}\t${copyText(r.source)}\t${r.apiKeyId ?? NULL}\t${copyText(r.sql)}\t${r.sqlLength}\t${copyText(r.sqlSha256)}\t${r.rowCount ?? NULL}\t${r.durationMs}\t${copyText(r.outcome)}\t${copyText(r.errorCode)}\t${copyText(r.rule)}\n`;
  }
  await store.copyRows(
    "audit_records",
    COLUMNS,
    rows,
    mark && {
      text: "INSERT INTO audit_writes (writer, batch, at) VALUES ($1, $2, now()) ON CONFLICT (writer) DO UPDATE SET batch = EXCLUDED.batch, at = EXCLUDED.at",
      values: [mark.writer, mark.batch],
    },
  );
}

/** Gives `writer` its row before its first batch, so that each batch's mark updates a row that
 * exists: a batch still committing then holds that row's lock, which lastAuditBatch waits for.
 * Again on a row it has: as recent, so that pruneAuditRecords leaves it. */
export async function registerAuditWriter(db: Db, writer: string): Promise<void> {
  await db
    .insert(auditWrites)
    .values({ writer, batch: NO_BATCH, at: sql`now()` })
    .onConflictDoUpdate({ target: auditWrites.writer, set: { at: sql`now()` } });
}

const NO_BATCH = "00000000-0000-0000-0000-000000000000";

/** The last batch `writer` committed (NO_BATCH before its first). Waits for a batch of the
 * writer's still committing (its answer lost, the server not done), as the store's query
 * timeout allows: a read that did not wait would take it for one that never committed. */
export async function lastAuditBatch(db: Db, writer: string): Promise<string | null> {
  const [row] = await db.select({ batch: auditWrites.batch }).from(auditWrites).where(eq(auditWrites.writer, writer)).for("share");
  return row?.batch ?? null;
}

export interface AuditFilter {
  ownerId: number;
  connectionId?: number | undefined;
  source?: AuditRecordRow["source"] | undefined;
  outcome?: AuditRecordRow["outcome"] | undefined;
  apiKeyId?: number | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  /** Only records after this one in page order (the previous page's last record's id). */
  before?: number | undefined;
  limit: number;
}

/** One page of the owner's records, newest first by time, then by id (awaitable; `toSQL()`
 * shows the statement). A cursor whose record was pruned meanwhile ends the listing: what
 * followed it is older still. */
export function listAuditRecords(db: Db, filter: AuditFilter) {
  const conditions: SQL[] = [eq(auditRecords.ownerId, filter.ownerId)];
  if (filter.connectionId !== undefined) conditions.push(eq(auditRecords.connectionId, filter.connectionId));
  if (filter.source !== undefined) conditions.push(eq(auditRecords.source, filter.source));
  if (filter.outcome !== undefined) conditions.push(eq(auditRecords.outcome, filter.outcome));
  // Spelled out so that the partial outcome index, which holds no `ok` record, serves the rest.
  if (filter.outcome !== undefined && filter.outcome !== "ok") conditions.push(sql`${auditRecords.outcome} <> 'ok'`);
  // (Equality implies IS NOT NULL to the planner, so the partial index serves it as written.)
  if (filter.apiKeyId !== undefined) conditions.push(eq(auditRecords.apiKeyId, filter.apiKeyId));
  if (filter.from !== undefined) conditions.push(gte(auditRecords.at, filter.from));
  if (filter.to !== undefined) conditions.push(lte(auditRecords.at, filter.to));
  if (filter.before !== undefined) {
    conditions.push(sql`(${auditRecords.at}, ${auditRecords.id}) < (SELECT at, id FROM audit_records WHERE owner_id = ${filter.ownerId} AND id = ${filter.before})`);
  }
  return db
    .select()
    .from(auditRecords)
    .where(and(...conditions))
    .orderBy(desc(auditRecords.at), desc(auditRecords.id))
    .limit(filter.limit);
}

/** Deletes up to `limit` of the records older than `before`, each owner's oldest first;
 * returns how many went. The caller repeats it while whole batches go
 * (src/monitoring/scheduler.ts), so a backlog never holds long locks nor runs past the store's
 * statement timeout. */
export async function pruneAuditRecords(db: Db, before: Date, limit: number): Promise<number> {
  // Owner by owner on (owner_id, at, id): the owners are found by skipping through the index
  // (one probe each), and a record is never updated, so its row address holds for the statement.
  const result = await db.execute(sql`
    WITH RECURSIVE owners AS (
      (SELECT owner_id AS id FROM audit_records ORDER BY owner_id LIMIT 1)
      UNION ALL
      SELECT (SELECT owner_id FROM audit_records WHERE owner_id > owners.id ORDER BY owner_id LIMIT 1) FROM owners WHERE owners.id IS NOT NULL
    ),
    gone AS (
      DELETE FROM audit_records
      WHERE ctid = ANY (ARRAY(
        SELECT old.ctid FROM owners
        CROSS JOIN LATERAL (SELECT ctid FROM audit_records WHERE owner_id = owners.id AND at < ${before.toISOString()} ORDER BY at LIMIT ${limit}) old
        LIMIT ${limit}))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
  // The marks of writers that wrote nothing since (their process ended): one row each.
  await db.delete(auditWrites).where(lt(auditWrites.at, before));
  return rowsOf<{ n: number }>(result)[0]?.n ?? 0;
}
