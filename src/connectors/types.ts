// Shared vocabulary of the connector layer: the only path by which SQL reaches a customer
// database. Nothing here knows about HTTP, users or the metadata store.

import { DomainError } from "../errors.js";
import type { TargetGate } from "./target-gate.js";

export type Dialect = "postgresql" | "mysql" | "sqlite";

export const DIALECTS: readonly Dialect[] = ["postgresql", "mysql", "sqlite"];

/** Everything a driver needs to reach one customer database; the password is in clear
 * only in memory, for as long as the pool lives. */
export interface ConnectionTarget {
  dialect: Dialect;
  /** Server dialects. */
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  ssl: boolean;
  /** SQLite: absolute path of the file, already resolved inside SQLITE_ROOT. */
  filePath?: string;
  /** Give up connecting after this long. */
  connectTimeoutMs: number;
  /** Server dialects: every socket goes through it (resolved and checked at each connect).
   * targetFor sets it on every customer connection; driver tests without one connect directly. */
  gate?: TargetGate;
}

export interface QueryLimits {
  /** Rows returned at most; one more is fetched to know whether the result was truncated. */
  maxRows: number;
  /** Approximate JSON size of the returned rows, in bytes, at most. */
  maxBytes: number;
  /** Enforced by the database itself (statement_timeout, max_statement_time, progress handler). */
  timeoutMs: number;
  /** Aborted when its caller goes away, or its credential is revoked: the statement is stopped
   * at the database, and the query fails with cancelledError(signal). */
  signal?: AbortSignal | undefined;
}

/** What a query stopped by `signal` fails with: the signal's reason when that is one of Pulse's
 * own errors (a revoked credential's 401, src/auth/revocation-watch.ts), else query_cancelled
 * (its caller went away). */
export const cancelledError = (signal: AbortSignal | undefined) =>
  signal?.reason instanceof DomainError ? signal.reason : new DomainError("query_cancelled", "The query was stopped: whoever asked for it went away");

/** Throws cancelledError(signal) once `signal` has aborted: work that sends several statements
 * asks before each. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelledError(signal);
}

export interface ColumnInfo {
  name: string;
  /** The database's own type name, lower case (e.g. "integer", "varchar", "numeric"). */
  type: string;
}

/** A JSON-safe cell: big integers and decimals as strings, dates as ISO 8601, binary as
 * `{ "$binary": "<base64>" }`. */
export type Cell = string | number | boolean | null | { $binary: string };

export interface QueryResult {
  columns: ColumnInfo[];
  rows: Cell[][];
  row_count: number;
  truncated: boolean;
  execution_time_ms: number;
}

/** What `POST /databases/{id}/test` reports. */
export interface ProbeInfo {
  latency_ms: number;
  server_version: string;
  /** The session we got can not write (read-only role, default_transaction_read_only, read-only file). */
  read_only: boolean;
  /** The server is a replica / standby. */
  replica: boolean;
  /** Seconds behind the primary, when the server is a replica and knows it. */
  replication_lag_seconds: number | null;
}

export interface ColumnSchema {
  name: string;
  type: string;
  nullable: boolean;
  comment: string | null;
}

export interface ForeignKey {
  columns: string[];
  references: { schema: string | null; table: string; columns: string[] };
}

export interface TableSchema {
  /** PostgreSQL schema / MySQL database; null for SQLite's main database. */
  schema: string | null;
  name: string;
  kind: "table" | "view";
  comment: string | null;
  estimated_rows: number | null;
  columns: ColumnSchema[];
  primary_key: string[];
  foreign_keys: ForeignKey[];
}

export interface SchemaSnapshot {
  dialect: Dialect;
  tables: TableSchema[];
  introspected_at: string;
  /** PostgreSQL: the schema unqualified names resolve to (the first of the role's search_path
   * that exists; null when none does). */
  default_schema?: string | null;
}

/** A live pool to one customer database. Implementations execute read-only at the database
 * (layer 2); they never decide what is allowed to run (that is the guard's job, layer 1). */
export interface DialectDriver {
  readonly dialect: Dialect;
  /** Run one statement already accepted by the guard, read-only, within the limits. */
  query(sql: string, limits: QueryLimits): Promise<QueryResult>;
  introspect(): Promise<SchemaSnapshot>;
  probe(): Promise<ProbeInfo>;
  /** Open server connections held right now (for tests and metrics). */
  openConnections(): number;
  close(): Promise<void>;
}
