// Process-wide state of monitoring: its settings, its clock, its lease owner id, and the
// per-database budgets and per-connection replica reports that every check in this instance shares.

import type { MonitorConfig } from "../config.js";
import { createLRU } from "lru.min";

import { createBudget, nestedBudget, type Budget, type StatementBudget } from "../connectors/budget.js";
import type { GuardedConnector } from "../connectors/guarded.js";
import type { ProbeInfo, SchemaSnapshot } from "../connectors/types.js";
import { newInstanceId } from "../instance-id.js";
import { createBaselineCache, type BaselineCache } from "./baseline-cache.js";

export interface Monitoring {
  settings: MonitorConfig;
  /** Who holds the leases this process takes: its scheduler's, and its manual runs'. One id
   * for both, so a manual run is not refused because of this process's own scheduler. */
  instanceId: string;
  /** Epoch milliseconds; tests pass a clock they move by hand. */
  now(): number;
  /** In [0, 1): the scheduler's jitter. */
  random(): number;
  /** Jitter added to a next run: up to a tenth of the interval, at most a minute, so tables
   * created together drift apart. */
  jitterMs(intervalSeconds: number): number;
  /** The monitoring budget of one target database (GuardedConnector.targetKey), shared by the
   * checks of every saved connection that reaches it: separate from, and stricter than, the
   * interactive one, so checks never crowd out /ask or /query (and the reverse). The users whose
   * checks used it in the last hour share it equally (each one's share is charged first): a user
   * alone has all of it, and one user's checks on a shared database cannot spend it all and leave
   * another's skipped. It lives in this process; connection affinity of the leases makes it hold
   * across instances for one connection, not for several connections to one database leased by
   * different instances. */
  budgetFor(connector: Pick<GuardedConnector, "targetKey" | "ownerId">): StatementBudget;
  /** Primary or replica, and replay lag: probed at most once a minute per connection and target. */
  targetInfo(connector: GuardedConnector): Promise<ProbeInfo>;
  /** The connection's schema, introspected again (under the monitoring budget) when this
   * instance's last look is older than `maxAgeMs` by the monitoring clock (0: always, unless
   * one is under way). Concurrent askers share one introspection, so a thousand tables on one
   * database cost one per interval. */
  schemaOf(connector: GuardedConnector, maxAgeMs: number): Promise<SchemaSnapshot>;
  /** When each metric series began ("tableId:checkKey" → epoch ms): it never changes, so
   * baselines need not ask the store again. */
  readonly seriesStarts: ReadonlyMap<string, number>;
  rememberSeriesStart(series: string, at: number): void;
  /** Each metric series' last baseline training, reused for its next few runs. */
  readonly baselines: BaselineCache;
}

const PROBE_MAX_AGE_MS = 60_000;
/** A user whose checks used a database this recently shares its monitoring budget: longer than
 * a table's usual interval, so a user with tables there keeps their share between runs. */
const SHARING_MS = 3_600_000;
const JITTER_RATIO = 0.1;
const MAX_TRACKED_SERIES = 200_000;
const MAX_JITTER_MS = 60_000;
/** Beyond this many databases (budgets) or connections (probes) the least recently used are forgotten. */
const MAX_TRACKED_CONNECTIONS = 10_000;

export function createMonitoring(
  settings: MonitorConfig,
  options: { now?: () => number; random?: () => number } = {},
): Monitoring {
  const now = options.now ?? Date.now;
  const instanceId = newInstanceId();
  const targets = createLRU<string, Budget>({ max: MAX_TRACKED_CONNECTIONS });
  const owners = createLRU<string, Budget>({ max: MAX_TRACKED_CONNECTIONS });
  const probes = createLRU<string, { at: number; info: Promise<ProbeInfo> }>({ max: MAX_TRACKED_CONNECTIONS });
  /** When monitoring last read each connector's catalog, and the read while it runs. Not the
   * snapshot itself: that is the connector's to keep or forget (schema-memory.ts). */
  const schemaReads = new WeakMap<GuardedConnector, { at: number; running: Promise<SchemaSnapshot> | undefined }>();

  /** Per database, when each user's checks last asked for its budget (Date.now). */
  const lastAsked = createLRU<string, Map<number, number>>({ max: MAX_TRACKED_CONNECTIONS });
  /** How many users share the database now: those who asked within SHARING_MS, at least one. */
  const sharersOf = (targetKey: string) => () => {
    const asked = lastAsked.peek(targetKey);
    if (!asked) return 1;
    const t = Date.now();
    let n = 0;
    for (const [owner, at] of asked) {
      if (t - at < SHARING_MS) n += 1;
      else asked.delete(owner);
    }
    return Math.max(1, n);
  };
  const limits = {
    concurrency: settings.connectionConcurrency,
    perMinute: settings.queriesPerMinute,
    // A bounded queue: at most one waiting check per table this instance runs at once.
    maxWaiting: settings.maxConcurrency,
    maxWaitMs: settings.statementTimeoutMs,
  };
  const held = (budgets: typeof targets, key: string, make: () => Budget): Budget => {
    let budget = budgets.get(key);
    if (!budget) budgets.set(key, (budget = make()));
    return budget;
  };
  const budgetFor = ({ targetKey, ownerId }: Pick<GuardedConnector, "targetKey" | "ownerId">): StatementBudget => {
    let asked = lastAsked.get(targetKey);
    if (!asked) lastAsked.set(targetKey, (asked = new Map()));
    asked.set(ownerId, Date.now());
    return nestedBudget(
      held(owners, `${ownerId}\u0000${targetKey}`, () => createBudget(limits, Date.now, sharersOf(targetKey), "this database for your checks", "users")),
      held(targets, targetKey, () => createBudget(limits, Date.now, () => 1, "this database")),
      settings.statementTimeoutMs,
    );
  };

  const random = options.random ?? Math.random;
  const seriesStarts = new Map<string, number>();
  return {
    settings,
    instanceId,
    now,
    random,
    seriesStarts,
    baselines: createBaselineCache(),
    rememberSeriesStart(series, at) {
      if (seriesStarts.has(series)) return;
      if (seriesStarts.size >= MAX_TRACKED_SERIES) seriesStarts.delete(seriesStarts.keys().next().value!);
      seriesStarts.set(series, at);
    },
    jitterMs: (intervalSeconds) => random() * Math.min(intervalSeconds * 1000 * JITTER_RATIO, MAX_JITTER_MS),
    budgetFor,
    schemaOf(connector, maxAgeMs) {
      const t = now();
      const last = schemaReads.get(connector);
      if (last?.running) return last.running;
      const read = () => {
        const snapshot = connector.refreshSchema(budgetFor(connector));
        const entry: { at: number; running: Promise<SchemaSnapshot> | undefined } = { at: t, running: snapshot };
        schemaReads.set(connector, entry);
        snapshot.then(
          () => void (entry.running = undefined),
          () => {
            if (schemaReads.get(connector) === entry) schemaReads.delete(connector);
          },
        );
        return snapshot;
      };
      // A clock gone back (a test's, or a corrected one) cannot tell the age: look again.
      const cached = last && t >= last.at && t - last.at < maxAgeMs ? connector.cachedSchema() : undefined;
      // The cached one may be a user's read still running, under their budget: if that fails,
      // monitoring reads under its own.
      return cached ? cached.catch(read) : read();
    },
    targetInfo(connector) {
      // By connection and the database it reaches: one moved to another server (from a replica
      // to its primary, say) is probed anew.
      const key = `${connector.connectionId}\u0000${connector.targetKey}`;
      const cached = probes.get(key);
      const t = Date.now();
      if (cached && t - cached.at < PROBE_MAX_AGE_MS) return cached.info;
      const info = connector.probe(budgetFor(connector));
      probes.set(key, { at: t, info });
      info.catch(() => {
        if (probes.get(key)?.info === info) probes.delete(key);
      });
      return info;
    },
  };
}
