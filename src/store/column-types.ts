// The shapes kept in the JSON columns of monitored tables (schema.ts): each check's config, the
// table's alert settings, the schema drift snapshot. A leaf that imports nothing of Pulse's, so
// the store, the monitoring engine and the verbs all read one definition.

/** Which way a learned baseline calls a value anomalous. */
export type Direction = "spike" | "drop" | "both";

/** The season a learned baseline keeps apart (monitoring/season-phases.ts). */
export type Seasonality = "none" | "hour_of_day" | "day_of_week" | "hour_and_weekday";

/** Learned limits (src/monitoring/baselines.ts); every field falls back to its defaults. */
export interface BaselineSettings {
  sensitivity?: number | undefined;
  direction?: Direction | undefined;
  min_samples?: number | undefined;
  seasonality?: Seasonality | "auto" | undefined;
  /** History points considered (the newest ones). */
  window_points?: number | undefined;
}

export interface FreshnessCheck {
  kind: "freshness";
  /** A timestamp (or epoch number) column; `max(column)` is read, so index it. */
  column: string;
  /** Fixed limit on the data lag; without it the limit is learned from past lags. */
  max_lag_seconds?: number | undefined;
  /** The IANA zone the column's values without a time zone are in (default UTC). */
  timezone?: string | undefined;
  baseline?: BaselineSettings | undefined;
}

export interface VolumeCheck {
  kind: "volume";
  /** Fixed bounds; without them the row count is judged against its learned baseline. */
  min_rows?: number | undefined;
  max_rows?: number | undefined;
  /** Tables whose catalog estimate is under this are counted exactly (bounded count). */
  exact_count_below?: number | undefined;
  baseline?: BaselineSettings | undefined;
}

export interface NullRateCheck {
  kind: "null_rate";
  column: string;
  /** Fixed limit (0..1); without it the rate is judged against its learned baseline. */
  max_rate?: number | undefined;
  /** Rows looked at, at most (a bounded sample, never a full scan of a big table). */
  sample_rows?: number | undefined;
  /** Sample the newest rows by this column (index it) instead of whichever rows come first. */
  recent_by?: string | undefined;
  baseline?: BaselineSettings | undefined;
}

export interface SchemaDriftCheck {
  kind: "schema_drift";
}

export interface CustomSqlCheck {
  kind: "custom_sql";
  /** Names the check among the table's custom checks. */
  name: string;
  /** One read statement returning one row with one number; it goes through the SQL guard. */
  sql: string;
  min?: number | undefined;
  max?: number | undefined;
}

export type CheckConfig = FreshnessCheck | VolumeCheck | NullRateCheck | SchemaDriftCheck | CustomSqlCheck;
export type CheckKind = CheckConfig["kind"];

export interface TableAlertConfig {
  /** Consecutive failures that open an alert (default 2). */
  open_after?: number | undefined;
  /** Consecutive successes that resolve it (default 2). */
  resolve_after?: number | undefined;
}

/** One column as schema drift remembers it. */
export interface ColumnSnapshot {
  name: string;
  type: string;
  nullable: boolean;
}
