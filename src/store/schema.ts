// Drizzle schema of Pulse's own metadata (PostgreSQL dialect, also served by PGlite).
// `npm run db:generate` turns changes here into a migration under migrations/.

import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  pgView,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

import type { Scope } from "../auth/grants.js";
import { STATEMENT_SOURCES } from "../connectors/statement-recorder.js";
import type { CheckConfig, ColumnSnapshot, TableAlertConfig } from "./column-types.js";

/** updated_at of a row changed by the API: later than before by a millisecond at least, whatever
 * the clock says (PGlite's now() ticks in milliseconds, and drizzle reads microseconds as
 * milliseconds), so that a change made from the row as read tells a change saved since
 * (updateConnection, updateMonitoredTableOf: 409). */
const changedAt = () => sql`greatest(now(), "updated_at" + interval '1 millisecond')`;

export const users = pgTable(
  "users",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    name: text("name").notNull(),
    /** Stored lower-cased, so uniqueness is case-insensitive. */
    email: text("email").notNull(),
    passwordHash: text("password_hash").notNull(),
    /** Carried by every token as `gen`: raising it (password change) revokes all the user's
     * tokens at once. */
    tokenGeneration: integer("token_generation").notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("users_email_key").on(t.email)],
);

export const dbConnections = pgTable(
  "db_connections",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    dbType: text("db_type", { enum: ["postgresql", "mysql", "sqlite"] }).notNull(),
    host: text("host").notNull().default(""),
    port: integer("port").notNull().default(0),
    databaseName: text("database_name").notNull(),
    username: text("username").notNull().default(""),
    /** AES-256-GCM sealed password (src/auth/secrets.ts); never the clear text. */
    passwordSealed: text("password_sealed").notNull(),
    ssl: boolean("ssl").notNull().default(false),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true })
      .notNull()
      .defaultNow()
      .$onUpdate(changedAt),
  },
  (t) => [index("db_connections_owner_idx").on(t.ownerId)],
);

/** Sessions logged out before their token expired. A row is needed only until then: past
 * `expires_at` the token is refused anyway, and the row is pruned. */
export const revokedSessions = pgTable(
  "revoked_sessions",
  {
    sessionId: text("session_id").primaryKey(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (t) => [index("revoked_sessions_expires_idx").on(t.expiresAt)],
);

/** API keys: long-lived credentials of a user for scripts and AI clients. Only the SHA-256 of
 * the secret is kept (it is 256 random bits, so no slow hash is needed); `prefix` and
 * `lastFour` are what may be shown to recognise it. Revoking deletes the row. */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    /** Hex SHA-256 of the whole key. */
    secretHash: text("secret_hash").notNull(),
    prefix: text("prefix").notNull(),
    lastFour: text("last_four").notNull(),
    scopes: text("scopes").array().$type<Scope[]>().notNull(),
    /** The connections the key may reach; null for all of its owner's. Ids of connections
     * deleted since stay listed: they are never reused, and an emptied list must not widen. */
    connectionIds: integer("connection_ids").array(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("api_keys_secret_hash_key").on(t.secretHash), index("api_keys_owner_idx").on(t.ownerId)],
);

export type UserRow = typeof users.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type DbConnectionRow = typeof dbConnections.$inferSelect;

// ---- Monitoring: monitored tables, their check runs, alerts, notification channels. ----

export const monitoredTables = pgTable(
  "monitored_tables",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    connectionId: integer("connection_id")
      .notNull()
      .references(() => dbConnections.id, { onDelete: "cascade" }),
    /** PostgreSQL schema / MySQL database; null for SQLite (and "the connection's default"). */
    schemaName: text("schema_name"),
    tableName: text("table_name").notNull(),
    /** Every this many seconds; for a table on a cron `schedule`, that schedule's shortest gap. */
    intervalSeconds: integer("interval_seconds").notNull(),
    /** A cron expression the table runs on instead of its interval, read in `timezone` (IANA). */
    schedule: text("schedule"),
    timezone: text("timezone"),
    checks: jsonb("checks").$type<CheckConfig[]>().notNull(),
    alertConfig: jsonb("alert_config").$type<TableAlertConfig>().notNull().default({}),
    enabled: boolean("enabled").notNull().default(true),
    nextRunAt: timestamp("next_run_at", { withTimezone: true }).notNull(),
    lastRunAt: timestamp("last_run_at", { withTimezone: true }),
    /** Scheduler lease: the instance running this table's checks, until when. */
    leaseOwner: text("lease_owner"),
    leaseUntil: timestamp("lease_until", { withTimezone: true }),
    /** Columns accepted as the table's shape, for schema drift (null until the first run). */
    schemaSnapshot: jsonb("schema_snapshot").$type<ColumnSnapshot[]>(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true })
      .notNull()
      .defaultNow()
      .$onUpdate(changedAt),
  },
  (t) => [
    index("monitored_tables_owner_idx").on(t.ownerId),
    index("monitored_tables_connection_idx").on(t.connectionId),
    // The scheduler's claim scans due, enabled tables in next_run_at order.
    index("monitored_tables_due_idx").on(t.nextRunAt).where(sql`${t.enabled}`),
  ],
);

export const checkRuns = pgTable(
  "check_runs",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    /** No foreign key: a table's history can be millions of runs, and a cascade would delete
     * them in the statement that deletes the table (or its connection, or its owner), past the
     * store's statement timeout. The runs of a table that is gone are purged in batches by the
     * scheduler instead (purgeOrphanedRuns); ids are never reused, and nothing reads runs but
     * through their table. */
    tableId: integer("table_id").notNull(),
    /** Which check of the table: "volume", "freshness:updated_at", "schema_drift", "null_rate:email", "custom_sql:name". */
    checkKey: text("check_key").notNull(),
    checkKind: text("check_kind").notNull(),
    status: text("status", { enum: ["pass", "fail", "error", "skipped"] }).notNull(),
    value: doublePrecision("value"),
    expected: doublePrecision("expected"),
    lowerBound: doublePrecision("lower_bound"),
    upperBound: doublePrecision("upper_bound"),
    /** Judged anomalous: kept out of the baseline's training set. */
    anomalous: boolean("anomalous").notNull().default(false),
    message: text("message").notNull(),
    details: jsonb("details").$type<Record<string, unknown>>(),
    trigger: text("trigger", { enum: ["schedule", "manual"] }).notNull(),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull(),
    finishedAt: timestamp("finished_at", { withTimezone: true }).notNull(),
  },
  (t) => [
    index("check_runs_series_idx").on(t.tableId, t.checkKey, t.startedAt),
    // GET /api/tables/{id}/runs reads a page in its order (started_at, then id): without it, a
    // page sorted every run of the table (millions), or walked every table's newest runs.
    index("check_runs_table_started_idx").on(t.tableId, t.startedAt, t.id),
    // Retention deletes the oldest runs first.
    index("check_runs_started_idx").on(t.startedAt),
  ],
);

export const alerts = pgTable(
  "alerts",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    tableId: integer("table_id")
      .notNull()
      .references(() => monitoredTables.id, { onDelete: "cascade" }),
    checkKey: text("check_key").notNull(),
    checkKind: text("check_kind").notNull(),
    /** The reducer's status (src/monitoring/alert-state.ts): ok, failing, open, resolving. */
    status: text("status").notNull(),
    /** The reducer's whole state, exactly as it returned it. */
    state: jsonb("state").$type<Record<string, unknown>>().notNull(),
    openedAt: timestamp("opened_at", { withTimezone: true }),
    acknowledgedAt: timestamp("acknowledged_at", { withTimezone: true }),
    mutedUntil: timestamp("muted_until", { withTimezone: true }),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
    lastDetail: text("last_detail"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true })
      .notNull()
      .defaultNow()
      .$onUpdate(() => sql`now()`),
  },
  (t) => [
    uniqueIndex("alerts_table_check_key").on(t.tableId, t.checkKey),
    index("alerts_owner_idx").on(t.ownerId),
    // The open ones (an incident not over): what a result's health reads per user, and the
    // deployment's count at every scrape, without reading the alerts that closed.
    index("alerts_open_idx").on(t.ownerId).where(sql`${t.status} IN ('open', 'resolving')`),
  ],
);

export const notificationChannels = pgTable(
  "notification_channels",
  {
    id: integer("id").primaryKey().generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    kind: text("kind", { enum: ["webhook", "slack"] }).notNull(),
    name: text("name").notNull(),
    /** AES-256-GCM sealed URL (webhook URLs carry tokens); `urlHint` is what may be shown. */
    urlSealed: text("url_sealed").notNull(),
    urlHint: text("url_hint").notNull(),
    enabled: boolean("enabled").notNull().default(true),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("notification_channels_owner_idx").on(t.ownerId)],
);

/** Outbox and dedup record of notifications: one row per (notification, channel), inserted
 * before the send under a unique key, so a restart or a second instance never sends it twice. */
export const sentNotifications = pgTable(
  "sent_notifications",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    dedupKey: text("dedup_key").notNull(),
    channelId: integer("channel_id")
      .notNull()
      .references(() => notificationChannels.id, { onDelete: "cascade" }),
    alertId: integer("alert_id").references(() => alerts.id, { onDelete: "cascade" }),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    status: text("status", { enum: ["pending", "sent", "failed"] }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    lastError: text("last_error"),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("sent_notifications_dedup_key").on(t.dedupKey),
    index("sent_notifications_pending_idx").on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // Each channel's oldest pending, found without reading the others' (claimDueNotifications).
    index("sent_notifications_channel_pending_idx").on(t.channelId, t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
    // For the cascades: deleting a channel or an alert would otherwise scan the whole outbox.
    index("sent_notifications_channel_idx").on(t.channelId),
    index("sent_notifications_alert_idx").on(t.alertId),
  ],
);

export type MonitoredTableRow = typeof monitoredTables.$inferSelect;
export type CheckRunRow = typeof checkRuns.$inferSelect;
export type AlertRow = typeof alerts.$inferSelect;
export type NotificationChannelRow = typeof notificationChannels.$inferSelect;
export type SentNotificationRow = typeof sentNotifications.$inferSelect;

// ---- The audit trail: every statement Pulse sent to a customer database for a user. ----

export const AUDIT_OUTCOMES = ["ok", "refused", "budget_exceeded", "timeout", "error"] as const;

/** The trail is kept in groups: the records of one batch that share their owner, connection,
 * source, API key, outcome and second (at most MAX_GROUP_RECORDS), one row with a column of arrays per
 * field of a record. Every row and index entry is paid for on each statement Pulse runs: a row
 * per record cost the store 8-9 µs of CPU and about 350 bytes a record; groups 4-7 µs and 8-250
 * bytes, depending on how many records a group gathers (bench/audit-writes.ts,
 * bench/RESULTS.md). The `audit_records` view
 * (migration 0015) shows one row per record, as operators and reports read them.
 * No foreign keys: the trail outlives the connections and users it names, and a batch must
 * never fail because one of its connections was deleted meanwhile. */
export const auditGroups = pgTable(
  "audit_groups",
  {
    id: bigint("id", { mode: "number" }).generatedAlwaysAsIdentity(),
    ownerId: integer("owner_id").notNull(),
    connectionId: integer("connection_id").notNull(),
    source: text("source", { enum: STATEMENT_SOURCES }).notNull(),
    /** The API key that sent them (kept when the key is deleted: what a leaked key ran is what
     * its records are for); null for a login's statements and Pulse's own. */
    apiKeyId: integer("api_key_id"),
    /** The earliest and latest `at` of the group: less than a second apart, so that a time
     * window or a cursor bounds the groups it reads on the indexes' `last_at`. */
    firstAt: timestamp("first_at", { withTimezone: true }).notNull(),
    lastAt: timestamp("last_at", { withTimezone: true }).notNull(),
    outcome: text("outcome", { enum: AUDIT_OUTCOMES }).notNull(),
    // One element per record, in the order written (a record's id is the group's id x 1000 plus
    // its index): see the audit_records view for what each holds.
    at: timestamp("at", { withTimezone: true }).array().notNull(),
    sql: text("sql").array().notNull(),
    sqlLength: integer("sql_length").array().notNull(),
    /** These three are null where every record's element is (nearly every group): an array of
     * nulls costs a header of its own, which a group of one record pays in full. */
    sqlSha256: text("sql_sha256").array(),
    rowCount: integer("row_count").array().notNull(),
    durationMs: doublePrecision("duration_ms").array().notNull(),
    errorCode: text("error_code").array(),
    rule: text("rule").array(),
  },
  (t) => [
    // A page's cursor (a record's id) finds its group by it.
    primaryKey({ columns: [t.ownerId, t.id] }),
    // Pages are newest first by `at`, read group by group newest first by `last_at`, so a time
    // window far back costs what its page does, not a scan of every newer group. Retention
    // reads the first one owner by owner.
    index("audit_groups_owner_at_idx").on(t.ownerId, t.lastAt),
    // With the owner: a filter on another user's connection finds nothing at once.
    index("audit_groups_connection_idx").on(t.connectionId, t.ownerId, t.lastAt),
    // Partial: an `ok` group, nearly all of them, is not in it.
    index("audit_groups_outcome_idx").on(t.ownerId, t.outcome, t.lastAt).where(sql`${t.outcome} <> 'ok'`),
    // Partial, as the outcome one: a login's records (most) are not in it.
    index("audit_groups_api_key_idx").on(t.ownerId, t.apiKeyId, t.lastAt).where(sql`${t.apiKeyId} IS NOT NULL`),
  ],
);

/** A group holds at most this many records (its records' ids are its id x 1000 plus 0-999). */
export const MAX_GROUP_RECORDS = 1000;

/** One row per record of `audit_groups` (migration 0015 makes it; drizzle-kit leaves it). */
export const auditRecords = pgView("audit_records", {
  id: bigint("id", { mode: "number" }).notNull(),
  /** When the statement was asked for (before the guard and the budget). */
  at: timestamp("at", { withTimezone: true }).notNull(),
  ownerId: integer("owner_id").notNull(),
  connectionId: integer("connection_id").notNull(),
  source: text("source", { enum: STATEMENT_SOURCES }).notNull(),
  apiKeyId: integer("api_key_id"),
  /** The statement's first AUDIT_SQL_CHARS characters; `sqlLength` and `sqlSha256` tell
   * whether and what was cut (the hash only when it was). */
  sql: text("sql").notNull(),
  sqlLength: integer("sql_length").notNull(),
  sqlSha256: text("sql_sha256"),
  rowCount: integer("row_count"),
  durationMs: doublePrecision("duration_ms").notNull(),
  outcome: text("outcome", { enum: AUDIT_OUTCOMES }).notNull(),
  /** The error's code when it did not succeed (sql_refused, query_timeout, sql_failed...). */
  errorCode: text("error_code"),
  /** The guard rule that refused it. */
  rule: text("rule"),
}).existing();

export type AuditRecordRow = typeof auditRecords.$inferSelect;

/** The last batch each audit writer (one per process) committed, written in the batch's own
 * transaction: a batch whose commit was not confirmed (the reply lost with the connection) is
 * looked up here before its records are written again, so they are never written twice. Rows of
 * writers gone quiet are pruned with the records. */
export const auditWrites = pgTable("audit_writes", {
  writer: uuid("writer").primaryKey(),
  batch: uuid("batch").notNull(),
  at: timestamp("at", { withTimezone: true }).notNull(),
});
