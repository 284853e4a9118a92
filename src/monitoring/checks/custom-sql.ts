// Custom SQL: the user's own read statement returning one number, judged against bounds.
// It goes through the SQL guard like any other statement, so a write is refused there.

import type { CustomSqlCheck } from "../../store/column-types.js";
import { judgeFixedBounds } from "./judging.js";
import { numberOf, printedCell, type CheckContext, type CheckResult } from "./types.js";

export async function runCustomSql(ctx: CheckContext, check: CustomSqlCheck): Promise<CheckResult> {
  const result = await ctx.query(check.sql, 2);
  const first = result.rows[0];
  if (result.rows.length !== 1 || result.truncated || !first) {
    return { status: "error", value: null, message: `the statement must return exactly one row; it returned ${result.truncated ? "more than one" : result.rows.length}` };
  }
  if (first.length === 0) return { status: "error", value: null, message: "the statement returned no column: select the number to judge" };
  const value = numberOf(first[0]);
  // sum() and max() over no rows (a window empty for now) give NULL, not 0.
  if (first[0] === null) {
    return { status: "error", value: null, message: "the statement returned NULL, not a number: an aggregate over no rows? Wrap it in COALESCE(..., 0) if none means 0" };
  }
  if (value === null) {
    return { status: "error", value: null, message: `the statement's first column must be a number; it was ${printedCell(first[0])}` };
  }
  return judgeFixedBounds(value, check.min, check.max, check.name);
}
