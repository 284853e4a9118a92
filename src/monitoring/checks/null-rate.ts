// Null rate of a column over a bounded sample: the newest `sample_rows` rows by `recent_by`
// when given (an index on it makes this cheap), else the first rows the scan returns. Never
// a full scan of a big table. A row without a `recent_by` value is not among the newest:
// PostgreSQL sorts NULLs first in a descending order, so its sample was the rows without one
// (`NULLS LAST` would cost the index, which `IS NOT NULL` keeps).

import type { Dialect } from "../../connectors/types.js";
import type { NullRateCheck } from "../../store/column-types.js";
import { judgedByBaseline } from "../check-config.js";
import { judgeAgainstBaseline, judgeFixedBounds } from "./judging.js";
import { qualifiedName, quoteIdent } from "../../connectors/sql-text.js";
import { firstRow, numberOf, type CheckContext, type CheckResult } from "./types.js";

export const NULL_RATE_SAMPLE_ROWS = 100_000;

export function nullRateStatement(
  dialect: Dialect,
  schema: string | null,
  table: string,
  column: string,
  sampleRows: number,
  recentBy?: string,
): string {
  const col = quoteIdent(dialect, column);
  const recent = recentBy ? quoteIdent(dialect, recentBy) : null;
  const newest = recent ? ` WHERE ${recent} IS NOT NULL ORDER BY ${recent} DESC` : "";
  return `SELECT count(*) AS total, count(${col}) AS non_null FROM (SELECT ${col} FROM ${qualifiedName(dialect, schema, table)}${newest} LIMIT ${sampleRows}) sample`;
}

const percent = (rate: number) => `${(rate * 100).toFixed(rate < 0.001 && rate > 0 ? 3 : 1)}%`;

export async function runNullRate(ctx: CheckContext, check: NullRateCheck): Promise<CheckResult> {
  const sampleRows = check.sample_rows ?? NULL_RATE_SAMPLE_ROWS;
  const sql = nullRateStatement(ctx.connector.dialect, ctx.table.schema, ctx.table.name, check.column, sampleRows, check.recent_by);
  const row = firstRow(await ctx.query(sql, 1)) ?? {};
  const total = numberOf(row.total) ?? 0;
  const nonNull = numberOf(row.non_null) ?? 0;
  if (total === 0) {
    const none = check.recent_by ? `the table has no row with a ${check.recent_by} value` : "the table is empty";
    return { status: "pass", value: null, message: `${none}: no null rate to judge` };
  }
  const rate = (total - nonNull) / total;
  const details = { sampled_rows: total, null_rows: total - nonNull };
  const label = `null rate of ${check.column}`;
  if (!judgedByBaseline(check)) return { ...judgeFixedBounds(rate, undefined, check.max_rate, label, percent), details };
  const judged = await judgeAgainstBaseline(ctx, rate, check.baseline, {
    label,
    direction: "spike",
    model: "level",
    formatValue: percent,
    // A rate moving by less than half a percentage point is noise, not an incident.
    minDeviation: { absolute: 0.005, relative: 0.1 },
  });
  return { ...judged, details: { ...judged.details, ...details } };
}
