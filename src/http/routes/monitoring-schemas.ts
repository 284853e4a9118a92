// Shapes of the monitoring API (seeds 001/003): monitored tables and their checks, check
// runs, alerts, notification channels. Shared by the three monitoring routers.

import { z } from "@hono/zod-openapi";

import { BASELINE_DEFAULTS } from "../../monitoring/baselines.js";
import { zoneSpelling } from "../../monitoring/schedule.js";
import { givenName, RowId } from "../schemas.js";

const ColumnName = z.string().min(1).max(128);

const DEFAULTS = BASELINE_DEFAULTS;

const Baseline = z
  .object({
    sensitivity: z.number().positive().max(100).optional().openapi({ description: `Robust z beyond which a value is anomalous (default ${DEFAULTS.sensitivity})` }),
    direction: z.enum(["spike", "drop", "both"]).optional(),
    min_samples: z
      .number()
      .int()
      .min(3)
      .max(10_000)
      .optional()
      .openapi({ description: `History points needed before judging (default ${DEFAULTS.minSamples}); at most window_points` }),
    seasonality: z.enum(["auto", "none", "hour_of_day", "day_of_week", "hour_and_weekday"]).optional().openapi({
      description: "auto (default) waits for a week of history and keeps a seasonal model only when it predicts better",
    }),
    window_points: z
      .number()
      .int()
      .min(3)
      .max(5000)
      .optional()
      .openapi({ description: `History points the baseline is learned from (default ${DEFAULTS.window.points}, and no older than MONITOR_RUN_RETENTION_DAYS)` }),
  })
  .strict()
  // A window never holds more points than its size: the check would stay learning, and pass, for ever.
  .refine((b) => (b.min_samples ?? DEFAULTS.minSamples) <= (b.window_points ?? DEFAULTS.window.points), {
    path: ["min_samples"],
    message: `must be at most window_points (default ${DEFAULTS.window.points}): a baseline never holds more points than its window, so it would never judge`,
  })
  .openapi("BaselineSettings");

const bounds = (v: { min?: number | undefined; max?: number | undefined }) => v.min === undefined || v.max === undefined || v.min <= v.max;

export const CheckSchema = z
  .discriminatedUnion("kind", [
    z
      .object({
        kind: z.literal("freshness"),
        column: ColumnName.openapi({ description: "Timestamp column whose max() is read (index it)" }),
        max_lag_seconds: z.number().positive().optional().openapi({ description: "Fixed limit; without it the limit is learned" }),
        timezone: z
          .string()
          .min(1)
          .max(64)
          .refine((zone) => zoneSpelling(zone) !== null, { error: (issue) => `unknown time zone ${String(issue.input)}: use an IANA name such as America/New_York or UTC` })
          .optional()
          .openapi({
            description: "The IANA time zone the column's values without one (timestamp, DATETIME, SQLite text) were written in; default UTC",
            example: "America/New_York",
          }),
        baseline: Baseline.optional(),
      })
      .strict(),
    z
      .object({
        kind: z.literal("volume"),
        min_rows: z.number().min(0).optional(),
        max_rows: z.number().min(0).optional(),
        exact_count_below: z.number().int().min(0).max(10_000_000).optional().openapi({
          description: "Tables estimated under this many rows are counted exactly (default 100000)",
        }),
        baseline: Baseline.optional(),
      })
      .strict()
      .refine((v) => bounds({ min: v.min_rows, max: v.max_rows }), { message: "min_rows must not exceed max_rows", path: ["min_rows"] }),
    z
      .object({
        kind: z.literal("null_rate"),
        column: ColumnName,
        max_rate: z.number().min(0).max(1).optional(),
        sample_rows: z.number().int().min(1).max(10_000_000).optional(),
        recent_by: ColumnName.optional().openapi({ description: "Sample the newest rows by this column" }),
        baseline: Baseline.optional(),
      })
      .strict(),
    z.object({ kind: z.literal("schema_drift") }).strict(),
    z
      .object({
        kind: z.literal("custom_sql"),
        name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - (at most 64)"),
        sql: z.string().min(1).max(10_000).openapi({ example: "SELECT count(*) FROM orders WHERE total < 0" }),
        min: z.number().optional(),
        max: z.number().optional(),
      })
      .strict()
      .refine((v) => v.min !== undefined || v.max !== undefined, { message: "give min, max or both", path: ["max"] })
      .refine(bounds, { message: "min must not exceed max", path: ["min"] }),
  ])
  .openapi("Check");

/** Characters of custom SQL one table's checks may hold together. */
export const MAX_CUSTOM_SQL_CHARS_PER_TABLE = 20_000;
const customSqlChars = (checks: z.infer<typeof CheckSchema>[]) => checks.reduce((sum, check) => sum + (check.kind === "custom_sql" ? check.sql.length : 0), 0);

const AlertSettings = z
  .object({
    open_after: z.number().int().min(1).max(100).optional().openapi({ description: "Consecutive failures that open an alert (default 2)" }),
    resolve_after: z.number().int().min(1).max(100).optional().openapi({ description: "Consecutive successes that resolve it (default 2)" }),
  })
  .strict();

const tableFields = {
  schema: z.string().min(1).max(128).nullable().optional().openapi({ description: "Default: the only table of that name", example: "public" }),
  table: z.string().min(1).max(128).openapi({ example: "orders" }),
  interval_seconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 86_400)
    .optional()
    .openapi({ description: "Default 300 (unless `schedule` is given); at least MONITOR_MIN_INTERVAL_SECONDS", example: 300 }),
  schedule: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ description: "A cron expression to run on instead of `interval_seconds` (not both); runs no closer than MONITOR_MIN_INTERVAL_SECONDS", example: "0 * * * *" }),
  timezone: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({ description: "The IANA time zone `schedule` is read in; default UTC", example: "Europe/Paris" }),
  enabled: z.boolean().optional(),
  checks: z
    .array(CheckSchema)
    .min(1)
    .max(50)
    // Each table's checks are kept and listed whole: without this a user's tables could carry
    // a gigabyte of SQL (50 checks of 10,000 characters, times USER_MAX_MONITORED_TABLES).
    .refine((checks) => customSqlChars(checks) <= MAX_CUSTOM_SQL_CHARS_PER_TABLE, {
      message: `the custom_sql checks of a table may hold ${MAX_CUSTOM_SQL_CHARS_PER_TABLE} characters of SQL together`,
    })
    .optional()
    .openapi({ description: `Default: volume and schema_drift. At most 50, with ${MAX_CUSTOM_SQL_CHARS_PER_TABLE} characters of custom SQL together` }),
  alert: AlertSettings.optional(),
};

export const NewTableBody = z
  .object({ connection_id: RowId.openapi({ example: 1 }), ...tableFields })
  .openapi("NewMonitoredTable");

export const TableUpdateBody = z.object({ ...tableFields, table: tableFields.table.optional() }).openapi("MonitoredTableUpdate");

export const MonitoredTableSchema = z
  .object({
    id: z.number().int(),
    owner_id: z.number().int(),
    connection_id: z.number().int(),
    schema: z.string().nullable(),
    table: z.string(),
    interval_seconds: z.number().int().nullable().openapi({ description: "Null when the table runs on a `schedule`" }),
    schedule: z.string().nullable(),
    timezone: z.string().nullable(),
    enabled: z.boolean(),
    checks: z.array(CheckSchema),
    alert: z.object({ open_after: z.number().int(), resolve_after: z.number().int() }),
    next_run_at: z.string(),
    last_run_at: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    warnings: z
      .array(z.string())
      .optional()
      .openapi({
        description:
          "Only in the answer to a create or an update, saved all the same: checks whose dry run took longer than MONITOR_SLOW_CHECK_MS, and checks whose baseline can never judge at this interval (MONITOR_RUN_RETENTION_DAYS keeps fewer runs than it needs)",
      }),
  })
  .openapi("MonitoredTable");

export const CheckRunSchema = z
  .object({
    run_id: z.number().int().nullable(),
    check: z.string().openapi({ example: "volume" }),
    kind: z.enum(["freshness", "volume", "null_rate", "schema_drift", "custom_sql"]),
    status: z.enum(["pass", "fail", "error", "skipped"]),
    value: z.number().nullable().openapi({ description: "The metric: rows, data lag in seconds, null rate, changed columns, the custom number" }),
    expected: z.number().nullable(),
    lower: z.number().nullable(),
    upper: z.number().nullable(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).nullable(),
    started_at: z.string(),
    finished_at: z.string(),
  })
  .openapi("CheckRun");

export const RunReportSchema = z
  .object({
    table_id: z.number().int(),
    trigger: z.enum(["schedule", "manual"]),
    started_at: z.string(),
    finished_at: z.string(),
    target: z.object({ replica: z.boolean(), replication_lag_seconds: z.number().nullable() }).nullable(),
    outcomes: z.array(CheckRunSchema),
    notifications_queued: z.number().int(),
  })
  .openapi("TableRun");

export const ALERT_STATUSES = ["open", "acknowledged", "muted", "resolving", "resolved"] as const;

export const AlertSchema = z
  .object({
    id: z.number().int(),
    table_id: z.number().int(),
    check: z.string(),
    check_kind: z.string(),
    status: z.enum([...ALERT_STATUSES, "failing", "ok"]),
    sequence: z.number().int().openapi({ description: "Incident number of this check's alert" }),
    flapping: z.boolean(),
    consecutive_failures: z.number().int(),
    opened_at: z.string().nullable(),
    acknowledged_at: z.string().nullable(),
    acknowledged_by: z.string().nullable(),
    muted_until: z.string().nullable(),
    resolved_at: z.string().nullable(),
    last_detail: z.string().nullable(),
    updated_at: z.string(),
  })
  .openapi("Alert", {
    example: {
      id: 12,
      table_id: 4,
      check: "volume",
      check_kind: "volume",
      status: "open",
      sequence: 2,
      flapping: false,
      consecutive_failures: 3,
      opened_at: "2026-12-03T09:15:00.000Z",
      acknowledged_at: null,
      acknowledged_by: null,
      muted_until: null,
      resolved_at: null,
      last_detail: "1,204 rows arrived in the last hour; expected 9,800 to 11,300",
      updated_at: "2026-12-03T09:15:00.000Z",
    },
  });

export const ChannelSchema = z
  .object({
    id: z.number().int(),
    kind: z.enum(["webhook", "slack"]),
    name: z.string(),
    url_hint: z.string().openapi({ example: "https://hooks.slack.com/…" }),
    enabled: z.boolean(),
    created_at: z.string(),
  })
  .openapi("NotificationChannel");

export const NewChannelBody = z
  .object({
    kind: z.enum(["webhook", "slack"]),
    name: givenName(200).optional(),
    url: z
      // Worded for a URL that does not parse only: the length has its own message.
      .url({ protocol: /^https?$/, error: (issue) => (issue.code === "invalid_format" ? "must be an http(s) URL" : undefined) })
      .max(2048)
      .openapi({ example: "https://hooks.slack.com/services/T000/B000/XXXX" }),
  })
  .openapi("NewNotificationChannel");

export const ChannelUpdateBody = z
  .object({
    name: givenName(200).optional(),
    enabled: z.boolean().optional().openapi({ description: "A disabled channel is sent nothing, including notifications still queued for it" }),
  })
  .openapi("NotificationChannelUpdate", { example: { name: "Ops (paused)", enabled: false } });
