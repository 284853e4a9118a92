// Monitored-table verbs behind /api/tables: owner-scoped, and validated against the real
// database before saving (the table and columns must exist, custom SQL must pass the guard,
// each check must survive a dry run), so what the scheduler later runs was proven once already.

import type { GuardedConnector, Requester } from "../connectors/guarded.js";
import { connectorFor } from "../connectors/saved-connection.js";
import { throwIfCancelled, type TableSchema } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { changedMeanwhile, DomainError, invalidFields, notFound } from "../errors.js";
import { ALERT_DEFAULTS } from "../monitoring/alert-state.js";
import { BASELINE_DEFAULTS } from "../monitoring/baselines.js";
import { checkKey, checkSlot, columnsOf, DEFAULT_CHECKS, judgedByBaseline, savedCheck } from "../monitoring/check-config.js";
import { removeWithAlerts } from "../monitoring/alerts.js";
import { dryRun } from "../monitoring/dry-run.js";
import { runTableNow } from "../monitoring/run-now.js";
import { outcomeOf, type CheckOutcome, type TableRunReport } from "../monitoring/run-table.js";
import { DEFAULT_TIMEZONE, nextRunAfter, scheduleGap, type TableTiming, zoneSpelling } from "../monitoring/schedule.js";
import { snapshotOf } from "../monitoring/checks/schema-drift.js";
import type { CheckConfig, ColumnSnapshot, TableAlertConfig } from "../store/column-types.js";
import { listCheckRuns } from "../store/monitoring-runs.js";
import type { PageBefore } from "../store/page-before.js";
import {
  type MonitoredTableName,
  deleteAlertsOfOtherChecks,
  deleteMonitoredTable,
  findMonitoredTable,
  getMonitoredTable,
  insertMonitoredTable,
  listMonitoredTableNames,
  listMonitoredTables,
  lockMonitoredTable,
  updateMonitoredTable,
  type MonitoredTablePatch,
} from "../store/monitoring-tables.js";
import { lockAlertsOfTables } from "../store/monitoring-alerts.js";
import type { MonitoredTableRow } from "../store/schema.js";
import { assertCheckRunsWithin, assertUnderQuota, checkRunsPerHour, insertWithinQuota, lockQuotasOf } from "../store/quotas.js";
import { countTry } from "../rate-limits.js";

export interface MonitoredTableInput {
  connection_id: number;
  schema?: string | null | undefined;
  table: string;
  interval_seconds?: number | undefined;
  /** A cron expression, instead of `interval_seconds`, read in `timezone` (IANA, default UTC). */
  schedule?: string | undefined;
  timezone?: string | undefined;
  enabled?: boolean | undefined;
  checks?: CheckConfig[] | undefined;
  alert?: TableAlertConfig | undefined;
}

export type MonitoredTableUpdate = Partial<Omit<MonitoredTableInput, "connection_id">>;

/** Whether `update` points the monitored table `current` at another table or schema. */
export const movesTable = (current: { schema: string | null; table: string }, update: Pick<MonitoredTableUpdate, "schema" | "table">): boolean =>
  (update.table !== undefined && update.table !== current.table) || (update.schema !== undefined && update.schema !== current.schema);

export interface PublicMonitoredTable {
  id: number;
  owner_id: number;
  connection_id: number;
  schema: string | null;
  table: string;
  /** Null when the table runs on a schedule. */
  interval_seconds: number | null;
  schedule: string | null;
  timezone: string | null;
  enabled: boolean;
  checks: CheckConfig[];
  alert: { open_after: number; resolve_after: number };
  next_run_at: string;
  last_run_at: string | null;
  created_at: string;
  updated_at: string;
  /** Only in the answer to a create or an update: checks whose dry run was slow. */
  warnings?: string[];
}

export const DEFAULT_INTERVAL_SECONDS = 300;

export function publicMonitoredTable(row: MonitoredTableRow): PublicMonitoredTable {
  return {
    id: row.id,
    owner_id: row.ownerId,
    connection_id: row.connectionId,
    schema: row.schemaName,
    table: row.tableName,
    interval_seconds: row.schedule === null ? row.intervalSeconds : null,
    schedule: row.schedule,
    timezone: row.timezone,
    enabled: row.enabled,
    checks: row.checks,
    alert: {
      open_after: row.alertConfig.open_after ?? ALERT_DEFAULTS.openAfter,
      resolve_after: row.alertConfig.resolve_after ?? ALERT_DEFAULTS.resolveAfter,
    },
    next_run_at: row.nextRunAt.toISOString(),
    last_run_at: row.lastRunAt ? row.lastRunAt.toISOString() : null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

interface Issue {
  path: string;
  message: string;
}

/** The table as the database knows it: named schema, or the only table of that name. */
async function resolveTable(deps: Deps, connector: GuardedConnector, schema: string | null | undefined, table: string): Promise<TableSchema> {
  const matches = (tables: TableSchema[]) =>
    tables.filter((t) => t.name === table && (schema === undefined || schema === null || t.schema === schema));
  let found = matches((await connector.schema()).tables);
  if (found.length === 0) found = matches((await deps.monitoring.schemaOf(connector, 0)).tables);
  if (found.length === 0) throw invalidFields([{ path: "body.table", message: `no table ${schema ? `${schema}.` : ""}${table} in this database` }]);
  if (found.length > 1) {
    throw invalidFields([{ path: "body.schema", message: `${table} exists in several schemas (${found.map((t) => t.schema).join(", ")}): name one` }]);
  }
  return found[0]!;
}

/** How old the introspection a new table's schema snapshot comes from may be: tables added
 * together (a script adding a hundred) share one, which monitoring's budget pays for. */
const SNAPSHOT_MAX_AGE_MS = 60_000;

/** The table's columns as they are now, which a schema_drift check then holds the table to:
 * taken when the table is added, so that a change before its first run is drift too (the first
 * run used to take the snapshot, accepting whatever had changed since). */
async function columnsNow(deps: Deps, connector: GuardedConnector, table: TableSchema): Promise<ColumnSnapshot[]> {
  const now = (await deps.monitoring.schemaOf(connector, SNAPSHOT_MAX_AGE_MS)).tables.find((t) => t.schema === table.schema && t.name === table.name);
  return snapshotOf((now ?? table).columns);
}

/** What is wrong with `checks` on `table`: duplicates, unknown columns, SQL the guard refuses,
 * and then, for a check otherwise fine, what its dry run (monitoring/dry-run.ts) says; and the
 * checks whose dry run took longer than MONITOR_SLOW_CHECK_MS, as warnings (saved all the same:
 * the user is told what each run will cost their database). */
async function checkIssues(
  deps: Deps,
  connector: GuardedConnector,
  table: TableSchema,
  checks: CheckConfig[],
  requester: Requester,
): Promise<{ issues: Issue[]; warnings: string[] }> {
  const issues: Issue[] = [];
  const warnings: string[] = [];
  const keys = new Map<string, number>();
  // The dry runs of one save take at most what a run of the table may: fifty checks of ten
  // seconds each held the request for minutes.
  const runTimeoutMs = deps.monitoring.settings.runTimeoutMs;
  const deadline = performance.now() + runTimeoutMs;
  for (const [i, check] of checks.entries()) {
    const found = issues.length;
    const key = checkKey(check);
    const slot = checkSlot(check);
    if (keys.has(slot)) issues.push({ path: `body.checks.${i}`, message: `duplicates check ${keys.get(slot)} (${slot})` });
    keys.set(slot, i);
    for (const { column, field } of columnsOf(check)) {
      if (!table.columns.some((c) => c.name === column)) issues.push({ path: `body.checks.${i}.${field}`, message: `no column ${column} in ${table.name}` });
    }
    if (check.kind === "custom_sql") {
      const verdict = await connector.classify(check.sql);
      if (!verdict.ok) issues.push({ path: `body.checks.${i}.sql`, message: `refused by the SQL guard: ${verdict.reason}` });
    }
    if (issues.length > found) continue;
    if (performance.now() > deadline) {
      warnings.push(`check ${key} was saved untried: the dry runs before it passed MONITOR_RUN_TIMEOUT_MS (${runTimeoutMs} ms); its runs will say whether it works`);
      continue;
    }
    const { problem, ms, warning } = await dryRun(deps, connector, table, check, requester);
    const field = check.kind === "custom_sql" ? ".sql" : check.kind === "freshness" ? ".column" : "";
    if (problem !== null) {
      issues.push({ path: `body.checks.${i}${field}`, message: `check ${key} cannot work: ${problem}` });
      continue;
    }
    if (ms > deps.monitoring.settings.slowCheckMs) warnings.push(slowCheckWarning(key, check, ms, deps.monitoring.settings.slowCheckMs));
    if (warning) warnings.push(warning);
  }
  return { issues, warnings };
}

/** A check that took `ms` on its dry run, and what would make it cheap where Pulse knows. */
function slowCheckWarning(key: string, check: CheckConfig, ms: number, limitMs: number): string {
  const column = check.kind === "freshness" ? check.column : check.kind === "null_rate" ? check.recent_by : undefined;
  const cheaper = column ? `; an index on ${column} would make it cheap` : "";
  return `check ${key} took ${(ms / 1000).toFixed(1)} s on its dry run (over MONITOR_SLOW_CHECK_MS, ${limitMs} ms): each run will cost the monitored database about as much${cheaper}`;
}

/** Checks judged by a learned baseline (no fixed bounds given) that can never judge at this
 * timing: the baseline waits for `min_samples` runs, and MONITOR_RUN_RETENTION_DAYS keeps fewer
 * than that at this interval (a weekly table keeps 5 runs in 35 days, against the default 14).
 * Such a check stays "learning", and passes, for ever: said, as a warning, when it is saved. */
function baselineWarnings(deps: Deps, timing: TableTiming, checks: readonly CheckConfig[]): string[] {
  const days = deps.config.monitor.runRetentionDays;
  // A schedule's interval is its shortest gap, measured when it was set (scheduledTiming).
  const kept = Math.floor((days * 86_400) / timing.intervalSeconds);
  return checks.flatMap((check) => {
    const needed = "baseline" in check ? (check.baseline?.min_samples ?? BASELINE_DEFAULTS.minSamples) : BASELINE_DEFAULTS.minSamples;
    if (!judgedByBaseline(check) || needed <= kept) return [];
    return [
      `check ${checkKey(check)} is judged by a baseline that needs ${needed} runs, and MONITOR_RUN_RETENTION_DAYS (${days}) keeps ${kept} at this ${timing.schedule === null ? "interval" : "schedule"}: it will never judge, and will pass; give it fixed bounds or run it more often`,
    ];
  });
}

function checkInterval(deps: Deps, seconds: number) {
  const min = deps.config.monitor.minIntervalSeconds;
  if (seconds < min) throw invalidFields([{ path: "body.interval_seconds", message: `must be at least ${min} seconds` }]);
}

/** A cron schedule's timing, once its expression and zone are proven and it runs no closer
 * together than the minimum interval; the interval stored is its shortest gap. The expression is
 * kept without the spaces around it (a pasted line's newline), the zone in its usual spelling. */
function scheduledTiming(deps: Deps, sentSchedule: string, timezone: string): TableTiming {
  const schedule = sentSchedule.trim();
  const gap = scheduleGap(schedule, timezone, deps.monitoring.now());
  if ("field" in gap) throw invalidFields([{ path: `body.${gap.field}`, message: gap.message }]);
  const min = deps.config.monitor.minIntervalSeconds;
  if (gap.seconds < min) throw invalidFields([{ path: "body.schedule", message: `runs ${gap.seconds} s apart; runs must be at least ${min} seconds apart` }]);
  return { intervalSeconds: gap.seconds, schedule, timezone: zoneSpelling(timezone)! };
}

/** An interval or a schedule, never both; a time zone only goes with a schedule. */
function checkOneTiming(sent: Pick<MonitoredTableInput, "interval_seconds" | "schedule" | "timezone">, scheduled: boolean) {
  if (sent.schedule !== undefined && sent.interval_seconds !== undefined) {
    throw invalidFields([{ path: "body.schedule", message: "send either schedule or interval_seconds, not both" }]);
  }
  if (sent.timezone !== undefined && sent.schedule === undefined && !scheduled) {
    throw invalidFields([{ path: "body.timezone", message: "is the time zone of a schedule: send schedule with it" }]);
  }
}

/** `requester`: the API key saving it (null: a login), which the audit trail records with the
 * checks' dry runs, and the signal that stops them (its client gone, its credential revoked:
 * then nothing is saved). */
export async function createMonitoredTableOf(deps: Deps, ownerId: number, input: MonitoredTableInput, requester: Requester): Promise<PublicMonitoredTable> {
  checkOneTiming(input, false);
  let timing: TableTiming;
  if (input.schedule !== undefined) {
    timing = scheduledTiming(deps, input.schedule, input.timezone ?? DEFAULT_TIMEZONE);
  } else {
    timing = { intervalSeconds: input.interval_seconds ?? DEFAULT_INTERVAL_SECONDS, schedule: null, timezone: null };
    checkInterval(deps, timing.intervalSeconds);
  }
  await assertUnderQuota(deps.store.db, deps.config.quotas, ownerId, "monitoredTables");
  const connector = await connectorFor(deps, ownerId, input.connection_id);
  const table = await resolveTable(deps, connector, input.schema, input.table);
  const checks = input.checks?.map(savedCheck) ?? DEFAULT_CHECKS;
  const { issues, warnings } = await checkIssues(deps, connector, table, checks, requester);
  if (issues.length > 0) throw invalidFields(issues);
  warnings.push(...baselineWarnings(deps, timing, checks));
  const schemaSnapshot = checks.some((check) => check.kind === "schema_drift") ? await columnsNow(deps, connector, table) : null;
  // Revoked during its dry runs (seconds, for slow checks): a table saved now would run for ever.
  throwIfCancelled(requester.signal);
  const enabled = input.enabled ?? true;
  const row = await insertWithinQuota(deps.store.db, deps.config.quotas, ownerId, "monitoredTables", async (tx) => {
    if (enabled) await assertCheckRunsWithin(tx, deps.config.quotas, ownerId, { checks: checks.length, intervalSeconds: timing.intervalSeconds });
    return insertMonitoredTable(tx, {
      ownerId,
      connectionId: input.connection_id,
      schemaName: table.schema,
      tableName: table.name,
      ...timing,
      checks,
      alertConfig: input.alert ?? {},
      enabled,
      schemaSnapshot,
      // On an interval, first run within one interval, at a random point of it: tables added
      // together (a script adding a thousand) do not then all run in the same second of every
      // interval. On a schedule, at its next time, as asked.
      nextRunAt:
        timing.schedule === null
          ? new Date(deps.monitoring.now() + deps.monitoring.random() * timing.intervalSeconds * 1000)
          : nextRunAfter(deps.monitoring, timing, deps.monitoring.now()),
    });
  });
  return withWarnings(publicMonitoredTable(row), warnings);
}

/** A saved table's answer, with what its checks' dry runs warned of (only when they did). */
const withWarnings = (table: PublicMonitoredTable, warnings: string[]): PublicMonitoredTable =>
  warnings.length > 0 ? { ...table, warnings } : table;

/** The owner's tables by id, a page at a time: those after `afterId`, on `connectionIds` (an API
 * key's) if limited. */
export async function listMonitoredTablesOf(
  deps: Deps,
  ownerId: number,
  page: { afterId: number; limit: number; connectionIds: ReadonlySet<number> | "all" },
): Promise<PublicMonitoredTable[]> {
  const connectionIds = page.connectionIds === "all" ? "all" : [...page.connectionIds];
  return (await listMonitoredTables(deps.store.db, ownerId, { ...page, connectionIds })).map(publicMonitoredTable);
}

/** Full listings being read, by owner and what they may reach: asked again meanwhile (a client
 * retrying, several at once), they share the read, so one user holds at most one copy of
 * their tables (up to USER_MAX_MONITORED_TABLES, each up to 50 checks and 20,000 characters
 * of SQL) per kind of listing. */
const fullListings = new WeakMap<Deps["store"], Map<string, Promise<PublicMonitoredTable[]>>>();

/** All of the owner's tables by id (as many as USER_MAX_MONITORED_TABLES), on `connectionIds`
 * (an API key's) if limited. */
export function listAllMonitoredTablesOf(deps: Deps, ownerId: number, connectionIds: ReadonlySet<number> | "all"): Promise<PublicMonitoredTable[]> {
  let reading = fullListings.get(deps.store);
  if (!reading) fullListings.set(deps.store, (reading = new Map()));
  const key = `${ownerId}:${connectionIds === "all" ? "all" : [...connectionIds].sort((a, b) => a - b).join(",")}`;
  let listing = reading.get(key);
  if (!listing) {
    const limit = deps.config.quotas.monitoredTables;
    listing = listMonitoredTablesOf(deps, ownerId, { afterId: 0, limit, connectionIds }).finally(() => reading.delete(key));
    reading.set(key, listing);
  }
  return listing;
}

/** Each of the owner's tables' id, connection and name (no checks), on the connections
 * `reaches` accepts. */
export async function monitoredTableNamesOn(deps: Deps, ownerId: number, reaches: (connectionId: number) => boolean): Promise<MonitoredTableName[]> {
  return (await listMonitoredTableNames(deps.store.db, ownerId)).filter((t) => reaches(t.connectionId));
}

async function ownedTable(deps: Deps, ownerId: number, id: number): Promise<MonitoredTableRow> {
  const row = await getMonitoredTable(deps.store.db, ownerId, id);
  if (!row) throw notFound("Monitored table");
  return row;
}

export async function getMonitoredTableOf(deps: Deps, ownerId: number, id: number): Promise<PublicMonitoredTable> {
  return publicMonitoredTable(await ownedTable(deps, ownerId, id));
}

export async function updateMonitoredTableOf(
  deps: Deps,
  ownerId: number,
  id: number,
  update: MonitoredTableUpdate,
  /** As createMonitoredTableOf's. */
  requester: Requester,
): Promise<PublicMonitoredTable> {
  const row = await ownedTable(deps, ownerId, id);
  const patch: MonitoredTablePatch = {};
  let warnings: string[] = [];
  const now = deps.monitoring.now();
  checkOneTiming(update, row.schedule !== null);
  if (update.interval_seconds !== undefined && (update.interval_seconds !== row.intervalSeconds || row.schedule !== null)) {
    checkInterval(deps, update.interval_seconds);
    Object.assign(patch, { intervalSeconds: update.interval_seconds, schedule: null, timezone: null });
    patch.nextRunAt = new Date(Math.min(row.nextRunAt.getTime(), now + update.interval_seconds * 1000));
  }
  if (update.schedule !== undefined || update.timezone !== undefined) {
    // A new zone keeps the schedule; a new schedule keeps the zone it had (UTC from an interval).
    const timing = scheduledTiming(deps, update.schedule ?? row.schedule!, update.timezone ?? row.timezone ?? DEFAULT_TIMEZONE);
    // The same schedule sent again (a client PATCHing the whole table) keeps a run already due.
    const unchanged = timing.schedule === row.schedule && timing.timezone === row.timezone;
    Object.assign(patch, timing, { nextRunAt: unchanged ? row.nextRunAt : nextRunAfter(deps.monitoring, timing, now) });
  }
  if (update.enabled !== undefined) {
    patch.enabled = update.enabled;
    if (update.enabled && !row.enabled) patch.nextRunAt = new Date(now);
  }
  if (update.alert !== undefined) patch.alertConfig = update.alert;
  const retarget = movesTable({ schema: row.schemaName, table: row.tableName }, update);
  if (retarget || update.checks !== undefined) {
    const connector = await connectorFor(deps, ownerId, row.connectionId);
    const table = await resolveTable(deps, connector, retarget ? update.schema : row.schemaName, update.table ?? row.tableName);
    const checks = update.checks?.map(savedCheck) ?? row.checks;
    const checked = await checkIssues(deps, connector, table, checks, requester);
    if (checked.issues.length > 0) throw invalidFields(checked.issues);
    warnings = checked.warnings;
    patch.checks = checks;
    if (retarget) {
      Object.assign(patch, { schemaName: table.schema, tableName: table.name, schemaSnapshot: null, nextRunAt: new Date(now) });
    }
  }
  if (Object.keys(patch).length === 0) return publicMonitoredTable(row);
  if (patch.checks !== undefined || patch.intervalSeconds !== undefined || patch.schedule !== undefined || patch.timezone !== undefined) {
    const timing = { intervalSeconds: patch.intervalSeconds ?? row.intervalSeconds, schedule: patch.schedule !== undefined ? patch.schedule : row.schedule, timezone: patch.timezone !== undefined ? patch.timezone : row.timezone };
    warnings.push(...baselineWarnings(deps, timing, patch.checks ?? row.checks));
  }
  // As a save's (createMonitoredTableOf).
  throwIfCancelled(requester.signal);
  const keys = patch.checks?.map(checkKey);
  const ratesChange = patch.checks !== undefined || patch.intervalSeconds !== undefined || patch.enabled !== undefined;
  const updated = await removeWithAlerts(deps, async (tx) => {
    // The user's quota lock first (when the check runs an hour may grow), then the table's row,
    // as a run locks it (then its alerts): never the other way round.
    if (ratesChange) await lockQuotasOf(tx, ownerId);
    const current = await lockMonitoredTable(tx, ownerId, id);
    // The patch was made, and its checks tried, from the row read first: a change of the table
    // saved since (another PATCH: its checks, the table it watches, its timing) would be undone,
    // or leave checks never tried on the table it moved to.
    if (current && current.updatedAt.getTime() !== row.updatedAt.getTime()) throw changedMeanwhile(`Monitored table ${id}`);
    // More check runs an hour than the table makes now: counted against the user's others.
    if (current && ratesChange) {
      const before = current.enabled ? checkRunsPerHour({ checks: current.checks.length, intervalSeconds: current.intervalSeconds }) : 0;
      const after = { checks: (patch.checks ?? current.checks).length, intervalSeconds: patch.intervalSeconds ?? current.intervalSeconds };
      if ((patch.enabled ?? current.enabled) && checkRunsPerHour(after) > before) await assertCheckRunsWithin(tx, deps.config.quotas, ownerId, { ...after, replacing: id });
    }
    const table = current && (await updateMonitoredTable(tx, ownerId, id, patch));
    const doomed = table && keys ? (await lockAlertsOfTables(tx, ownerId, { tableId: id })).filter(({ alert }) => !keys.includes(alert.checkKey)) : [];
    return {
      doomed,
      by: "its check being removed",
      remove: async () => {
        if (table && keys) await deleteAlertsOfOtherChecks(tx, id, keys);
        return table;
      },
    };
  });
  if (!updated) throw notFound("Monitored table");
  return withWarnings(publicMonitoredTable(updated), warnings);
}

export async function removeMonitoredTable(deps: Deps, ownerId: number, id: number): Promise<void> {
  const removed = await removeWithAlerts(deps, async (tx) => {
    const table = await lockMonitoredTable(tx, ownerId, id);
    const doomed = table ? await lockAlertsOfTables(tx, ownerId, { tableId: id }) : [];
    return { doomed, by: "its table being deleted", remove: () => deleteMonitoredTable(tx, ownerId, id) };
  });
  if (!removed) throw notFound("Monitored table");
}

/** Runs the table's checks now, outside the schedule (which it leaves as it is); `conflict`
 * while another instance runs checks of its connection. Limited per user: each run records a
 * row per check, skipped ones too, so runs asked for without end would fill the store. */
export async function runMonitoredTableNow(deps: Deps, ownerId: number, id: number, requester: Requester): Promise<TableRunReport> {
  const perMinute = deps.config.monitor.manualRunsPerMinute;
  await countTry(deps, `manual-runs:user:${ownerId}`, { max: perMinute, windowSeconds: 60 }, `At most ${perMinute} runs asked for per minute (MONITOR_MANUAL_RUNS_PER_MINUTE); try again shortly`);
  return runTableNow(deps, await ownedTable(deps, ownerId, id), requester);
}

/** `pulse check`: runs a table's checks now for the operator, whoever owns the table (a shell
 * has no user); null when no table has that id, or it was deleted before its lease was taken
 * (runTableNow's `not_found`). `conflict` as above. */
export async function runAnyMonitoredTableNow(deps: Deps, id: number): Promise<TableRunReport | null> {
  const table = await findMonitoredTable(deps.store.db, id);
  if (!table) return null;
  try {
    return await runTableNow(deps, table, { apiKeyId: null });
  } catch (err) {
    if (err instanceof DomainError && err.code === "not_found") return null;
    throw err;
  }
}

export async function listRunsOf(
  deps: Deps,
  ownerId: number,
  id: number,
  options: { limit: number; check?: string | undefined; before?: PageBefore | undefined },
): Promise<CheckOutcome[]> {
  const row = await ownedTable(deps, ownerId, id);
  const runs = await listCheckRuns(deps.store.db, row.id, { limit: options.limit, checkKey: options.check, before: options.before });
  return runs.map(outcomeOf);
}
