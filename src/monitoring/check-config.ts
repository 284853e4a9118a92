// What a monitored table asks to have checked: the kinds of check, the checks a table gets by
// default, the key that names a check's series, runs and alert, and the columns a check reads.
// The stored shapes themselves are in store/column-types.ts.

import type { CheckConfig, CheckKind } from "../store/column-types.js";
import { canonicalZone, DEFAULT_TIMEZONE } from "./schedule.js";

export const CHECK_KINDS: readonly CheckKind[] = ["freshness", "volume", "null_rate", "schema_drift", "custom_sql"];

/** The checks a new monitored table gets when it names none: both need no column. */
export const DEFAULT_CHECKS: CheckConfig[] = [{ kind: "volume" }, { kind: "schema_drift" }];

/** Names a check within its table: the kind, plus the column or name where a table may have
 * several (freshness of `created_at` and of `updated_at` are two checks, two series, two alerts).
 * A freshness check read in a zone other than UTC has it in its name: its column's values read
 * as other instants, so its lags are another series, learned anew (lags learned from wall-clock
 * times read in the wrong zone would take hours of lag for normal, or none). */
export function checkKey(check: CheckConfig): string {
  switch (check.kind) {
    case "freshness":
      return check.timezone === undefined || check.timezone === DEFAULT_TIMEZONE ? checkSlot(check) : `${checkSlot(check)}@${check.timezone}`;
    case "null_rate":
      return `null_rate:${check.column}`;
    case "custom_sql":
      return `custom_sql:${check.name}`;
    default:
      return check.kind;
  }
}

/** What a table has one check of at most: a kind, with its column or name where it may have
 * several (one freshness check of a column, whatever zone it reads it in). */
export function checkSlot(check: CheckConfig): string {
  return check.kind === "freshness" ? `freshness:${check.column}` : checkKey(check);
}

/** `check` as saved: a freshness check's zone by its canonical name (US/Eastern as
 * America/New_York, Etc/UTC as UTC), so that one check has one name (checkKey) however its zone
 * was written. */
export function savedCheck(check: CheckConfig): CheckConfig {
  if (check.kind !== "freshness" || check.timezone === undefined) return check;
  return { ...check, timezone: canonicalZone(check.timezone) ?? check.timezone };
}

/** Columns a check reads from the monitored table (validated against its introspected schema). */
export function columnsOf(check: CheckConfig): { column: string; field: string }[] {
  switch (check.kind) {
    case "freshness":
      return [{ column: check.column, field: "column" }];
    case "null_rate":
      return [
        { column: check.column, field: "column" },
        ...(check.recent_by ? [{ column: check.recent_by, field: "recent_by" }] : []),
      ];
    default:
      return [];
  }
}

/** Whether a check is judged by its learned baseline: a volume, freshness or null-rate check
 * given no fixed bounds. The runners judge by it, and saving warns when it can never judge. */
export function judgedByBaseline(check: CheckConfig): boolean {
  switch (check.kind) {
    case "volume":
      return check.min_rows === undefined && check.max_rows === undefined;
    case "freshness":
      return check.max_lag_seconds === undefined;
    case "null_rate":
      return check.max_rate === undefined;
    default:
      return false;
  }
}
