// Per-process cache of guarded connectors, one per saved connection: an LRU with a maximum
// size that closes pools idle for too long and evicts on disconnect, update and delete.

import type { Logger } from "../logger.js";
import { createBudget, type BudgetLimits } from "./budget.js";
import { MAX_STATEMENT_LENGTH } from "./guard/index.js";
import { createStatementGuard, type StatementGuardOptions } from "./guard/statement-guard.js";
import { GuardedConnector } from "./guarded.js";
import { openDriver, type PoolOptions } from "./open.js";
import type { StatementRecorder } from "./statement-recorder.js";
import type { ConnectionTarget, QueryLimits } from "./types.js";

export interface ConnectorCacheOptions {
  maxEntries: number;
  /** Close a connector unused for this long. */
  idleMs: number;
  pool: PoolOptions;
  limits: QueryLimits;
  /** Each connection's budget across the deployment... */
  budget: BudgetLimits;
  /** ...shared equally by this many live instances (read on every statement; default 1). */
  instances?: () => number;
  /** Length limit and parser threads of the guard every connector here shares (default:
   * QUERY_MAX_SQL_CHARS, QUERY_PARSE_THREADS and QUERY_PARSE_TIMEOUT_MS's defaults). */
  guard?: StatementGuardOptions;
  /** The audit trail every connector here records its statements in (none: not recorded). */
  recorder?: StatementRecorder | undefined;
}

export class ConnectorCache {
  /** Insertion order is recency order: a hit moves its entry to the end. */
  private readonly entries = new Map<number, Promise<GuardedConnector>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly guard;

  constructor(
    private readonly options: ConnectorCacheOptions,
    private readonly logger: Logger,
    /** Tells the other instances to evict too (their caches are their own). */
    private readonly announceEviction: (connectionId: number) => Promise<void> = async () => {},
  ) {
    this.sweeper = setInterval(() => void this.closeIdle(), Math.min(options.idleMs, 30_000));
    this.sweeper.unref();
    this.guard = createStatementGuard(options.guard ?? { maxChars: MAX_STATEMENT_LENGTH, threads: 2, timeoutMs: 5000 }, (err) =>
      logger.error({ err }, "a SQL guard parser thread failed"),
    );
  }

  get size() {
    return this.entries.size;
  }

  /** The cached connector of `connectionId`, opening it with `loadTarget()` on a miss.
   * Concurrent misses share one opening. Callers check `ownerId` on what they get. */
  get(connectionId: number, ownerId: number, loadTarget: () => Promise<ConnectionTarget>): Promise<GuardedConnector> {
    const cached = this.entries.get(connectionId);
    if (cached) {
      this.entries.delete(connectionId);
      this.entries.set(connectionId, cached);
      return cached;
    }
    const opening = (async () => {
      const driver = await openDriver(await loadTarget(), this.options.pool);
      const budget = createBudget(this.options.budget, Date.now, this.options.instances);
      return new GuardedConnector(connectionId, ownerId, driver, this.options.limits, budget, this.guard, this.options.recorder);
    })();
    this.entries.set(connectionId, opening);
    opening.catch(() => {
      if (this.entries.get(connectionId) === opening) this.entries.delete(connectionId);
    });
    void this.trim();
    return opening;
  }

  has(connectionId: number): boolean {
    return this.entries.has(connectionId);
  }

  /** Closes and forgets a connection's connector here and on every other instance
   * (disconnect, update, delete): none may go on using a deleted connection or an old target.
   * The announcement is best effort; an instance that misses it closes the connector when it
   * has been idle for `idleMs`. */
  async evict(connectionId: number): Promise<void> {
    await this.evictHere(connectionId);
    await this.announceEviction(connectionId).catch((err: unknown) => {
      this.logger.error({ err, connection_id: connectionId }, "telling other instances to evict a connector failed");
    });
  }

  /** Closes and forgets a connection's connector in this process only. */
  async evictHere(connectionId: number): Promise<void> {
    const entry = this.entries.get(connectionId);
    if (!entry) return;
    this.entries.delete(connectionId);
    await closeQuietly(entry, this.logger);
  }

  /** Closes connectors idle for longer than `idleMs`. */
  async closeIdle(now = Date.now()): Promise<void> {
    for (const [id, entry] of [...this.entries]) {
      const connector = await entry.catch(() => undefined);
      if (connector && now - connector.lastUsedAt > this.options.idleMs && this.entries.get(id) === entry) {
        this.entries.delete(id);
        await closeQuietly(entry, this.logger);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((entry) => closeQuietly(entry, this.logger)));
    await this.guard.close();
  }

  private async trim() {
    while (this.entries.size > this.options.maxEntries) {
      const [oldestId, oldest] = this.entries.entries().next().value as [number, Promise<GuardedConnector>];
      this.entries.delete(oldestId);
      await closeQuietly(oldest, this.logger);
    }
  }
}

async function closeQuietly(entry: Promise<GuardedConnector>, logger: Logger) {
  try {
    await (await entry).close();
  } catch (err) {
    logger.debug({ err }, "closing a connector failed");
  }
}
