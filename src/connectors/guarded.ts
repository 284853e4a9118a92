// The guarded connector: the only object through which SQL reaches a customer database.
// Layer 1 (the guard) decides from the parse tree; layer 2 (the driver) runs it read-only
// at the database, within the row, byte, time and budget limits.

import { DomainError, SqlRefusedError } from "../errors.js";
import type { StatementCounts } from "../metrics.js";
import { OneAtATime } from "../one-at-a-time.js";
import type { StatementBudget } from "./budget.js";
import type { ConnectFailures } from "./connect-failures.js";
import { LegacyStringsError, type GuardVerdict } from "./guard/index.js";
import { inlineStatementGuard, type StatementGuard } from "./guard/statement-guard.js";
import { schemaJsonInSlices } from "./schema-json.js";
import type { SchemaHolder, SchemaMemory } from "./schema-memory.js";
import type { StatementRecorder, StatementSource } from "./statement-recorder.js";
import { throwIfCancelled, type DialectDriver, type ProbeInfo, type QueryLimits, type QueryResult, type SchemaSnapshot } from "./types.js";

export interface QueryOptions {
  maxRows?: number | undefined;
  timeoutMs?: number | undefined;
  /** Monitoring passes its own, stricter budget; interactive callers share the default one
   * (their user's, then their target database's). */
  budget?: StatementBudget | undefined;
  /** Who asks, for the audit trail (default: a direct query)... */
  source?: StatementSource | undefined;
  /** ...and with which API key (default: none, a login's or Pulse's own). */
  apiKeyId?: number | null | undefined;
  /** Aborted when the caller goes away (a client hanging up, an /ask past its time) or its
   * credential is revoked: the statement is stopped at the database rather than run on to its
   * timeout, holding one of the database's few slots (QueryLimits.signal). */
  signal?: AbortSignal | undefined;
}

/** For whom work of several statements runs (a manual run, a save's dry runs): the API key its
 * statements are recorded with (null: a login, or Pulse's own schedule) and the signal that
 * stops it. */
export type Requester = Pick<QueryOptions, "signal"> & { apiKeyId: number | null };

/** What an introspection is recorded as: it runs the dialect's catalog statements, not SQL
 * of the user's. */
export const INTROSPECTION_SQL = "-- schema introspection (catalog statements)";

/** Finds a connection's connector anew: what runs the statements asked of one let go of. */
export type Successor = () => Promise<GuardedConnector>;

export class GuardedConnector implements SchemaHolder {
  private schemaCache: Promise<SchemaSnapshot> | undefined;
  /** When (performance.now()) the cached schema is too old to be used: its catalog read's end
   * plus the age it may reach. Never while that read runs, or with nothing cached. */
  private schemaStaleAt = Number.POSITIVE_INFINITY;
  /** The snapshot kept now, the bytes it is counted as, and its JSON once asked for. */
  private kept: { snapshot: SchemaSnapshot; bytes: number; json?: Promise<Uint8Array<ArrayBuffer>> } | undefined;
  /** Catalog reads, one at a time (see refreshSchema). */
  private readonly reads = new OneAtATime<SchemaSnapshot>();
  lastUsedAt = Date.now();
  /** Statements and catalog reads under way (from the guard on), and what close() waits on
   * once they are all done. */
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private closing = false;
  /** Where what is asked of it runs once it is closing (see close). */
  private successor: Successor | undefined;

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
    /** What every connector's cached schema may hold together (none: unbounded). */
    private readonly schemas?: SchemaMemory,
    /** Connections that could not be made, counted and refused past CONNECTION_TESTS_PER_MINUTE
     * (none: neither). Each pool connection resolves the host anew: any call may connect. */
    private readonly failures?: ConnectFailures,
    /** How long a schema read is used (SCHEMA_MAX_AGE_SECONDS): a table added since, on a
     * connection in steady use, or a refresh on an instance whose news this one missed, is seen
     * at most this late. */
    private readonly schemaMaxAgeMs = Number.POSITIVE_INFINITY,
  ) {}

  get dialect() {
    return this.driver.dialect;
  }

  /** The longest statement it runs (QUERY_MAX_SQL_CHARS): longer ones are refused unread. */
  get maxSqlChars() {
    return this.guard.maxChars;
  }

  /** Refuses anything but one read statement, then runs it read-only within the limits. */
  query(sql: string, options: QueryOptions = {}): Promise<QueryResult> {
    // Only SQLite may retry; the others skip the wrapper (an async frame on every query).
    return this.driver.dialect === "sqlite" ? this.queryRetryingLegacyStrings(sql, options) : this.queryOnce(sql, options);
  }

  /** SQLite compiles a statement with legacy double-quoted strings read as strings (see
   * guard/sqlite-dqs.ts) only as a new text, which runs once the guard has checked it too. It
   * is recorded once, as the user asked it, from the first attempt. */
  private async queryRetryingLegacyStrings(sql: string, options: QueryOptions): Promise<QueryResult> {
    const started = performance.now();
    try {
      return await this.queryOnce(sql, options);
    } catch (err) {
      if (!(err instanceof LegacyStringsError)) throw err;
      return this.queryOnce(err.sql, options, sql, started);
    }
  }

  /** `asked` and `started` are what the audit trail records: the user's text and when it was
   * asked for (they differ from `sql` and now only for SQLite's rewritten retry). */
  private async queryOnce(sql: string, options: QueryOptions, asked = sql, started = performance.now()): Promise<QueryResult> {
    if (this.closing) return (await this.succeeded()).queryOnce(sql, options, asked, started);
    // Admitted before anything runs: no statement runs that the trail could not keep.
    this.recorder?.admit();
    // Counted from here, before the first wait, so that close() cannot end the driver while
    // the statement is in the guard or waiting for a slot.
    this.inFlight++;
    const budget = options.budget ?? this.budget;
    // Counted and recorded in the async function the statement already runs in: no promise
    // or closure more per statement.
    let release: (() => void) | undefined;
    try {
      // Charged before the guard: a refused statement cost its parse, so a flood of refused or
      // unparseable statements runs out of budget like a flood of reads.
      budget.charge();
      const pending = this.guard.classify(this.driver.dialect, sql, this.ownerId);
      const verdict = pending instanceof Promise ? await pending : pending;
      if (!verdict.ok) throw new SqlRefusedError(verdict.rule, verdict.reason);
      const limits: QueryLimits = {
        maxRows: Math.min(options.maxRows ?? this.limits.maxRows, this.limits.maxRows),
        maxBytes: this.limits.maxBytes,
        timeoutMs: Math.min(options.timeoutMs ?? this.limits.timeoutMs, this.limits.timeoutMs),
        signal: options.signal,
      };
      release = await budget.enter();
      // Gone while it waited for a slot: `finally` gives the slot back.
      throwIfCancelled(options.signal);
      // Let go of while it waited (below, once `finally` gave the slot back).
      if (!this.closing) {
        this.lastUsedAt = Date.now();
        this.failures?.refuse(this.connectionId);
        const result = await this.driver.query(sql, limits);
        this.failures?.reached(this.connectionId, started);
        this.counts?.ok();
        this.record(options.source ?? "query", options.apiKeyId ?? null, asked, started, result.row_count);
        return result;
      }
    } catch (caught) {
      const err = await this.failed(caught);
      // SQLite's legacy strings are retried as a new text, which is counted and recorded then.
      if (!(err instanceof LegacyStringsError)) {
        this.counts?.failed(err);
        this.record(options.source ?? "query", options.apiKeyId ?? null, asked, started, null, err);
      }
      throw err;
    } finally {
      if (release) {
        release();
        this.lastUsedAt = Date.now();
      }
      this.leftDriver();
    }
    // Let go of while it waited for its slot or the guard: its connection was moved to another
    // database, or deleted, after it was asked for (a PUT or DELETE has answered since, here or
    // on another instance). It runs where the connection reaches now, or is refused as the
    // connection is gone; never on the old target.
    return (await this.succeeded()).queryOnce(sql, options, asked, started);
  }

  /** Hands the audit trail (if on) the outcome of a statement asked for at `started`. */
  private record(source: StatementSource, apiKeyId: number | null, sql: string, started: number, rowCount: number | null, error?: unknown) {
    if (!this.recorder) return;
    const durationMs = performance.now() - started;
    this.recorder.record({ connectionId: this.connectionId, ownerId: this.ownerId, source, apiKeyId, sql, startedAt: Date.now() - durationMs, durationMs, rowCount, error });
  }

  /** The guard's verdict on `sql`, without running it (a monitoring check being saved). */
  async classify(sql: string): Promise<GuardVerdict> {
    return this.guard.classify(this.driver.dialect, sql, this.ownerId);
  }

  /** The database's schema, introspected once and kept until refreshed, too old (schemaMaxAgeMs)
   * or forgotten for room (schema-memory.ts). */
  schema(): Promise<SchemaSnapshot> {
    return this.cachedSchema() ?? this.reads.run(() => this.startIntrospection(this.budget));
  }

  /** The cached schema, if there is one now and it is not too old, without reading the catalog.
   * A monotonic clock: a wall clock set back would keep an old schema for as long. */
  cachedSchema(): Promise<SchemaSnapshot> | undefined {
    this.lastUsedAt = Date.now();
    if (performance.now() >= this.schemaStaleAt) return undefined;
    if (this.schemaCache) this.schemas?.touch(this);
    return this.schemaCache;
  }

  /** Drops the cached schema for room (schema-memory.ts): the next use reads the catalog again. */
  forgetSchema(): void {
    this.schemaCache = undefined;
    this.schemaStaleAt = Number.POSITIVE_INFINITY;
    this.kept = undefined;
  }

  /** Drops the cached schema as older than one read since elsewhere (another instance's refresh
   * or connect_db): the next use reads the catalog again. */
  discardSchema(): void {
    this.schemas?.release(this);
    this.forgetSchema();
  }

  /** `snapshot` (as schema() or refreshSchema() answered it) as JSON, in UTF-8: written once
   * while it is the schema kept (by the first caller for all who ask while it is written), and
   * counted beside it in SCHEMA_CACHE_MAX_BYTES. Each GET /databases/{id}/schema wrote and
   * encoded it anew: bench/schema-get.ts measured 50 ms of the event loop a request for an 11 MB
   * answer, for any user to ask for again and again. */
  schemaJson(snapshot: SchemaSnapshot): Promise<Uint8Array<ArrayBuffer>> {
    const kept = this.kept;
    if (kept?.snapshot !== snapshot) return schemaJsonInSlices(snapshot);
    if (kept.json !== undefined) return kept.json;
    const written = schemaJsonInSlices(snapshot).then(
      (json) => {
        const bytes = kept.bytes + json.byteLength;
        // Kept only while it is still this schema's and the two fit where all schemas together
        // do (one snapshot alone fits: SCHEMA_MAX_BYTES is at most SCHEMA_CACHE_MAX_BYTES).
        if (this.kept !== kept || this.closing || (this.schemas && bytes > this.schemas.limits.maxTotalBytes)) kept.json = undefined;
        else this.schemas?.keep(this, bytes);
        return json;
      },
      (err: unknown) => {
        kept.json = undefined;
        throw err;
      },
    );
    kept.json = written;
    return written;
  }

  /** Reads the catalog again, under `budget` (the interactive one unless given: monitoring
   * gives its own). Asked while a read runs, the answer is the read after it, which every such
   * call shares: it sees what changed before the call (an ALTER just made), and a loop of
   * refreshes cannot start catalog reads faster than they end. */
  refreshSchema(budget: StatementBudget = this.budget): Promise<SchemaSnapshot> {
    this.lastUsedAt = Date.now();
    return this.reads.run(() => this.startIntrospection(budget));
  }

  /** A read that becomes the cached schema; if it fails (a refresh refused by a budget, say),
   * the schema read before is kept, as old as it was (one too old is read again on next use). */
  private startIntrospection(budget: StatementBudget): Promise<SchemaSnapshot> {
    const previous = this.schemaCache;
    const previousStaleAt = this.schemaStaleAt;
    const read: Promise<SchemaSnapshot> = this.introspect(budget).then(async (snapshot) => {
      // Aged from the end of the catalog read, not of measuring it.
      const staleAt = performance.now() + this.schemaMaxAgeMs;
      // Refused past SCHEMA_MAX_BYTES, whoever asked: the schema read before, if any, stays.
      const bytes = await this.schemas?.measure(snapshot);
      if (this.schemaCache === read) this.schemaStaleAt = staleAt;
      // Counted only while it is what this connector keeps: not once forgotten for room while
      // it was read, nor after close() began (nothing would ever let go of it).
      if (this.schemaCache === read && !this.closing) {
        this.kept = { snapshot, bytes: bytes ?? 0 };
        if (bytes !== undefined) this.schemas!.keep(this, bytes);
      }
      return snapshot;
    });
    this.schemaCache = read;
    this.schemaStaleAt = Number.POSITIVE_INFINITY;
    read.catch(() => {
      if (this.schemaCache !== read) return;
      this.schemaCache = previous;
      this.schemaStaleAt = previousStaleAt;
    });
    return read;
  }

  /** One introspection, recorded as one statement (the catalog reads are the dialect's), and
   * charged and admitted by `budget` like one: a catalog read is work for the database too. */
  private async introspect(budget: StatementBudget): Promise<SchemaSnapshot> {
    if (this.closing) {
      const next = await this.succeeded();
      return next.introspect(budget === this.budget ? next.budget : budget);
    }
    this.recorder?.admit();
    this.inFlight++;
    const started = performance.now();
    let release: (() => void) | undefined;
    try {
      budget.charge();
      release = await budget.enter();
      // Let go of while it waited: read where the connection reaches now (see queryOnce).
      if (!this.closing) {
        this.failures?.refuse(this.connectionId);
        const snapshot = await this.driver.introspect();
        this.failures?.reached(this.connectionId, started);
        this.counts?.ok();
        this.record("introspection", null, INTROSPECTION_SQL, started, snapshot.tables.length);
        return snapshot;
      }
    } catch (caught) {
      const err = await this.failed(caught);
      this.counts?.failed(err);
      this.record("introspection", null, INTROSPECTION_SQL, started, null, err);
      throw err;
    } finally {
      release?.();
      this.leftDriver();
    }
    const next = await this.succeeded();
    return next.introspect(budget === this.budget ? next.budget : budget);
  }

  /** Whether the database is a primary or a replica, and its replay lag, under `budget`
   * (monitoring's). */
  async probe(budget: StatementBudget): Promise<ProbeInfo> {
    if (this.closing) {
      const next = await this.succeeded();
      return next.probe(budget === this.budget ? next.budget : budget);
    }
    this.inFlight++;
    const started = performance.now();
    let release: (() => void) | undefined;
    try {
      budget.charge();
      release = await budget.enter();
      // Let go of while it waited: probe where the connection reaches now (see queryOnce).
      if (!this.closing) {
        this.failures?.refuse(this.connectionId);
        const info = await this.driver.probe();
        this.failures?.reached(this.connectionId, started);
        return info;
      }
    } catch (err) {
      throw await this.failed(err);
    } finally {
      release?.();
      this.leftDriver();
    }
    const next = await this.succeeded();
    return next.probe(budget === this.budget ? next.budget : budget);
  }

  /** What to answer for `err`, met by the driver: a connection that could not be made is counted
   * against the owner's CONNECTION_TESTS_PER_MINUTE (connect-failures.ts). */
  private async failed(err: unknown): Promise<unknown> {
    return this.failures ? this.failures.failure(this.connectionId, this.ownerId, err) : err;
  }

  /** A call counted in `inFlight` has ended. (Counted inline where it runs: no promise more
   * per statement.) */
  private leftDriver(): void {
    if (--this.inFlight === 0) this.drained?.();
  }

  /** The connector that runs what is asked of this one once it is closing. */
  private succeeded(): Promise<GuardedConnector> {
    if (this.successor) return this.successor();
    return Promise.reject(new DomainError("unavailable", "This database connection was closed as Pulse shuts down; retry on another instance"));
  }

  /** Closes the driver once what runs on it has ended (each statement within its own
   * timeout): a connector the cache let go of (evicted for room, idle, its connection
   * changed) finishes its running statements rather than failing them. What is asked of it
   * from now on (by an agent or a check run holding it between statements), and what waited
   * for a slot until now, runs on `successor`: the
   * connection's connector now, opened anew for its current target, or a 404 once the
   * connection is deleted. None: refused as unavailable (Pulse shutting down). */
  async close(successor?: Successor): Promise<void> {
    this.successor = successor;
    this.closing = true;
    this.kept = undefined;
    this.schemas?.release(this);
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await this.driver.close();
  }
}
