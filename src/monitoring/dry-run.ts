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
}

const NO_STATEMENT: DryRun = { problem: null, ms: 0 };

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
  return { problem: result.status === "error" ? result.message : null, ms: Math.round(ms) };
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

