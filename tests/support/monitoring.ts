// Helpers for the monitoring suites: a clock moved by hand, monitored databases of each
// dialect with an `events` table that tests write to directly, short API helpers, and two
// schedulers ticking side by side.

import path from "node:path";

import Database from "better-sqlite3";
import { expect } from "vitest";

import type { CheckConfig } from "../../src/store/column-types.js";
import type { Scheduler } from "../../src/monitoring/scheduler.js";
import { updateMonitoredTable } from "../../src/store/monitoring-tables.js";
import type { Harness } from "./harness.js";
import { createMariaDatabase, createPgDatabase, mariaAdmin, MARIADB, PG, pgAdmin, uniqueName } from "./services.js";

export interface TestClock {
  now: () => number;
  advance(ms: number): void;
}

export function testClock(start = Date.now()): TestClock {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

export type Dialect = "postgresql" | "mysql" | "sqlite";

/** A database with `events (id, ts, note)`, written to by the test with its own client. */
export interface MonitoredDb {
  dialect: Dialect;
  /** Body for POST /api/connections. */
  body: Record<string, unknown>;
  /** Schema the tables live in (null for SQLite). */
  schema: string | null;
  /** Runs a statement as an administrator (writes allowed). */
  exec(sql: string): Promise<void>;
  /** Inserts `count` events stamped `at` (epoch ms). */
  insertEvents(count: number, at: number, note?: string | null): Promise<void>;
  drop(): Promise<void>;
}

const iso = (ms: number) => new Date(ms).toISOString();
const mysqlTime = (ms: number) => iso(ms).replace("T", " ").replace("Z", "");

export async function pgMonitoredDb(): Promise<MonitoredDb> {
  const db = await createPgDatabase("pulse_mon");
  await db.query("CREATE TABLE events (id serial primary key, ts timestamptz not null, note text)");
  return {
    dialect: "postgresql",
    body: { db_type: "postgresql", host: PG.host, port: PG.port, database_name: db.name, username: PG.user, db_password: "unused" },
    schema: "public",
    exec: async (sql) => void (await db.query(sql)),
    insertEvents: async (count, at, note = "x") =>
      void (await db.query("INSERT INTO events (ts, note) SELECT $1::timestamptz, $2 FROM generate_series(1, $3::int)", [iso(at), note, count])),
    drop: () => db.drop(),
  };
}

export async function mariaMonitoredDb(): Promise<MonitoredDb> {
  const db = await createMariaDatabase("pulse_mon");
  const user = uniqueName("pulse_m").slice(0, 60);
  const password = uniqueName("pw");
  for (const host of ["%", "localhost"]) {
    await mariaAdmin(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${password}'`);
    await mariaAdmin(`GRANT SELECT ON \`${db.name}\`.* TO '${user}'@'${host}'`);
  }
  await db.query("CREATE TABLE events (id int auto_increment primary key, ts datetime(3) not null, note text)");
  return {
    dialect: "mysql",
    body: { db_type: "mysql", host: MARIADB.host, port: MARIADB.port, database_name: db.name, username: user, db_password: password },
    schema: db.name,
    exec: async (sql) => void (await db.query(sql)),
    async insertEvents(count, at, note = "x") {
      const value = `('${mysqlTime(at)}', ${note === null ? "NULL" : `'${note}'`})`;
      await db.query(`INSERT INTO events (ts, note) VALUES ${Array.from({ length: count }, () => value).join(", ")}`);
    },
    async drop() {
      for (const host of ["%", "localhost"]) await mariaAdmin(`DROP USER IF EXISTS '${user}'@'${host}'`);
      await db.drop();
    },
  };
}

export async function sqliteMonitoredDb(sqliteRoot: string): Promise<MonitoredDb> {
  const name = `${uniqueName("mon")}.sqlite`;
  const file = path.join(sqliteRoot, name);
  const admin = new Database(file);
  admin.exec("CREATE TABLE events (id integer primary key, ts text not null, note text)");
  return {
    dialect: "sqlite",
    body: { db_type: "sqlite", database_name: name },
    schema: null,
    exec: async (sql) => void admin.exec(sql),
    async insertEvents(count, at, note = "x") {
      const insert = admin.prepare("INSERT INTO events (ts, note) VALUES (?, ?)");
      admin.transaction(() => {
        for (let i = 0; i < count; i++) insert.run(iso(at), note);
      })();
    },
    drop: async () => void admin.close(),
  };
}

export async function monitoredDb(dialect: Dialect, h: Harness): Promise<MonitoredDb> {
  if (dialect === "postgresql") return pgMonitoredDb();
  if (dialect === "mysql") return mariaMonitoredDb();
  return sqliteMonitoredDb(h.sqliteRoot);
}

export async function addConnection(h: Harness, token: string, body: Record<string, unknown>): Promise<number> {
  const res = await h.call("POST", "/api/connections", { token, json: body });
  if (res.status !== 201) throw new Error(`adding a connection failed: ${res.status} ${res.text}`);
  return res.body.id as number;
}

export async function monitorTable(h: Harness, token: string, body: Record<string, unknown>): Promise<any> {
  const res = await h.call("POST", "/api/tables", { token, json: body });
  if (res.status !== 201) throw new Error(`monitoring a table failed: ${res.status} ${res.text}`);
  return res.body;
}

/** A monitored table whose `checks` are written to the store without the API's dry run: for
 * tests whose budget (or statement timeout) is meant for the runs alone. */
export async function monitorTableUnchecked(h: Harness, user: { id: number; token: string }, body: Record<string, unknown>, checks: CheckConfig[]): Promise<any> {
  // A volume check: neither dry-run nor snapshotted when saved, so the budget is the runs'.
  const table = await monitorTable(h, user.token, { ...body, checks: [{ kind: "volume" }] });
  await updateMonitoredTable(h.deps.store.db, user.id, table.id, { checks });
  return { ...table, checks };
}

/** Adds `count` closed alerts beside the alert `alertId` (its owner and table, checks named
 * custom_sql:old_<g>), each opened at `openedAt`, an SQL expression that may use g (1 to
 * `count`): closed alerts stay, one per table and check, so a long-lived user has many. */
export async function addClosedAlerts(h: Harness, alertId: number, count: number, openedAt = "now() - interval '1 hour'"): Promise<void> {
  await pgAdmin(
    `INSERT INTO alerts (owner_id, table_id, check_key, check_kind, status, state, opened_at, resolved_at)
     SELECT owner_id, table_id, 'custom_sql:old_' || g, check_kind, 'ok', jsonb_set(state, '{status}', '"ok"'), ${openedAt}, now()
       FROM alerts, generate_series(1, $2::int) g WHERE id = $1`,
    h.pgDatabase!.name,
    [alertId, count],
  );
}

export async function addWebhook(h: Harness, token: string, url: string, kind: "webhook" | "slack" = "webhook"): Promise<number> {
  const res = await h.call("POST", "/api/channels", { token, json: { kind, url } });
  if (res.status !== 201) throw new Error(`adding a channel failed: ${res.status} ${res.text}`);
  return res.body.id as number;
}

/** Check runs recorded per monitored table, read straight from the harness's metadata store. */
export async function runsPerTable(h: Harness, tableIds: number[]): Promise<Map<number, number>> {
  const rows = await pgAdmin<{ table_id: number; runs: string }>(
    "SELECT table_id, count(*) AS runs FROM check_runs WHERE table_id = ANY($1::int[]) GROUP BY table_id",
    h.pgDatabase!.name,
    [tableIds],
  );
  return new Map(tableIds.map((id) => [id, Number(rows.find((r) => r.table_id === id)?.runs ?? 0)]));
}

/**
 * Ticks two schedulers at once, again and again, until neither claims anything: a tick
 * resolves once its runs have finished, so the two claims of a round run side by side. Fails
 * when a table is claimed twice; `onRound` sees each round's claims. Returns the tables claimed.
 */
export async function tickTogetherUntilIdle(
  a: Pick<Scheduler, "tick">,
  b: Pick<Scheduler, "tick">,
  onRound: (claimedByA: number[], claimedByB: number[]) => void = () => {},
): Promise<number[]> {
  const seen = new Set<number>();
  for (;;) {
    const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
    for (const id of [...ra.claimed, ...rb.claimed]) {
      expect(seen.has(id), `table ${id} claimed twice`).toBe(false);
      seen.add(id);
    }
    onRound(ra.claimed, rb.claimed);
    if (ra.claimed.length + rb.claimed.length === 0) return [...seen].sort((x, y) => x - y);
  }
}
