// What the guarded connector tells the audit trail about each statement it is asked to run.
// The connector knows nothing of the metadata store: src/audit/trail.ts keeps the records.

/** Who asked: a direct query, the agent's tools, a monitoring check, or a schema introspection
 * (one record per introspection, not per catalog statement). */
export const STATEMENT_SOURCES = ["query", "ask", "monitor", "introspection"] as const;
export type StatementSource = (typeof STATEMENT_SOURCES)[number];

export interface StatementRecord {
  connectionId: number;
  ownerId: number;
  source: StatementSource;
  /** The API key that sent it; null for a login's, and for Pulse's own (monitoring, introspection). */
  apiKeyId: number | null;
  sql: string;
  /** Epoch ms when it was asked for, before the guard and the budget. */
  startedAt: number;
  durationMs: number;
  /** Rows returned (tables found, for an introspection); null when it did not succeed. */
  rowCount: number | null;
  /** Why it was refused or failed; undefined when it succeeded. */
  error?: unknown;
}

export interface StatementRecorder {
  /** Throws when the record of one more statement could not be kept: nothing runs unrecorded. */
  admit(): void;
  record(statement: StatementRecord): void;
}
