// Runs one monitored table's checks now: each through the guarded connector under the
// connection's monitoring budget, transient connection failures retried with backoff, every
// outcome recorded as a check run and fed to its alert. Used by the scheduler, by
// `POST /api/tables/{id}/run` and by `pulse check`.

import { UnreachableTooOftenError } from "../connectors/connect-failures.js";
import type { GuardedConnector, Requester } from "../connectors/guarded.js";
import { connectorFor } from "../connectors/saved-connection.js";
import { throwIfCancelled, type ProbeInfo, type TableSchema } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { counted } from "../counted.js";
import { DomainError } from "../errors.js";
import { cutText } from "../text-cut.js";
import type { CheckConfig, CheckKind } from "../store/column-types.js";
import { insertCheckRuns, metricPoints, seriesStart, skippedInARow, STORE_UNAVAILABLE } from "../store/monitoring-runs.js";
import { takeSchemaSnapshot } from "../store/monitoring-tables.js";
import type { CheckRunRow, MonitoredTableRow } from "../store/schema.js";
import { isStoreUnavailable, violatesForeignKey } from "../store/unavailable.js";
import { feedOutcomes } from "./alerts.js";
import { BASELINE_DEFAULTS, type MetricPoint } from "./baselines.js";
import { checkKey, columnsOf } from "./check-config.js";
import { runCustomSql } from "./checks/custom-sql.js";
import { runFreshness } from "./checks/freshness.js";
import { runNullRate } from "./checks/null-rate.js";
import { runSchemaDrift, snapshotOf } from "./checks/schema-drift.js";
import type { CheckContext, CheckResult, CheckStatus } from "./checks/types.js";
import { runVolume } from "./checks/volume.js";
import { deliverSoon } from "./notifiers.js";
import type { Monitoring } from "./runtime.js";
import { DEFAULT_TIMEZONE } from "./schedule.js";

export type RunTrigger = "schedule" | "manual";

/** What a run keeps of a check's message and details. They can carry what the database holds
 * (a column's name: SQLite's have no length limit) and go on to the store, the table's alert,
 * every channel's notification and the log. */
const MAX_CHECK_MESSAGE_CHARS = 2_000;
const MAX_CHECK_DETAILS_CHARS = 8_000;

/** The details, or in their place the start of their JSON when they are longer than that. */
function boundedDetails(details: CheckResult["details"]): Record<string, unknown> | null {
  if (!details) return null;
  const json = JSON.stringify(details);
  return json.length <= MAX_CHECK_DETAILS_CHARS ? details : { cut: true, excerpt: cutText(json, MAX_CHECK_MESSAGE_CHARS) };
}

export interface CheckOutcome {
  run_id: number | null;
  check: string;
  kind: CheckKind;
  status: CheckStatus;
  value: number | null;
  expected: number | null;
  lower: number | null;
  upper: number | null;
  message: string;
  details: Record<string, unknown> | null;
  started_at: string;
  finished_at: string;
}

export interface TableRunReport {
  table_id: number;
  trigger: RunTrigger;
  started_at: string;
  finished_at: string;
  /** Primary or replica, as last probed; null when the database could not be reached. */
  target: { replica: boolean; replication_lag_seconds: number | null } | null;
  outcomes: CheckOutcome[];
  notifications_queued: number;
}

/** Re-introspect at most this often when a table or column is missing from what we know. */
const MISSING_RECHECK_MS = 60_000;

/** `requester`: who asked for a manual run: the API key the audit trail records with its
 * statements (none: a schedule's, or a login's), and the signal that stops it (its client gone,
 * its credential revoked), after which it sends no statement and records nothing. */
export async function runTableChecks(deps: Deps, table: MonitoredTableRow, trigger: RunTrigger, requester: Requester = { apiKeyId: null }): Promise<TableRunReport> {
  const m = deps.monitoring;
  const startedAt = m.now();
  const clockStart = performance.now();
  let connector: GuardedConnector | null = null;
  // Once the database could not be reached (after the retries), the run's other checks report
  // that without trying: each trying again cost its retries, so one database dropping
  // connections held a run (and a scheduler slot, or a person's request) for minutes.
  let unreachable: CheckResult | null = null;
  try {
    connector = await withRetry(m, () => connectorFor(deps, table.ownerId, table.connectionId));
  } catch (err) {
    unreachable = resultOfError(deps, err);
  }

  // Someone asking for a run now means the table as it is now: right after an ALTER TABLE
  // they expect the new shape, not one introspected up to half an interval ago. A database that
  // takes no connection is reported by every check without trying; any other failure is met
  // again, and reported, by the checks that need the schema.
  if (connector && trigger === "manual") {
    throwIfCancelled(requester.signal);
    await withRetry(m, () => m.schemaOf(connector!, 0)).catch((err: unknown) => {
      if (unreachableError(err)) unreachable = resultOfError(deps, err);
    });
  }

  const runs: Omit<CheckRunRow, "id">[] = [];
  // On the real clock: what it bounds is real time.
  const deadline = clockStart + m.settings.runTimeoutMs;
  const { signal } = requester;
  for (const check of table.checks) {
    throwIfCancelled(signal);
    const at = m.now();
    const result =
      performance.now() > deadline
        ? { status: "skipped" as const, value: null, message: `skipped: the table's run passed MONITOR_RUN_TIMEOUT_MS (${m.settings.runTimeoutMs} ms)`, details: { code: "run_timeout" } }
        : connector && !unreachable
          ? await runOne(deps, connector, table, check, at, requester).catch((err: unknown) => {
              // Stopped, not failed: no outcome of the table's.
              throwIfCancelled(signal);
              const result = resultOfError(deps, err);
              if (unreachableError(err)) unreachable = result;
              return result;
            })
          : unreachable!;
    runs.push({
      tableId: table.id,
      checkKey: checkKey(check),
      checkKind: check.kind,
      status: result.status,
      value: finiteOrNull(result.value),
      expected: finiteOrNull(result.expected),
      lowerBound: finiteOrNull(result.lower),
      upperBound: finiteOrNull(result.upper),
      anomalous: result.anomalous ?? false,
      message: cutText(result.message, MAX_CHECK_MESSAGE_CHARS),
      details: boundedDetails(result.details),
      trigger,
      startedAt: new Date(at),
      finishedAt: new Date(Math.max(at, m.now())),
    });
  }

  deps.metrics.monitorRun(trigger, runs);
  // A manual run's checks skipped for the monitoring budget are answered, not kept: runs asked
  // for without end (MONITOR_MANUAL_RUNS_PER_MINUTE) kept a row per check each time, three
  // times the check runs an hour the user's quota allows. A schedule's are kept: they count
  // towards MONITOR_ALERT_AFTER_SKIPS.
  const kept = trigger === "manual" ? runs.filter((r) => !(r.status === "skipped" && r.details?.code === "budget_exceeded")) : runs;

  let saved: CheckRunRow[];
  let queued: number;
  try {
    saved = await insertCheckRuns(deps.store.db, kept);
    // A store failing here fails feedOutcomes too; if only this read fails, the run's real
    // outcomes still reach their alerts.
    const stuck = await stuckChecks(deps, table, kept).catch(() => new Set<string>());
    queued = await feedOutcomes(
      deps,
      table,
      kept.map((r) => {
        const outcome = { checkKey: r.checkKey, checkKind: r.checkKind as CheckKind, status: r.status, message: r.message, at: r.startedAt.getTime() };
        if (!stuck.has(r.checkKey)) return outcome;
        return { ...outcome, status: "error" as const, message: `not run in its last ${counted(m.settings.alertAfterSkips, "run")}: ${r.message}` };
      }),
    );
  } catch (err) {
    // Deleted while its checks ran, or its owner was: an alert for it fails on its key to the
    // table or to the user, and the runs just saved go with the rest of its history
    // (purgeOrphanedRuns).
    if (!violatesForeignKey(err, "alerts_table_id_monitored_tables_id_fk") && !violatesForeignKey(err, "alerts_owner_id_users_id_fk")) throw err;
    deps.logger.info({ table_id: table.id }, "monitored table (or its owner) deleted during its run; outcomes dropped");
    return { ...report(table, trigger, startedAt, m.now(), null, runs.map(unsavedOutcome)), notifications_queued: 0 };
  }
  if (queued > 0) deliverSoon(deps);
  logRun(deps, table, trigger, runs, Math.round(performance.now() - clockStart));
  const target = connector ? await m.targetInfo(connector).catch(() => null) : null;
  // In the run's order; one not kept has no run id.
  let next = 0;
  const outcomes = runs.map((r) => (kept[next] === r ? outcomeOf(saved[next++]!) : unsavedOutcome(r)));
  return { ...report(table, trigger, startedAt, m.now(), target, outcomes), notifications_queued: queued };
}

/**
 * The checks of this run skipped MONITOR_ALERT_AFTER_SKIPS runs in a row, this one included:
 * fed to their alerts as errors, so a check that never gets to run (its database's budget taken,
 * its table's run out of time) opens its alert rather than going quiet for good. The run itself
 * stays recorded as skipped. Skips under Pulse's own store failing count for nothing here: a
 * store restart opens no alerts.
 */
async function stuckChecks(deps: Deps, table: MonitoredTableRow, runs: Omit<CheckRunRow, "id">[]): Promise<Set<string>> {
  // This run is in the history by now: skippedInARow leaves out its store skips with the rest.
  const skipped = runs.filter((r) => r.status === "skipped").map((r) => r.checkKey);
  return skippedInARow(deps.store.db, table.id, skipped, deps.monitoring.settings.alertAfterSkips);
}

/** One line per run (debug while every check passes) and one warning per check that failed or
 * errored, with the fields an operator filters on. Not the check's message: it may quote the
 * monitored database (a custom SQL's text value, a driver's error naming a row's value), which
 * /query never logs either; its user reads it in the table's runs. */
function logRun(deps: Deps, table: MonitoredTableRow, trigger: RunTrigger, runs: Omit<CheckRunRow, "id">[], durationMs: number) {
  const where = { table_id: table.id, connection_id: table.connectionId };
  const failing = runs.filter((r) => r.status === "fail" || r.status === "error");
  for (const r of failing) {
    const code = typeof r.details?.code === "string" ? { code: r.details.code } : {};
    deps.logger.warn({ ...where, check_key: r.checkKey, status: r.status, value: r.value, ...code }, "monitoring check failing");
  }
  const counts: Partial<Record<CheckStatus, number>> = {};
  for (const r of runs) counts[r.status] = (counts[r.status] ?? 0) + 1;
  const level = failing.length > 0 ? "info" : "debug";
  deps.logger[level]({ ...where, trigger, checks: runs.length, statuses: counts, duration_ms: durationMs }, "monitoring run finished");
}

function report(
  table: MonitoredTableRow,
  trigger: RunTrigger,
  startedAt: number,
  finishedAt: number,
  target: ProbeInfo | null,
  outcomes: CheckOutcome[],
): Omit<TableRunReport, "notifications_queued"> {
  return {
    table_id: table.id,
    trigger,
    started_at: new Date(startedAt).toISOString(),
    finished_at: new Date(Math.max(startedAt, finishedAt)).toISOString(),
    target: target && { replica: target.replica, replication_lag_seconds: target.replication_lag_seconds },
    outcomes,
  };
}

export function outcomeOf(row: CheckRunRow): CheckOutcome {
  return {
    run_id: row.id,
    check: row.checkKey,
    kind: row.checkKind as CheckKind,
    status: row.status,
    value: row.value,
    expected: row.expected,
    lower: row.lowerBound,
    upper: row.upperBound,
    message: row.message,
    details: row.details,
    started_at: row.startedAt.toISOString(),
    finished_at: row.finishedAt.toISOString(),
  };
}

/** A run's outcome it did not keep: answered, with no run id. */
const unsavedOutcome = (run: Omit<CheckRunRow, "id">): CheckOutcome => ({ ...outcomeOf({ ...run, id: 0 }), run_id: null });

const finiteOrNull = (n: number | null | undefined) => (typeof n === "number" && Number.isFinite(n) ? n : null);

async function runOne(deps: Deps, connector: GuardedConnector, table: MonitoredTableRow, check: CheckConfig, at: number, requester: Requester): Promise<CheckResult> {
  const m = deps.monitoring;
  const find = (tables: TableSchema[]) => tables.find((t) => t.name === table.tableName && t.schema === table.schemaName) ?? null;

  if (check.kind === "schema_drift") {
    return withRetry(m, () =>
      runSchemaDrift({
        // Half the interval: every run sees a schema introspected since the previous run.
        freshColumns: async () => {
          const found = find((await m.schemaOf(connector, (table.intervalSeconds * 1000) / 2)).tables);
          return found && snapshotOf(found.columns);
        },
        acceptedColumns: table.schemaSnapshot,
        acceptColumns: (columns) => takeSchemaSnapshot(deps.store.db, table, columns),
      }),
    );
  }

  // Names come from the user: they must match the introspected schema before any statement
  // is built with them (then they are quoted too).
  let found = find((await withRetry(m, () => m.schemaOf(connector, Number.POSITIVE_INFINITY))).tables);
  const missing = (t: TableSchema | null) => !t || columnsOf(check).some(({ column }) => !t.columns.some((c) => c.name === column));
  if (missing(found)) found = find((await withRetry(m, () => m.schemaOf(connector, MISSING_RECHECK_MS))).tables);
  const name = table.schemaName ? `${table.schemaName}.${table.tableName}` : table.tableName;
  if (!found) return { status: "error", value: null, message: `table ${name} not found in the database` };
  const absent = columnsOf(check).find(({ column }) => !found.columns.some((c) => c.name === column));
  if (absent) return { status: "error", value: null, message: `column ${absent.column} not found in ${name}` };

  const budget = m.budgetFor(connector);
  const key = checkKey(check);
  const ctx: CheckContext = {
    connector,
    table: found,
    now: at,
    query: (sql, maxRows = 1) => connector.query(sql, { maxRows, timeoutMs: m.settings.statementTimeoutMs, budget, source: "monitor", ...requester }),
    judgeBaseline: (point, options) => {
      const points = "baseline" in check ? check.baseline?.window_points : undefined;
      // Seasons (hour of the day, day of the week) in the table's zone: a business's day is local,
      // and read in UTC its pattern sat at the wrong hours, an hour further off after a DST change.
      const zoned = { ...options, timeZone: table.timezone ?? DEFAULT_TIMEZONE };
      return m.baselines.judge(`${table.id}:${key}`, point, zoned, (since) => loadHistory(deps, table.id, key, at, points, since));
    },
    replicationLagSeconds: async () => (await m.targetInfo(connector)).replication_lag_seconds ?? 0,
  };
  return withRetry(m, () => {
    switch (check.kind) {
      case "freshness":
        return runFreshness(ctx, check);
      case "volume":
        return runVolume(ctx, check);
      case "null_rate":
        return runNullRate(ctx, check);
      case "custom_sql":
        return runCustomSql(ctx, check);
    }
  });
}

/**
 * A check's past values, oldest first: the baseline window, or (`since` given) only the values
 * since then. Before a whole window, a first non-finite point marks when the series began
 * (baselines ignore its value but read its time), so a series of a thousand one-minute points
 * still proves it reaches back a week when it does.
 */
async function loadHistory(
  deps: Deps,
  tableId: number,
  key: string,
  now: number,
  points: number | undefined,
  since: number | null,
): Promise<MetricPoint[]> {
  const { window } = BASELINE_DEFAULTS;
  const db = deps.store.db;
  const windowStart = now - window.durationMs;
  const range = { tableId, checkKey: key, points: points ?? window.points };
  if (since !== null) return metricPoints(db, { ...range, since: new Date(Math.max(since, windowStart)) });
  const series = `${tableId}:${key}`;
  const known = deps.monitoring.seriesStarts.get(series);
  const [rows, firstAt] = await Promise.all([
    metricPoints(db, { ...range, since: new Date(windowStart) }),
    // When the series began never changes: once known, the query is saved.
    known ?? seriesStart(db, { tableId, checkKey: key }),
  ]);
  if (firstAt !== null) deps.monitoring.rememberSeriesStart(series, firstAt);
  const history: MetricPoint[] = rows;
  if (firstAt !== null && (rows.length === 0 || firstAt < rows[0]!.at)) history.unshift({ at: firstAt, value: Number.NaN });
  return history;
}

const isTransient = (err: unknown) => err instanceof DomainError && (err.code === "connection_failed" || err.code === "connection_lost");
/** No connection could be made, after the retries, or none may be tried now (its database not
 * reached too often: connect-failures.ts): a connection lost under one statement (its backend
 * ended, say) says nothing of the next. */
const unreachableError = (err: unknown) => (err instanceof DomainError && err.code === "connection_failed") || err instanceof UnreachableTooOftenError;

/** Retries a transient connection failure with exponential backoff and jitter; anything else,
 * or the last failure, is thrown. */
export async function withRetry<T>(m: Monitoring, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || attempt >= m.settings.retryAttempts) throw err;
      const delay = m.settings.retryBaseMs * 2 ** (attempt - 1) * (0.5 + m.random());
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** How a failure reads as a check result: an exhausted budget, or Pulse's own metadata store
 * failing under the check (its history, its snapshot), is a skip, not a failure of the table:
 * a store restart must not open alerts on healthy tables. */
export function resultOfError(deps: Deps, err: unknown): CheckResult {
  if (isStoreUnavailable(err)) return { status: "skipped", value: null, message: "skipped: Pulse's metadata store was unavailable", details: { code: STORE_UNAVAILABLE } };
  if (err instanceof DomainError) {
    if (err.code === "budget_exceeded") return { status: "skipped", value: null, message: `skipped: ${err.message}`, details: { code: err.code } };
    if (err.code === "sql_refused") {
      return { status: "error", value: null, message: `refused by the SQL guard: ${err.message}`, details: { code: err.code, ...err.extra } };
    }
    return { status: "error", value: null, message: err.message, details: { code: err.code } };
  }
  deps.logger.error({ err }, "a check failed unexpectedly");
  return { status: "error", value: null, message: "internal error while running the check" };
}
