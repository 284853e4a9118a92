// Per-process cache of guarded connectors, one per saved connection: an LRU with a maximum
// size that closes pools idle for too long and evicts on disconnect, update and delete. Its
// connectors charge the budgets of their target database and of their owner (shared-budgets.ts),
// and those that reach one server database by one host name and login share its pool
// (shared-drivers.ts).

import { DomainError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { BudgetLimits } from "./budget.js";
import { ConnectFailures, type CountConnectAttempt } from "./connect-failures.js";
import { MAX_STATEMENT_LENGTH } from "./guard/index.js";
import { createStatementGuard, type StatementGuardOptions } from "./guard/statement-guard.js";
import { GuardedConnector, type Successor } from "./guarded.js";
import type { PoolOptions } from "./open.js";
import { SchemaMemory, type SchemaMemoryLimits } from "./schema-memory.js";
import { SharedBudgets } from "./shared-budgets.js";
import { SharedDrivers } from "./shared-drivers.js";
import { targetKey } from "./target-key.js";
import type { StatementRecorder } from "./statement-recorder.js";
import type { ConnectionTarget, DialectDriver, QueryLimits } from "./types.js";

export interface ConnectorCacheOptions {
  maxEntries: number;
  /** Close a connector unused for this long. */
  idleMs: number;
  pool: PoolOptions;
  limits: QueryLimits;
  /** Each target database's budget across the deployment, whichever saved connections reach it... */
  budget: BudgetLimits;
  /** ...and each user's, across all their connections... */
  userBudget: BudgetLimits;
  /** ...shared equally by this many live instances (read on every statement; default 1). */
  instances?: () => number;
  /** Length limit and parser threads of the guard every connector here shares (default:
   * QUERY_MAX_SQL_CHARS, QUERY_PARSE_THREADS and QUERY_PARSE_TIMEOUT_MS's defaults). */
  guard?: StatementGuardOptions;
  /** The audit trail every connector here records its statements in (none: not recorded). */
  recorder?: StatementRecorder | undefined;
  /** Where its connectors count their statements (none: not counted). */
  metrics?: Metrics | undefined;
  /** What its connectors' cached schemas may hold (none: unbounded, for tests of one connector). */
  schemaMemory?: SchemaMemoryLimits;
  /** How long a connector uses a schema it read before reading it again (SCHEMA_MAX_AGE_SECONDS).
   * None: until refreshed, discarded or forgotten. */
  schemaMaxAgeMs?: number;
  /** How long a connector is trusted to be its connection's without reading the connection
   * again (TOKEN_RECHECK_SECONDS): evictions are announced, but an announcement the evicting
   * instance could not send is lost, with no gap here to tell of it. None: for ever. */
  recheckMs?: number;
  /** Counts a connection to a saved connection's database that could not be made against its
   * owner's CONNECTION_TESTS_PER_MINUTE (connect-failures.ts). None: neither counted nor refused. */
  countConnectAttempt?: CountConnectAttempt;
}

export class ConnectorCache {
  /** Insertion order is recency order: a hit moves its entry to the end. */
  private readonly entries = new Map<number, Promise<GuardedConnector>>();
  /** What each entry was opened for: its owner (for the share one user may hold), target
   * (to tell whether the connection changed since: suspectAll) and what takes over from it
   * once it is let go of (see drop). */
  private readonly opened = new Map<number, { ownerId: number; target: ConnectionTarget; successor: Successor }>();
  /** Targets being loaded on a miss, per connection (see get). */
  private readonly loads = new Map<number, Set<{ stale: boolean }>>();
  /** When each entry was last found to be its connection's (opened, or confirmed); never, once
   * a gap in the news made it suspect (suspectAll). */
  private readonly checkedAt = new Map<number, number>();
  /** Checks of entries against their connections under way (checkOnce). */
  private readonly checks = new Map<number, Promise<boolean>>();
  /** Connectors let go of and still closing (their statements running): close() waits for
   * them, so none records in the audit trail or asks the guard after those close. */
  private readonly closing = new Set<Promise<void>>();
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;
  private readonly guard;
  private readonly budgets;
  /** One pool per database, host name and login, whichever connections reach it (SQLite: one each). */
  private readonly drivers: SharedDrivers;
  private readonly schemas: SchemaMemory | undefined;
  /** Kept per connection, not per connector: a connector let go of and opened anew is refused alike. */
  private readonly failures: ConnectFailures | undefined;

  constructor(
    private readonly options: ConnectorCacheOptions,
    private readonly logger: Logger,
    /** Tells the other instances to evict too (their caches are their own). */
    private readonly announceEviction: (connectionId: number) => Promise<void> = async () => {},
    /** Tells the other instances that this one read a connection's catalog anew (see schemaReadAnew). */
    private readonly announceSchemaRead: (connectionId: number) => Promise<void> = async () => {},
  ) {
    this.schemas = options.schemaMemory && new SchemaMemory(options.schemaMemory);
    this.failures = options.countConnectAttempt && new ConnectFailures(options.countConnectAttempt);
    this.drivers = new SharedDrivers(options.pool);
    this.budgets = new SharedBudgets({ target: options.budget, user: options.userBudget, instances: options.instances ?? (() => 1) });
    this.sweeper = setInterval(() => void this.closeIdle(), Math.min(options.idleMs, 30_000));
    this.sweeper.unref();
    this.guard = createStatementGuard(options.guard ?? { maxChars: MAX_STATEMENT_LENGTH, threads: 2, timeoutMs: 5000 }, (err) =>
      logger.error({ err }, "a SQL guard parser thread failed"),
    );
  }

  get size() {
    return this.entries.size;
  }

  /** Bytes of schema its connectors keep now (schema-memory.ts), for tests. */
  get schemaBytes() {
    return this.schemas?.heldBytes ?? 0;
  }

  /** Shared pools open now, for tests. */
  get poolCount() {
    return this.drivers.size;
  }

  /** Budgets this process remembers (targets and users), for tests. */
  get budgetCount() {
    return this.budgets.size;
  }

  /** The cached connector of `connectionId`, opening it with `loadTarget()` on a miss. On a
   * miss each caller loads the target itself (which proves it is the owner's to load) before
   * it may start or share an opening: another user's failing load never becomes the owner's
   * answer. Concurrent misses share the first opening. Callers check `ownerId` on what they get.
   * `reopen` finds the connection's connector as the opener would (saved-connection.ts: checked
   * against its connection if suspect): what runs the statements asked of one let go of, from
   * then on (default: get it here again). */
  get(connectionId: number, ownerId: number, loadTarget: () => Promise<ConnectionTarget>, reopen?: Successor): Promise<GuardedConnector> {
    const cached = this.touch(connectionId);
    if (cached) return cached;
    // An eviction during the load (the connection updated, say) makes what was loaded stale.
    const load = { stale: false };
    const loads = this.loads.get(connectionId) ?? new Set();
    this.loads.set(connectionId, loads.add(load));
    const loaded = () => {
      loads.delete(load);
      if (loads.size === 0 && this.loads.get(connectionId) === loads) this.loads.delete(connectionId);
    };
    return loadTarget()
      .finally(loaded)
      .then((target) => {
        if (this.closed) throw new DomainError("unavailable", "Pulse is shutting down; retry on another instance");
        if (load.stale) return this.touch(connectionId) ?? this.get(connectionId, ownerId, loadTarget, reopen);
        return this.touch(connectionId) ?? this.open(connectionId, ownerId, target, reopen ?? (() => this.get(connectionId, ownerId, loadTarget)));
      });
  }

  /** The entry of `connectionId`, now the most recently used; undefined on a miss. */
  private touch(connectionId: number): Promise<GuardedConnector> | undefined {
    const cached = this.entries.get(connectionId);
    if (cached) {
      this.entries.delete(connectionId);
      this.entries.set(connectionId, cached);
    }
    return cached;
  }

  private open(connectionId: number, ownerId: number, target: ConnectionTarget, successor: Successor): Promise<GuardedConnector> {
    // Opening a driver connects (a shared pool already open does not).
    this.failures?.refuse(connectionId);
    const opening = (async () => {
      const started = performance.now();
      let key: string;
      let driver: DialectDriver;
      try {
        // Resolved once, at open: a connector keeps its budget for as long as it lives.
        key = await targetKey(target);
        driver = await this.drivers.open(key, target);
      } catch (err) {
        throw this.failures ? await this.failures.failure(connectionId, ownerId, err) : err;
      }
      this.failures?.reached(connectionId, started);
      const budget = this.budgets.hold(key, ownerId);
      const counts = this.options.metrics?.statements(driver.dialect);
      return new GuardedConnector(connectionId, ownerId, key, driver, this.options.limits, budget, this.guard, this.options.recorder, counts, this.schemas, this.failures, this.options.schemaMaxAgeMs);
    })();
    this.entries.set(connectionId, opening);
    this.opened.set(connectionId, { ownerId, target, successor });
    this.checkedAt.set(connectionId, Date.now());
    opening.catch(() => {
      if (this.entries.get(connectionId) === opening) this.forget(connectionId);
    });
    this.trim();
    return opening;
  }

  has(connectionId: number): boolean {
    return this.entries.has(connectionId);
  }

  /** Forgets a connection's connector here and on every other instance (disconnect, update,
   * delete), each closing it once its statements end: none may go on using a deleted
   * connection or an old target. The announcement is best effort; an instance that misses it
   * checks the connector against its connection within `recheckMs` (isSuspect). */
  async evict(connectionId: number): Promise<void> {
    this.evictHere(connectionId);
    await this.announceEviction(connectionId).catch((err: unknown) => {
      this.logger.error({ err, connection_id: connectionId }, "telling other instances to evict a connector failed");
    });
  }

  /** This instance read `connectionId`'s catalog anew because its user asked to see it as it is
   * (a refresh, connect_db): every other instance drops the schema it keeps, which may be older
   * (a table dropped since stayed in /ask's context there, for as long as the connector was in
   * use). Best effort, as an eviction's news is. */
  async schemaReadAnew(connectionId: number): Promise<void> {
    await this.announceSchemaRead(connectionId).catch((err: unknown) => {
      this.logger.warn({ err, connection_id: connectionId }, "telling other instances of a schema read anew failed");
    });
  }

  /** Another instance read `connectionId`'s catalog anew: the schema kept here is read again on
   * next use. */
  discardSchemaHere(connectionId: number): void {
    void this.entries.get(connectionId)?.then(
      (connector) => connector.discardSchema(),
      () => undefined,
    );
  }

  /** Forgets a connection's connector in this process only, closing it once its statements
   * end (the caller does not wait for them: a DELETE is not held up by another session's long
   * read); a target being loaded for it is loaded again. */
  evictHere(connectionId: number): void {
    for (const load of this.loads.get(connectionId) ?? []) load.stale = true;
    void this.drop(connectionId);
  }

  /** Forgets the connector of `connectionId`; resolves once it is closed. */
  private drop(connectionId: number): Promise<void> {
    const entry = this.entries.get(connectionId);
    if (!entry) return Promise.resolve();
    // Taken before it is forgotten: the connection's connector then, opened anew for its target
    // then (one updated meanwhile runs on its new one; one deleted answers 404).
    const { successor } = this.opened.get(connectionId)!;
    this.forget(connectionId);
    const closed = this.closeQuietly(entry, successor);
    this.closing.add(closed);
    void closed.finally(() => this.closing.delete(closed));
    return closed;
  }

  /** Marks every connector (and every target being loaded) as possibly out of date: evictions
   * announced while this process could not hear were missed. Each is checked against its
   * connection on its next use (saved-connection.ts), not closed: a check or an agent using
   * it now goes on. Schema reads anew announced meanwhile were missed too, and a connector
   * found up to date would otherwise keep its schema for as long as it lives: each one kept is
   * read again on next use. */
  suspectAll(): void {
    for (const id of this.entries.keys()) {
      this.checkedAt.set(id, Number.NEGATIVE_INFINITY);
      this.discardSchemaHere(id);
    }
    for (const loads of this.loads.values()) for (const load of loads) load.stale = true;
  }

  /** Whether the connector of `connectionId` must be checked against its connection first: a
   * gap in the news, or longer than `recheckMs` since it last was. */
  isSuspect(connectionId: number): boolean {
    return Date.now() - (this.checkedAt.get(connectionId) ?? 0) >= (this.options.recheckMs ?? Number.POSITIVE_INFINITY);
  }

  /** What the cached connector of `connectionId` was opened for. */
  targetOf(connectionId: number): ConnectionTarget | undefined {
    return this.opened.get(connectionId)?.target;
  }

  /** `check` of the connector of `connectionId` (saved-connection.ts), run once for all who
   * ask while it runs: a busy connection's requests, all finding it unchecked at once, each
   * read the store and opened its password. */
  checkOnce(connectionId: number, check: () => Promise<boolean>): Promise<boolean> {
    const running = this.checks.get(connectionId);
    if (running) return running;
    const checking = check().finally(() => {
      if (this.checks.get(connectionId) === checking) this.checks.delete(connectionId);
    });
    this.checks.set(connectionId, checking);
    return checking;
  }

  /** The connector of `connectionId` was found up to date. */
  confirm(connectionId: number): void {
    if (this.entries.has(connectionId)) this.checkedAt.set(connectionId, Date.now());
  }

  /** Closes connectors idle for longer than `idleMs`, and forgets budgets come to rest and
   * connection failures past (connect-failures.ts). */
  async closeIdle(now = Date.now()): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [id, entry] of [...this.entries]) {
      const connector = await entry.catch(() => undefined);
      if (connector && now - connector.lastUsedAt > this.options.idleMs && this.entries.get(id) === entry) closing.push(this.drop(id));
    }
    await Promise.all(closing);
    this.budgets.sweep();
    this.failures?.sweep();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    const all = [...this.entries.values()];
    this.entries.clear();
    this.opened.clear();
    this.checkedAt.clear();
    await Promise.all([...all.map((entry) => this.closeQuietly(entry)), ...this.closing]);
    await this.guard.close();
  }

  private forget(connectionId: number): void {
    this.entries.delete(connectionId);
    this.opened.delete(connectionId);
    this.checkedAt.delete(connectionId);
  }

  private trim(): void {
    while (this.entries.size > this.options.maxEntries) void this.drop(this.victim());
  }

  /** The connector to close for room: the least recently used of whoever holds the most, if
   * that is more than a quarter of the cache; else the least recently used of all. So one
   * user's many connections cannot push everyone else's out (each costs a reconnect), while a
   * user alone may still fill the cache. */
  private victim(): number {
    const held = new Map<number, number[]>();
    for (const id of this.entries.keys()) {
      const owner = this.opened.get(id)!.ownerId;
      const ids = held.get(owner) ?? [];
      ids.push(id);
      held.set(owner, ids);
    }
    let most: number[] = [];
    for (const ids of held.values()) if (ids.length > most.length) most = ids;
    return most.length > Math.max(1, Math.floor(this.options.maxEntries / 4)) ? most[0]! : this.entries.keys().next().value!;
  }

  /** Closes a connector taken out of the cache (once: callers delete the entry first) once
   * its running statements end, and lets go of its budgets; those statements keep their slots
   * until they end. What is asked of it later runs on `successor` (none: refused, as Pulse is
   * shutting down). */
  private async closeQuietly(entry: Promise<GuardedConnector>, successor?: Successor) {
    let connector: GuardedConnector;
    try {
      connector = await entry;
    } catch {
      return; // a failed opening held nothing
    }
    this.budgets.release(connector.targetKey, connector.ownerId);
    try {
      await connector.close(successor);
    } catch (err) {
      this.logger.debug({ err }, "closing a connector failed");
    }
  }
}
