// Reading the audit trail: a user's own records, newest first, a page at a time.

import type { Deps } from "../deps.js";
import { listAuditRecords, type AuditFilter } from "../store/audit.js";
import type { AuditRecordRow } from "../store/schema.js";

export interface PublicAuditRecord {
  id: number;
  at: string;
  user_id: number;
  connection_id: number;
  source: AuditRecordRow["source"];
  api_key_id: number | null;
  sql: string;
  sql_length: number;
  sql_truncated: boolean;
  sql_sha256: string | null;
  row_count: number | null;
  duration_ms: number;
  outcome: AuditRecordRow["outcome"];
  error_code: string | null;
  rule: string | null;
}

const publicRecord = (row: AuditRecordRow): PublicAuditRecord => ({
  id: row.id,
  at: row.at.toISOString(),
  user_id: row.ownerId,
  connection_id: row.connectionId,
  source: row.source,
  api_key_id: row.apiKeyId,
  sql: row.sql,
  sql_length: row.sqlLength,
  sql_truncated: row.sqlLength > row.sql.length,
  sql_sha256: row.sqlSha256,
  row_count: row.rowCount,
  duration_ms: row.durationMs,
  outcome: row.outcome,
  error_code: row.errorCode,
  rule: row.rule,
});

/** One page of `userId`'s records; `next_cursor` fetches the page after it (null at the end). */
export async function listAuditOf(deps: Deps, userId: number, filter: Omit<AuditFilter, "ownerId">) {
  const rows = await listAuditRecords(deps.store.db, { ...filter, ownerId: userId });
  const last = rows.at(-1);
  return { records: rows.map(publicRecord), next_cursor: rows.length === filter.limit && last ? last.id : null };
}
