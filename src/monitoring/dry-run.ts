// A check run once before it is saved (POST and PATCH /api/tables), so a check that can never
// work (custom SQL with a typo'd column or no row, freshness of a text column) is refused with
// its reason instead of failing at every run. Its statements go through the guarded connector
// under the monitoring budget and are audited like any check's; nothing is recorded as a run
// and no alert hears of it.

import type { GuardedConnector, Requester } from "../connectors/guarded.js";
import type { TableSchema } from "../connectors/types.js";
import type { Deps } from "../deps.js";
import { DomainError } from "../errors.js";
import type { CheckConfig } from "../store/column-types.js";
import { judgeBaseline } from "./baselines.js";
import { formatDuration } from "./freshness.js";
import { runCustomSql } from "./checks/custom-sql.js";
import { runFreshness } from "./checks/freshness.js";
import { runNullRate } from "./checks/null-rate.js";
import type { CheckContext, CheckResult } from "./checks/types.js";

/** Database errors that say the check itself is wrong (not that the database is away or busy). */
const CHECK_ERRORS = new Set(["sql_failed", "sql_refused", "query_timeout", "result_too_large"]);

/** Types whose max() is a point in time: timestamps, dates, epoch numbers. SQLite declares
 * any type (or none) for anything, so there the values decide (the dry run reads them). Not
 * MySQL's YEAR: its 2026 is no epoch number, and a year is no timestamp to measure a lag from. */
const TIMESTAMP_TYPE = /^(timestamp|datetime|date|integer|(tiny|small|medium|big)?int|int\d|numeric|decimal|double|real|float)\b/i;

export interface DryRun {
  /** Why the check cannot work on the table, or null when it went through (pass or fail). */
  problem: string | null;
  /** How long its statements ran on the database (a wait for the monitoring budget not
   * counted): about what each run will cost the monitored database. */
  ms: number;
  /** What the check found that will make it judge wrong, though it works. */
  warning?: string | undefined;
}

const NO_STATEMENT: DryRun = { problem: null, ms: 0 };

/** A newest timestamp further ahead than this is no clock's drift: local time read as UTC (every
 * zone but UTC's is at least half an hour off it), or rows stamped for later. */
const AHEAD_WARNING_MS = 15 * 60_000;

/** `check` run once on `table`, nothing recorded (but in the audit trail, with the API key
 * that saved it: a custom_sql check's dry run reads what its SQL asks). */
export async function dryRun(deps: Deps, connector: GuardedConnector, table: TableSchema, check: CheckConfig, requester: Requester): Promise<DryRun> {
  // Neither names a column or a statement of the user's: drift reads the introspection done
  // already, volume the catalog, whose only complaint (no row estimate yet) the table outgrows.
  if (check.kind === "schema_drift" || check.kind === "volume") return NO_STATEMENT;
  if (check.kind === "freshness" && connector.dialect !== "sqlite") {
    const type = table.columns.find((c) => c.name === check.column)?.type ?? "";
    if (!TIMESTAMP_TYPE.test(type)) return { problem: `column ${check.column} is ${type}, not a timestamp, date or epoch number`, ms: 0 };
  }
  const m = deps.monitoring;
  let ms = 0;
  const ctx: CheckContext = {
    connector,
    table,
    now: m.now(),
    query: async (sql, maxRows = 1) => {
      const result = await connector.query(sql, { maxRows, timeoutMs: m.settings.statementTimeoutMs, budget: m.budgetFor(connector), source: "monitor", ...requester });
      ms += result.execution_time_ms;
      return result;
    },
    // No history yet: a learned baseline is still learning.
    judgeBaseline: async (point, options) => judgeBaseline([], point, options),
    replicationLagSeconds: async () => 0,
  };
  let result: CheckResult;
  try {
    result = await run(ctx, check);
  } catch (err) {
    if (err instanceof DomainError && CHECK_ERRORS.has(err.code)) return { problem: err.message, ms: Math.round(ms) };
    throw err;
  }
  if (result.status === "error") return { problem: result.message, ms: Math.round(ms) };
  return { problem: null, ms: Math.round(ms), warning: check.kind === "freshness" ? aheadWarning(check.column, result, ctx.now) : undefined };
}

/** Up to a day ahead reads as fresh (freshness.ts), which hides a lag of as long: a column
 * written in local time, read as UTC, passes for hours after its feed stopped. Said once, when
 * the check is saved. */
function aheadWarning(column: string, result: CheckResult, now: number): string | undefined {
  const latest = Date.parse(String(result.details?.latest));
  if (!(latest - now > AHEAD_WARNING_MS)) return undefined;
  return `check freshness:${column}: its newest value, ${new Date(latest).toISOString()}, is ${formatDuration((latest - now) / 1000)} ahead of now, and reads as fresh: if the column holds local time without a time zone (read as UTC unless the check's timezone says otherwise), a feed that stopped will pass for as long; give the check the column's timezone, store UTC or a time zone, or watch another column`;
}

function run(ctx: CheckContext, check: Exclude<CheckConfig, { kind: "schema_drift" | "volume" }>): Promise<CheckResult> {
  switch (check.kind) {
    case "freshness":
      return runFreshness(ctx, check);
    case "null_rate":
      return runNullRate(ctx, check);
    case "custom_sql":
      return runCustomSql(ctx, check);
  }
}

