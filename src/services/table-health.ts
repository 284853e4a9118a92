// Health-aware results: the open monitoring alerts on the tables a statement read, so that no
// client (a person at /query, an agent at /ask, an AI client over MCP) builds on broken data
// without being told. And the health of one monitored table: its latest runs and open alerts.

import { createLRU } from "lru.min";

import { mayReach, type Grant } from "../auth/grants.js";

import type { TableRef } from "../connectors/guard/tables-read.js";
import { tablesRead } from "../connectors/guard/tables-read.js";
import type { GuardedConnector } from "../connectors/guarded.js";
import { savedTargetKey } from "../connectors/saved-connection.js";
import type { Dialect } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { listAlertsOf, publicAlert, type PublicAlert } from "./alerts.js";
import { checkKey } from "../monitoring/check-config.js";
import type { CheckOutcome } from "../monitoring/run-table.js";
import { getMonitoredTableOf, listRunsOf, type PublicMonitoredTable } from "./monitored-tables.js";
import { activeAlertsOnTables, type AlertOnTable } from "../store/monitoring-alerts.js";
import { within } from "../within.js";

/** One open alert on a table a statement read. */
export interface TableAlert {
  /** As monitored: `schema.table`, or `table` where there is no schema (SQLite). */
  table: string;
  table_id: number;
  alert_id: number;
  check: string;
  check_kind: string;
  /** open, acknowledged, muted or resolving: the incident is not over. */
  status: string;
  /** When the alert opened (ISO 8601). */
  since: string | null;
  detail: string | null;
}

/** How stale the open alerts a statement is checked against may be: an alert opened or
 * resolved on another instance shows at most this much later. Checking the store on every
 * statement would cost /query a round trip; most users have no open alert at all. */
export const HEALTH_CACHE_MS = 5_000;
const MAX_CACHED_USERS = 10_000;
/** How long a result waits for the open alerts when the store is slow: the read is one indexed
 * lookup, milliseconds when the store is well. */
const HEALTH_READ_WAIT_MS = 1_000;

interface Cached {
  at: number;
  alerts: Promise<AlertOnTable[]>;
  /** Not settled yet: shared however old, so a slow store gets one read per user at a time,
   * not one more every HEALTH_CACHE_MS until its statement timeout. */
  pending: boolean;
}

/** A cache of at most `max` entries per app (its store: a test process runs several apps), the
 * least recently used out first. */
function perApp<V>(max: number): (deps: Deps) => ReturnType<typeof createLRU<number, V>> {
  const caches = new WeakMap<Deps["store"], ReturnType<typeof createLRU<number, V>>>();
  return (deps) => {
    let cache = caches.get(deps.store);
    if (!cache) caches.set(deps.store, (cache = createLRU<number, V>({ max })));
    return cache;
  };
}

/** Per user: the user's active alerts, read at most every HEALTH_CACHE_MS. The users asking now
 * keep their entry, pending reads included. */
const alertCache = perApp<Cached>(MAX_CACHED_USERS);

function activeAlertsOf(deps: Deps, userId: number): Promise<AlertOnTable[]> {
  const cache = alertCache(deps);
  const now = Date.now();
  const cached = cache.get(userId);
  if (cached && (cached.pending || now - cached.at < HEALTH_CACHE_MS)) return cached.alerts;
  const alerts = activeAlertsOnTables(deps.store.db, userId);
  const entry: Cached = { at: now, alerts, pending: true };
  cache.set(userId, entry);
  alerts.then(
    () => (entry.pending = false),
    // A failed read is not remembered: the next statement asks again.
    () => cache.get(userId) === entry && cache.delete(userId),
  );
  return alerts;
}

/** How long the database another of the user's connections reaches is remembered (its host
 * resolved): an alert found through a connection edited since shows, or stops showing, at most
 * this much later. */
const TARGET_KEY_CACHE_MS = 60_000;
const MAX_CACHED_KEYS = 10_000;

interface CachedKey {
  at: number;
  ownerId: number;
  key: Promise<string | null>;
  /** Whether a result has logged giving up its wait on `key`: the results read while one slow
   * lookup lasts would each say the same. */
  slowLogged: boolean;
}

/** Per saved connection: the database it reaches (savedTargetKey). */
const keyCache = perApp<CachedKey>(MAX_CACHED_KEYS);

function cachedTargetKey(deps: Deps, userId: number, connectionId: number): CachedKey {
  const cache = keyCache(deps);
  const now = Date.now();
  const cached = cache.get(connectionId);
  if (cached && cached.ownerId === userId && now - cached.at < TARGET_KEY_CACHE_MS) return cached;
  const entry: CachedKey = {
    at: now,
    ownerId: userId,
    slowLogged: false,
    key: savedTargetKey(deps, userId, connectionId).catch((err: unknown) => {
      // A failure that may pass (a host that does not resolve now, the store away): taken for
      // another database, logged once, and asked again HEALTH_CACHE_MS later, not at every
      // statement nor only a minute later.
      deps.logger.warn({ err, user_id: userId, connection_id: connectionId }, "the database of a connection with open alerts could not be resolved for a result's health");
      entry.at = Date.now() - TARGET_KEY_CACHE_MS + HEALTH_CACHE_MS;
      return null;
    }),
  };
  cache.set(connectionId, entry);
  return entry;
}

/** The alerts of `active` on the database `connector` reaches: found through the connector's own
 * connection, or through another of the user's connections to the same database (a monitoring
 * role beside a reading one, the host spelled another way), however that database is reached. */
async function alertsOnDatabaseOf(
  deps: Deps,
  userId: number,
  connector: Pick<GuardedConnector, "connectionId" | "dialect" | "targetKey">,
  active: AlertOnTable[],
  deadline: number,
): Promise<AlertOnTable[]> {
  const others = [...new Set(active.filter((a) => a.connectionId !== connector.connectionId).map((a) => a.connectionId))];
  const sameDatabase = new Set([connector.connectionId]);
  await Promise.all(
    others.map(async (id) => {
      const cached = cachedTargetKey(deps, userId, id);
      try {
        const key = await within(cached.key, Math.max(0, deadline - Date.now()), "resolving a connection's database");
        if (key === connector.targetKey) sameDatabase.add(id);
      } catch (err) {
        // Still resolving past the bound: as for the alerts themselves, the rows are worth more
        // than a wait on a resolver. Logged once per lookup.
        if (cached.slowLogged) return;
        cached.slowLogged = true;
        deps.logger.warn({ err, user_id: userId, connection_id: id }, "the database of a connection with open alerts took too long to resolve for a result's health");
      }
    }),
  );
  return active.filter((a) => sameDatabase.has(a.connectionId));
}

/** PostgreSQL keeps the case the statement gave (its parser folds unquoted names); MySQL and
 * SQLite compare table names case-insensitively here, as SQLite and most MySQL setups do. */
function sameName(dialect: Dialect, a: string, b: string): boolean {
  return dialect === "postgresql" ? a === b : a.toLowerCase() === b.toLowerCase();
}

/** An unqualified name matches the table in whatever schema it is monitored in. */
const reads = (dialect: Dialect, refs: readonly TableRef[], on: AlertOnTable) =>
  refs.some((ref) => sameName(dialect, ref.name, on.tableName) && (ref.schema === null || (on.schemaName !== null && sameName(dialect, ref.schema, on.schemaName))));

/**
 * The open alerts on the tables `statements` read through `connector` of `userId` (statements
 * the guard accepted), whichever of the user's saved connections to that database monitors
 * them. Costs nothing more than a cache lookup when the user has no open alert; otherwise one
 * parse per statement (cached too), and for an alert on a table of a name read through another
 * connection, which database that one reaches (cached a minute). Waits at most
 * HEALTH_READ_WAIT_MS in all; empty, and logged, when the metadata store cannot be read.
 *
 * Only alerts of tables monitored through connections `grant` may reach: an API key limited to
 * some connections is not told of another's tables, checks or measured values (whatever its
 * scopes: the alert is about rows it just read, which is what `query` and `ask` are for).
 */
export async function alertsOnTablesRead(
  deps: Deps,
  userId: number,
  grant: Grant,
  connector: Pick<GuardedConnector, "connectionId" | "dialect" | "targetKey">,
  statements: readonly string[],
): Promise<TableAlert[]> {
  // One bound for all the waiting a result may do for its health.
  const deadline = Date.now() + HEALTH_READ_WAIT_MS;
  let active: AlertOnTable[];
  try {
    active = await within(activeAlertsOf(deps, userId), HEALTH_READ_WAIT_MS, "reading the open alerts");
  } catch (err) {
    // The statement has run: its rows are worth more than a 503, or a wait on a store gone
    // silent, for want of the alerts.
    deps.logger.warn({ err, user_id: userId }, "open alerts could not be read for a result's health");
    return [];
  }
  if (active.length === 0 || statements.length === 0) return [];
  const refs = statements.flatMap((sql) => tablesRead(connector.dialect, sql) ?? []);
  // The tables read first: which database another connection reaches is looked up only for
  // alerts on a table of the same name.
  const onTablesRead = active.filter((on) => mayReach(grant, on.connectionId) && reads(connector.dialect, refs, on));
  if (onTablesRead.length === 0) return [];
  const now = deps.monitoring.now();
  const onDatabase = await alertsOnDatabaseOf(deps, userId, connector, onTablesRead, deadline);
  return onDatabase.map((on) => {
    const alert = publicAlert(on.alert, now);
    return {
      table: on.schemaName ? `${on.schemaName}.${on.tableName}` : on.tableName,
      table_id: on.alert.tableId,
      alert_id: alert.id,
      check: alert.check,
      check_kind: alert.check_kind,
      status: alert.status,
      since: alert.opened_at,
      detail: alert.last_detail,
    };
  });
}

export interface MonitoredTableHealth {
  table: PublicMonitoredTable;
  /** The latest run of each check, newest first. */
  latest_runs: CheckOutcome[];
  /** Alerts whose incident is not over (open, acknowledged, muted, resolving). */
  open_alerts: PublicAlert[];
}

/** How far back to look for each check's latest run: a table has a handful of checks. */
const RECENT_RUNS = 200;

export async function monitoredTableHealth(deps: Deps, ownerId: number, tableId: number): Promise<MonitoredTableHealth> {
  const table = await getMonitoredTableOf(deps, ownerId, tableId);
  const [runs, openAlerts] = await Promise.all([
    listRunsOf(deps, ownerId, tableId, { limit: RECENT_RUNS }),
    listAlertsOf(deps, ownerId, { status: "active", tableId }),
  ]);
  // Of the checks the table has now: a check removed keeps its history, not a say in its health.
  const current = new Set(table.checks.map(checkKey));
  const seen = new Set<string>();
  const latest = runs.filter((run) => current.has(run.check) && !seen.has(run.check) && seen.add(run.check));
  return { table, latest_runs: latest, open_alerts: openAlerts };
}
