// The guarded connector: the only object through which SQL reaches a customer database.
// Layer 1 (the guard) decides from the parse tree; layer 2 (the driver) runs it read-only
// at the database, within the row, byte, time and budget limits.

import { SqlRefusedError } from "../errors.js";
import type { StatementCounts } from "../metrics.js";
import type { StatementBudget } from "./budget.js";
import { LegacyStringsError, type GuardVerdict } from "./guard/index.js";
import { inlineStatementGuard, type StatementGuard } from "./guard/statement-guard.js";
import type { StatementRecorder, StatementSource } from "./statement-recorder.js";
import type { DialectDriver, QueryLimits, QueryResult, SchemaSnapshot } from "./types.js";

export interface QueryOptions {
  maxRows?: number | undefined;
  timeoutMs?: number | undefined;
  /** Monitoring passes its own, stricter budget; interactive callers share the default one
   * (their user's, then their target database's). */
  budget?: StatementBudget | undefined;
  /** Who asks, for the audit trail (default: a direct query). */
  source?: StatementSource | undefined;
}

/** What an introspection is recorded as: it runs the dialect's catalog statements, not SQL
 * of the user's. */
export const INTROSPECTION_SQL = "-- schema introspection (catalog statements)";

export class GuardedConnector {
  private schemaCache: Promise<SchemaSnapshot> | undefined;
  lastUsedAt = Date.now();

  constructor(
    readonly connectionId: number,
    /** The user who owns the connection; checked on every cache hit. */
    readonly ownerId: number,
    /** The database it reaches (target-key.ts): what budgets are kept per. */
    readonly targetKey: string,
    readonly driver: DialectDriver,
    private readonly limits: QueryLimits,
    private readonly budget: StatementBudget,
    /** Shared by every connector of the process (the connector cache owns it). */
    private readonly guard: StatementGuard = inlineStatementGuard,
    /** The audit trail; none when AUDIT_TRAIL=off. */
    private readonly recorder?: StatementRecorder,
    /** Its dialect's statement counters (GET /metrics). */
    private readonly counts?: StatementCounts,
  ) {}

  get dialect() {
    return this.driver.dialect;
  }

  /** Refuses anything but one read statement, then runs it read-only within the limits. */
  query(sql: string, options: QueryOptions = {}): Promise<QueryResult> {
    // Only SQLite may retry; the others skip the wrapper (an async frame on every query).
    const run = () => (this.driver.dialect === "sqlite" ? this.queryRetryingLegacyStrings(sql, options) : this.queryOnce(sql, options));
    return this.recorded(options.source ?? "query", sql, run, (result) => result.row_count);
  }

  /** Runs `run`, recording its outcome in the audit trail, which must first admit it. */
  private recorded<T>(source: StatementSource, sql: string, run: () => Promise<T>, rowsOf: (result: T) => number): Promise<T> {
    const recorder = this.recorder;
    if (!recorder) return run();
    try {
      recorder.admit();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const { connectionId, ownerId } = this;
    const startedAt = Date.now();
    const started = performance.now();
    // Whole literals, not a spread of shared fields: spreading cost microseconds per statement.
    return run().then(
      (result) => {
        recorder.record({ connectionId, ownerId, source, sql, startedAt, durationMs: performance.now() - started, rowCount: rowsOf(result) });
        return result;
      },
      (err: unknown) => {
        recorder.record({ connectionId, ownerId, source, sql, startedAt, durationMs: performance.now() - started, rowCount: null, error: err });
        throw err;
      },
    );
  }

  /** SQLite compiles a statement with legacy double-quoted strings read as strings (see
   * guard/sqlite-dqs.ts) only as a new text, which runs once the guard has checked it too. */
  private async queryRetryingLegacyStrings(sql: string, options: QueryOptions): Promise<QueryResult> {
    try {
      return await this.queryOnce(sql, options);
    } catch (err) {
      if (!(err instanceof LegacyStringsError)) throw err;
      return this.queryOnce(err.sql, options);
    }
  }

  private async queryOnce(sql: string, options: QueryOptions): Promise<QueryResult> {
    const budget = options.budget ?? this.budget;
    // Counted in the async function the statement already runs in: no promise more per statement.
    let release: (() => void) | undefined;
    try {
      // Charged before the guard: a refused statement cost its parse, so a flood of refused or
      // unparseable statements runs out of budget like a flood of reads.
      budget.charge();
      const pending = this.guard.classify(this.driver.dialect, sql);
      const verdict = pending instanceof Promise ? await pending : pending;
      if (!verdict.ok) throw new SqlRefusedError(verdict.rule, verdict.reason);
      const limits: QueryLimits = {
        maxRows: Math.min(options.maxRows ?? this.limits.maxRows, this.limits.maxRows),
        maxBytes: this.limits.maxBytes,
        timeoutMs: Math.min(options.timeoutMs ?? this.limits.timeoutMs, this.limits.timeoutMs),
      };
      release = await budget.enter();
      this.lastUsedAt = Date.now();
      const result = await this.driver.query(sql, limits);
      this.counts?.ok();
      return result;
    } catch (err) {
      // SQLite's legacy strings are retried as a new text, which is counted then.
      if (!(err instanceof LegacyStringsError)) this.counts?.failed(err);
      throw err;
    } finally {
      if (release) {
        release();
        this.lastUsedAt = Date.now();
      }
    }
  }

  /** The guard's verdict on `sql`, without running it (a monitoring check being saved). */
  async classify(sql: string): Promise<GuardVerdict> {
    return this.guard.classify(this.driver.dialect, sql);
  }

  /** The database's schema, introspected once and kept until refreshed. */
  schema(): Promise<SchemaSnapshot> {
    this.lastUsedAt = Date.now();
    this.schemaCache ??= this.recorded("introspection", INTROSPECTION_SQL, () => this.driver.introspect(), (s) => s.tables.length).catch((err: unknown) => {
      this.schemaCache = undefined;
      throw err;
    });
    return this.schemaCache;
  }

  refreshSchema(): Promise<SchemaSnapshot> {
    this.schemaCache = undefined;
    return this.schema();
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}
