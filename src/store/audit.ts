// Repository of the audit trail: batches appended by COPY in groups (src/store/schema.ts,
// auditGroups), the owner's filtered pages (newest first, keyset on time and id), and retention
// in bounded batches.

import { eq, lt, sql, type SQL } from "drizzle-orm";

import type { Db, Store } from "./client.js";
import { rowsOf } from "./rows.js";
import { auditWrites, MAX_GROUP_RECORDS, type AuditRecordRow } from "./schema.js";

export type NewAuditRecord = Omit<AuditRecordRow, "id">;

const COLUMNS = [
  "owner_id",
  "connection_id",
  "source",
  "api_key_id",
  "outcome",
  "first_at",
  "last_at",
  "at",
  "sql",
  "sql_length",
  "sql_sha256",
  "row_count",
  "duration_ms",
  "error_code",
  "rule",
] as const;

/** COPY's text format's NULL. */
const NULL = "\\N";
const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const NEEDS_ESCAPE = /[\\\n\r\t]/;
/** A value in COPY's text format: backslash, newline, carriage return and tab escaped (a
 * statement's text has all four), so `\N` written by a user stays text and never reads as NULL. */
export const copyText = (value: string | null | undefined) =>
  value == null ? NULL : NEEDS_ESCAPE.test(value) ? value.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!) : value;

/** A text element of an array literal: always quoted (so that the text `NULL` stays text), `"`
 * and backslash escaped; the literal is then escaped whole for COPY (arrayColumn). */
const quoted = (value: string) => `"${value.replace(/["\\]/g, "\\$&")}"`;

/** A group's array column in COPY text, an element per record (`spell`ed, or NULL). With
 * `nullable`, a column whose elements are all null is NULL itself: an array of nulls costs a
 * header, which a group of one record pays in full (the view reads NULL for each record:
 * multi-argument unnest pads a NULL array). */
function arrayColumn<T>(values: (T | null)[], spell: (value: T) => string, { nullable = false } = {}): string {
  if (nullable && values.every((v) => v === null)) return NULL;
  return copyText(`{${values.map((v) => (v === null ? "NULL" : spell(v))).join(",")}}`);
}

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

/** The records in groups of one owner, connection, source, API key, outcome and second each (at most
 * MAX_GROUP_RECORDS), in the order given: a group's records are less than a second apart (see
 * auditGroups.firstAt). */
function groupsOf(records: NewAuditRecord[]): NewAuditRecord[][] {
  const open = new Map<string, NewAuditRecord[]>();
  const groups: NewAuditRecord[][] = [];
  for (const r of records) {
    const key = `${r.ownerId}:${r.connectionId}:${r.source}:${r.apiKeyId}:${r.outcome}:${Math.floor(r.at.getTime() / 1000)}`;
    let group = open.get(key);
    if (!group || group.length >= MAX_GROUP_RECORDS) {
      group = [];
      open.set(key, group);
      groups.push(group);
    }
    group.push(r);
  }
  return groups;
}

/** Appends records by COPY, a line per group (groupsOf): see auditGroups for what that saves
 * the store. In the same transaction, `mark` becomes its writer's last batch
 * (lastAuditBatch). */
export async function appendAuditRecords(store: Pick<Store, "copyRows">, records: NewAuditRecord[], mark?: { writer: string; batch: string }): Promise<void> {
  if (records.length === 0) return;
  const iso = isoTimes();
  let rows = "";
  for (const group of groupsOf(records)) {
    const { ownerId, connectionId, source, apiKeyId, outcome } = group[0]!;
    const times = group.map((r) => r.at.getTime());
    const arrays = [
      arrayColumn(times, iso),
      arrayColumn(group.map((r) => r.sql), quoted),
      arrayColumn(group.map((r) => r.sqlLength), String),
      arrayColumn(group.map((r) => r.sqlSha256), quoted, { nullable: true }),
      arrayColumn(group.map((r) => r.rowCount), String),
      arrayColumn(group.map((r) => r.durationMs), String),
      arrayColumn(group.map((r) => r.errorCode), quoted, { nullable: true }),
      arrayColumn(group.map((r) => r.rule), quoted, { nullable: true }),
    ];
    rows += `${ownerId}\t${connectionId}\t${copyText(source)}\t${apiKeyId ?? NULL}\t${copyText(outcome)}\t${iso(Math.min(...times))}\t${iso(Math.max(...times))}\t${arrays.join("\t")}\n`;
  }
  await store.copyRows(
    "audit_groups",
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

/** Groups read by a page's first statement, and how many times more each next one reads: a
 * busy owner's latest page takes one read of a few groups (of up to 500 records each), a
 * filter that few records pass a few reads, each larger. */
export const FIRST_READ_GROUPS = 8;
const READ_GROWTH = 4;
const MAX_READ_GROUPS = 1024;

/** A row of a read: the read's last group in page order (how many groups it read, where the next
 * read starts) and one of the records it found, its fields named as AuditRecordRow's (null when
 * none passed the filter). */
type ReadRow = Omit<AuditRecordRow, "id" | "at"> & {
  read_groups: number | string;
  last_group_id: string | number | bigint;
  /** Epoch milliseconds (drivers differ in how they read a timestamptz; a number reads alike). */
  last_group_ms: number;
  /** As the store spells it, to the microsecond: where the next read starts. */
  last_group_at: string;
  id: string | number | bigint | null;
  at_ms: number | null;
};

/** A record's id (as the audit_records view makes it): its group's id x MAX_GROUP_RECORDS plus
 * its place in the group, `g` and `r` in auditGroupsRead. */
const RECORD_ID = sql`g.id * ${MAX_GROUP_RECORDS} + r.n - 1`;

/** A page's first record is after this one: its time (as the store spells it, to the
 * microsecond) and id. */
interface Cursor {
  at: string;
  id: number;
}

/** Reads up to `groups` of the owner's groups that may hold records of the page, newest
 * first by `last_at` (then id), after the group `after` in that order, and answers the first
 * `limit` of their records that pass the filter, in page order (the others cannot be on the
 * page). Exported for the test that reads its plan. */
export function auditGroupsRead(filter: AuditFilter, read: { groups: number; cursor?: Cursor | undefined; after?: { lastAt: string; id: number } | undefined }): SQL {
  const { cursor, after } = read;
  const groups: SQL[] = [sql`owner_id = ${filter.ownerId}`];
  const records: SQL[] = [];
  if (filter.connectionId !== undefined) groups.push(sql`connection_id = ${filter.connectionId}`);
  if (filter.source !== undefined) groups.push(sql`source = ${filter.source}`);
  if (filter.outcome !== undefined) groups.push(sql`outcome = ${filter.outcome}`);
  // Spelled out so that the partial outcome index, which holds no `ok` group, serves the rest.
  if (filter.outcome !== undefined && filter.outcome !== "ok") groups.push(sql`outcome <> 'ok'`);
  // (Equality implies IS NOT NULL to the planner, so the partial index serves it as written.)
  if (filter.apiKeyId !== undefined) groups.push(sql`api_key_id = ${filter.apiKeyId}`);
  if (filter.from !== undefined) {
    const from = filter.from.toISOString();
    groups.push(sql`last_at >= ${from}`);
    records.push(sql`r.at >= ${from}`);
  }
  // A group's records are less than a second apart: one with a record at or before `to` ends
  // less than a second after it, so the window is a range of the index.
  if (filter.to !== undefined) {
    const to = filter.to.toISOString();
    groups.push(sql`first_at <= ${to}`, sql`last_at < ${to}::timestamptz + interval '1 second'`);
    records.push(sql`r.at <= ${to}`);
  }
  if (cursor) {
    groups.push(sql`first_at <= ${cursor.at}::timestamptz`, sql`last_at < ${cursor.at}::timestamptz + interval '1 second'`);
    records.push(sql`(r.at, ${RECORD_ID}) < (${cursor.at}::timestamptz, ${cursor.id})`);
  }
  // (`last_at` alone as well: the row comparison does not bound the index range.)
  if (after) groups.push(sql`last_at <= ${after.lastAt}::timestamptz`, sql`(last_at, id) < (${after.lastAt}::timestamptz, ${after.id})`);
  return sql`
    WITH g AS MATERIALIZED (
      SELECT * FROM audit_groups WHERE ${sql.join(groups, sql` AND `)}
      ORDER BY last_at DESC, id DESC
      LIMIT ${read.groups}
    ),
    last AS (SELECT id, last_at FROM g ORDER BY last_at, id LIMIT 1)
    SELECT (SELECT count(*) FROM g) AS read_groups, last.id AS last_group_id,
      (extract(epoch FROM last.last_at) * 1000)::float8 AS last_group_ms, last.last_at::text AS last_group_at, found.*
    FROM last
    LEFT JOIN LATERAL (
      SELECT ${RECORD_ID} AS id, (extract(epoch FROM r.at) * 1000)::float8 AS at_ms, g.owner_id AS "ownerId",
        g.connection_id AS "connectionId", g.source, g.api_key_id AS "apiKeyId", r.sql, r.sql_length AS "sqlLength", r.sql_sha256 AS "sqlSha256",
        r.row_count AS "rowCount", r.duration_ms AS "durationMs", g.outcome, r.error_code AS "errorCode", r.rule
      FROM g
      CROSS JOIN LATERAL unnest(g.at, g.sql, g.sql_length, g.sql_sha256, g.row_count, g.duration_ms, g.error_code, g.rule)
        WITH ORDINALITY AS r(at, sql, sql_length, sql_sha256, row_count, duration_ms, error_code, rule, n)
      ${records.length > 0 ? sql`WHERE ${sql.join(records, sql` AND `)}` : sql``}
      ORDER BY r.at DESC, g.id DESC, r.n DESC
      LIMIT ${filter.limit}
    ) found ON true`;
}

/** A record found and its time as the store has it, in epoch milliseconds with their fraction: a
 * time with microseconds (a record Pulse did not write) reads as a Date of the whole
 * millisecond, and the page must be in the store's order, which the cursor continues. */
type Found = { record: AuditRecordRow; ms: number };
const newestFirst = (a: Found, b: Found) => b.ms - a.ms || b.record.id - a.record.id;

/** One page of the owner's records, newest first by time, then by id. The owner's groups are
 * read newest first by `last_at` until the page is whole and no group left can hold a record
 * that belongs in it (each has a `last_at`, so every record, at or before the last group's).
 * A cursor whose record was pruned meanwhile ends the listing: what followed it is older
 * still. */
export async function listAuditRecords(db: Db, filter: AuditFilter): Promise<AuditRecordRow[]> {
  let cursor: Cursor | undefined;
  if (filter.before !== undefined) {
    const [found] = rowsOf<{ at: string }>(
      await db.execute(sql`
        SELECT (at[${(filter.before % MAX_GROUP_RECORDS) + 1}])::text AS at FROM audit_groups
        WHERE owner_id = ${filter.ownerId} AND id = ${Math.floor(filter.before / MAX_GROUP_RECORDS)}`),
    );
    if (!found?.at) return [];
    cursor = { at: found.at, id: filter.before };
  }
  let page: Found[] = [];
  let after: { lastAt: string; id: number } | undefined;
  for (let groups = FIRST_READ_GROUPS; ; groups = Math.min(groups * READ_GROWTH, MAX_READ_GROUPS)) {
    const rows = rowsOf<ReadRow>(await db.execute(auditGroupsRead(filter, { groups, cursor, after })));
    const last = rows[0];
    if (!last) break;
    // (The read's own columns named apart, so that what is left is the record's.)
    for (const { read_groups: _n, last_group_id: _id, last_group_ms: _ms, last_group_at: _at, id, at_ms, ...fields } of rows) {
      if (id !== null && at_ms !== null) page.push({ record: { ...fields, id: Number(id), at: new Date(at_ms) }, ms: at_ms });
    }
    page = page.sort(newestFirst).slice(0, filter.limit);
    // Every group read from now on has its records at or before the last one's last_at.
    const lastAt = last.last_group_ms;
    if (page.filter((r) => r.ms > lastAt).length >= filter.limit) break;
    if (Number(last.read_groups) < groups) break;
    after = { lastAt: last.last_group_at, id: Number(last.last_group_id) };
  }
  return page.map((r) => r.record);
}

/** Deletes up to `limit` of the groups whose records are all older than `before`, each owner's
 * oldest first; returns how many went. The caller repeats it while whole batches go
 * (src/monitoring/scheduler.ts), so a backlog never holds long locks nor runs past the store's
 * statement timeout. */
export async function pruneAuditRecords(db: Db, before: Date, limit: number): Promise<number> {
  // Owner by owner on (owner_id, last_at): the owners are found by skipping through the index
  // (one probe each), and a group is never updated, so its row address holds for the statement.
  const result = await db.execute(sql`
    WITH RECURSIVE owners AS (
      (SELECT owner_id AS id FROM audit_groups ORDER BY owner_id LIMIT 1)
      UNION ALL
      SELECT (SELECT owner_id FROM audit_groups WHERE owner_id > owners.id ORDER BY owner_id LIMIT 1) FROM owners WHERE owners.id IS NOT NULL
    ),
    gone AS (
      DELETE FROM audit_groups
      WHERE ctid = ANY (ARRAY(
        SELECT old.ctid FROM owners
        CROSS JOIN LATERAL (SELECT ctid FROM audit_groups WHERE owner_id = owners.id AND last_at < ${before.toISOString()} ORDER BY last_at LIMIT ${limit}) old
        LIMIT ${limit}))
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM gone`);
  // The marks of writers that wrote nothing since (their process ended): one row each.
  await db.delete(auditWrites).where(lt(auditWrites.at, before));
  return rowsOf<{ n: number }>(result)[0]?.n ?? 0;
}
