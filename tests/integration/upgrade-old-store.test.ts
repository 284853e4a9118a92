// A store an earlier Pulse migrated and used, opened by this build: the store that migrations
// 0000-0008 left (what main had before 0009), holding rows as that build wrote them, is migrated
// as any start migrates it, and what its users had still works through the API: their login,
// saved connections (passwords sealed as then), monitored tables with their history and open
// alert, notification channels and API keys. A migration that loses or mangles old data fails
// here; tests that start from an empty store never see it.

import { createHash, randomBytes } from "node:crypto";

import bcrypt from "bcryptjs";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { sealSecret } from "../../src/auth/secrets.js";
import { projectPath } from "../../src/paths.js";
import { createHarness, type Harness } from "../support/harness.js";
import { mariaMonitoredDb, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { createPgDatabase, uniqueName } from "../support/services.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

/** 0000_init to 0008_runs_without_cascade. */
const OLD_MIGRATIONS = 9;
const PASSWORD = "old build's password";
const SECRETS_KEY = randomBytes(32);
const HOUR = 3_600_000;

type Db = Awaited<ReturnType<typeof createPgDatabase>>;

let store: Db | undefined;
let h: Harness;
let receiver: WebhookReceiver;
let monitored: MonitoredDb;
let maria: MonitoredDb;
/** The old user's login. */
let token: string;
/** What the old build left, by id. */
const old = { user: 0, email: "", pgConnection: 0, mariaConnection: 0, table: 0, alert: 0, channel: 0, hookPath: "", apiKey: "" };
const startedAt = Date.now();

const one = async (db: Db, sql: string, params: unknown[]) => ((await db.query<{ id: number }>(sql, params))[0]!).id;

/** The store as the old build left it: its migrations applied and journaled as Drizzle does. */
async function oldStore(): Promise<Db> {
  const db = await createPgDatabase("pulse_upgrade");
  await db.query("CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)");
  for (const m of readMigrationFiles({ migrationsFolder: projectPath("migrations") }).slice(0, OLD_MIGRATIONS)) {
    for (const statement of m.sql) await db.query(statement);
    await db.query("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ($1, $2)", [m.hash, m.folderMillis]);
  }
  return db;
}

/** Rows as the old build wrote them (its services' shapes: seal contexts, check configs, alert
 * state, key hashes), none through this build's code but the sealing, unchanged since. */
async function oldRows(db: Db): Promise<void> {
  old.email = `${uniqueName("old")}@example.com`;
  old.user = await one(db, "INSERT INTO users (name, email, password_hash) VALUES ('Old User', $1, $2) RETURNING id", [old.email, bcrypt.hashSync(PASSWORD, 4)]);
  const connection = (target: MonitoredDb, name: string) =>
    one(
      db,
      `INSERT INTO db_connections (owner_id, name, db_type, host, port, database_name, username, password_sealed)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
      [old.user, name, target.dialect, target.body.host, target.body.port, target.body.database_name, target.body.username,
        sealSecret(String(target.body.db_password), SECRETS_KEY, `db_connection:owner:${old.user}`)],
    );
  old.pgConnection = await connection(monitored, "warehouse");
  // PostgreSQL here trusts every local client: only MariaDB's login proves the password opened is the one saved.
  old.mariaConnection = await connection(maria, "shop");

  const checks = [{ kind: "volume", min_rows: 1 }, { kind: "freshness", column: "ts", max_lag_seconds: 86_400 }, { kind: "schema_drift" }];
  const snapshot = [
    { name: "id", type: "integer", nullable: false },
    { name: "ts", type: "timestamp with time zone", nullable: false },
    { name: "note", type: "text", nullable: true },
  ];
  old.table = await one(
    db,
    `INSERT INTO monitored_tables (owner_id, connection_id, schema_name, table_name, interval_seconds, checks, alert_config, next_run_at, last_run_at, schema_snapshot)
     VALUES ($1, $2, 'public', 'events', 3600, $3, $4, now() + interval '1 hour', now() - interval '1 hour', $5) RETURNING id`,
    [old.user, old.pgConnection, JSON.stringify(checks), JSON.stringify({ open_after: 2, resolve_after: 1 }), JSON.stringify(snapshot)],
  );
  // Two scheduled runs an hour apart: the table was empty, so its volume check failed twice.
  for (const hoursAgo of [2, 1]) {
    const at = new Date(startedAt - hoursAgo * HOUR).toISOString();
    await db.query(
      `INSERT INTO check_runs (table_id, check_key, check_kind, status, value, lower_bound, upper_bound, message, trigger, started_at, finished_at)
       VALUES ($1, 'volume', 'volume', 'fail', 0, 1, NULL, '0 rows, below the minimum of 1', 'schedule', $2, $2),
              ($1, 'freshness:ts', 'freshness', 'skipped', NULL, NULL, 86400, 'No rows to measure freshness by', 'schedule', $2, $2),
              ($1, 'schema_drift', 'schema_drift', 'pass', 3, NULL, NULL, 'Schema unchanged (3 columns)', 'schedule', $2, $2)`,
      [old.table, at],
    );
  }
  const openedAt = startedAt - HOUR;
  old.alert = await one(
    db,
    `INSERT INTO alerts (owner_id, table_id, check_key, check_kind, status, state, opened_at, last_detail)
     VALUES ($1, $2, 'volume', 'volume', 'open', '{}', $3, '0 rows, below the minimum of 1') RETURNING id`,
    [old.user, old.table, new Date(openedAt).toISOString()],
  );
  const state = {
    alertId: `alert:${old.alert}`, status: "open", consecutiveFailures: 2, consecutiveSuccesses: 0, sequence: 1,
    openedAt, lastFailureAt: openedAt, lastResolvedAt: null, flapping: false,
    acknowledgedAt: null, acknowledgedBy: null, mutedUntil: null, notifiedOpen: 1, lastDetail: "0 rows, below the minimum of 1",
  };
  await db.query("UPDATE alerts SET state = $2 WHERE id = $1", [old.alert, JSON.stringify(state)]);

  old.hookPath = `/old-${old.user}-${randomBytes(6).toString("hex")}`;
  const url = `${receiver.url}${old.hookPath}`;
  old.channel = await one(
    db,
    "INSERT INTO notification_channels (owner_id, kind, name, url_sealed, url_hint) VALUES ($1, 'webhook', 'on call', $2, $3) RETURNING id",
    [old.user, sealSecret(url, SECRETS_KEY, `notification_channel:owner:${old.user}`), `${new URL(url).protocol}//${new URL(url).host}/…`],
  );
  // The alert's opening, sent.
  await db.query(
    `INSERT INTO sent_notifications (dedup_key, channel_id, alert_id, payload, status, attempts, sent_at)
     VALUES ($1, $2, $3, $4, 'sent', 1, $5)`,
    [`alert:${old.alert}:opened:1:channel:${old.channel}`, old.channel, old.alert, JSON.stringify({ event: "alert.opened", alert_id: old.alert, sequence: 1 }), new Date(openedAt).toISOString()],
  );

  old.apiKey = `pulse_${randomBytes(32).toString("base64url")}`;
  await db.query(
    `INSERT INTO api_keys (owner_id, name, secret_hash, prefix, last_four, scopes, connection_ids)
     VALUES ($1, 'dashboard', $2, $3, $4, '{monitoring:read}', $5)`,
    [old.user, createHash("sha256").update(old.apiKey).digest("hex"), old.apiKey.slice(0, 10), old.apiKey.slice(-4), [old.pgConnection]],
  );
  await db.query(
    `INSERT INTO audit_records (at, owner_id, connection_id, source, sql, sql_length, row_count, duration_ms, outcome)
     VALUES (now() - interval '3 hours', $1, $2, 'query', 'SELECT count(*) FROM events', 27, 1, 4.5, 'ok')`,
    [old.user, old.pgConnection],
  );
}

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  [monitored, maria] = await Promise.all([pgMonitoredDb(), mariaMonitoredDb()]);
  store = await oldStore();
  await oldRows(store);
  h = await createHarness({ database: store, env: { SECRETS_KEY: SECRETS_KEY.toString("hex"), ...LOCAL_RECEIVER_ENV } });
  const login = await h.call("POST", "/login", { form: { username: old.email, password: PASSWORD } });
  if (login.status !== 200) throw new Error(`the old user's login failed: ${login.status} ${login.text}`);
  token = login.body.access_token as string;
}, 30_000);
afterAll(async () => {
  // The harness drops the store; one that did not start (its migration failed) has not.
  await (h ? h.close() : store?.drop());
  await Promise.all([monitored?.drop(), maria?.drop(), receiver?.close()]);
});

describe("a store migrations 0000-0008 left, opened by this build", () => {
  it("is migrated to this build's last migration", async () => {
    const [journal] = await store!.query<{ n: string }>("SELECT count(*) AS n FROM drizzle.__drizzle_migrations");
    expect(Number(journal!.n)).toBe(readMigrationFiles({ migrationsFolder: projectPath("migrations") }).length);
  });

  it("logs its user in with the password they had", async () => {
    const login = await h.call("POST", "/login", { form: { username: old.email, password: PASSWORD } });
    expect(login.status, login.text).toBe(200);
    expect((await h.call("GET", "/users/me", { token: login.body.access_token })).body).toMatchObject({ id: old.user, email: old.email, name: "Old User" });
  });

  it("opens the saved connections with the passwords sealed then", async () => {
    const saved = await h.call("GET", `/databases/${old.pgConnection}`, { token });
    expect(saved.status, saved.text).toBe(200);
    expect(saved.body).toMatchObject({ id: old.pgConnection, name: "warehouse", db_type: "postgresql", database_name: monitored.body.database_name });
    for (const id of [old.pgConnection, old.mariaConnection]) {
      const tested = await h.call("POST", `/databases/${id}/test`, { token });
      expect(tested.status, tested.text).toBe(200);
      expect(tested.body).toMatchObject({ ok: true });
    }
  });

  it("lists the monitored table with its checks, run history and open alert", async () => {
    const table = await h.call("GET", `/api/tables/${old.table}`, { token });
    expect(table.status, table.text).toBe(200);
    expect(table.body).toMatchObject({
      id: old.table,
      connection_id: old.pgConnection,
      schema: "public",
      table: "events",
      interval_seconds: 3600,
      checks: [{ kind: "volume", min_rows: 1 }, { kind: "freshness", column: "ts", max_lag_seconds: 86_400 }, { kind: "schema_drift" }],
      alert: { open_after: 2, resolve_after: 1 },
      enabled: true,
    });
    const runs = await h.call("GET", `/api/tables/${old.table}/runs`, { token });
    expect(runs.status, runs.text).toBe(200);
    // Newest first, each run's checks in the reverse of their order.
    const at = (hoursAgo: number) => new Date(startedAt - hoursAgo * HOUR).toISOString();
    expect(runs.body.map((r: any) => [r.check, r.status, r.value, r.started_at])).toEqual([1, 2].flatMap((hoursAgo) => [
      ["schema_drift", "pass", 3, at(hoursAgo)],
      ["freshness:ts", "skipped", null, at(hoursAgo)],
      ["volume", "fail", 0, at(hoursAgo)],
    ]));
    const alerts = await h.call("GET", "/api/alerts", { token });
    expect(alerts.status, alerts.text).toBe(200);
    expect(alerts.body).toEqual([
      expect.objectContaining({
        id: old.alert, table_id: old.table, check: "volume", status: "open", sequence: 1, consecutive_failures: 2,
        opened_at: new Date(startedAt - HOUR).toISOString(), last_detail: "0 rows, below the minimum of 1",
      }),
    ]);
  });

  it("tests the channel at the URL sealed then", async () => {
    const channels = await h.call("GET", "/api/channels", { token });
    expect(channels.body).toMatchObject([{ id: old.channel, kind: "webhook", name: "on call", enabled: true }]);
    const tested = await h.call("POST", `/api/channels/${old.channel}/test`, { token });
    expect(tested.status, tested.text).toBe(200);
    expect(receiver.at(old.hookPath).map((r) => r.body.event)).toEqual(["test"]);
  });

  it("lets the API key in, with its scopes and connections", async () => {
    const tables = await h.call("GET", "/api/tables", { token: old.apiKey });
    expect(tables.status, tables.text).toBe(200);
    expect(tables.body.map((t: any) => t.id)).toEqual([old.table]);
    const write = await h.call("POST", `/api/tables/${old.table}/run`, { token: old.apiKey });
    expect(write.status, write.text).toBe(403);
    const keys = await h.call("GET", "/api/keys", { token });
    expect(keys.body).toEqual([expect.objectContaining({ name: "dashboard", scopes: ["monitoring:read"], connection_ids: [old.pgConnection] })]);
  });

  it("lists the audit trail it had", async () => {
    const audit = await h.call("GET", "/api/audit", { token });
    expect(audit.status, audit.text).toBe(200);
    expect(audit.body.records).toEqual([expect.objectContaining({ connection_id: old.pgConnection, sql: "SELECT count(*) FROM events", outcome: "ok" })]);
  });

  // Last: it changes what the others read.
  it("runs the table by hand, resolving its alert and telling the channel", async () => {
    await monitored.insertEvents(3, Date.now() - 60_000);
    const run = await h.call("POST", `/api/tables/${old.table}/run`, { token });
    expect(run.status, run.text).toBe(200);
    expect(run.body.outcomes.map((c: any) => [c.check, c.status])).toEqual([["volume", "pass"], ["freshness:ts", "pass"], ["schema_drift", "pass"]]);
    // Against the columns accepted then, not taken as new.
    expect(run.body.outcomes[2].message).toBe("3 columns, as accepted");
    const alert = await h.call("GET", `/api/alerts/${old.alert}`, { token });
    expect(alert.body).toMatchObject({ status: "resolved", sequence: 1 });
    const resolved = receiver.at(old.hookPath).filter((r) => r.body.event === "alert.resolved");
    // Keyed by the alert's name in its state as the old build wrote it.
    expect(resolved.map((r) => [r.headers["x-pulse-notification"], r.body.alert_id, r.body.sequence])).toEqual([[`alert:${old.alert}:resolved:1:channel:${old.channel}`, old.alert, 1]]);
    expect((await h.call("GET", `/api/tables/${old.table}/runs`, { token })).body).toHaveLength(9);
  });
});
