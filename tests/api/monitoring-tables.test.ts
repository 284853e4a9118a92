// /api/tables over HTTP against a real PostgreSQL target (and MariaDB and SQLite for dry runs): CRUD, run now, run history; inputs
// validated against the live database (422 with field paths); other users' ids are 404.

import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { listCheckRuns } from "../../src/store/monitoring-runs.js";
import { createHarness, type ApiResponse, type Harness } from "../support/harness.js";
import { addConnection, addWebhook, mariaMonitoredDb, monitorTable, pgMonitoredDb, sqliteMonitoredDb, testClock, type MonitoredDb } from "../support/monitoring.js";
import { pgAdmin, pgUrl } from "../support/services.js";

let h: Harness;
let target: MonitoredDb;

beforeAll(async () => {
  // Every skip counts towards an alert at once, but not a skip under the store failing.
  // Every user here monitors the same database: its monitoring budget (tests/security has its
  // own) would be shared by them all within the minute.
  h = await createHarness({ env: { MONITOR_MIN_INTERVAL_SECONDS: "30", MONITOR_ALERT_AFTER_SKIPS: "1", MONITOR_QUERIES_PER_MINUTE: "100000" } });
  target = await pgMonitoredDb();
  await target.exec("ALTER TABLE events ADD COLUMN amount numeric");
  await target.insertEvents(10, Date.now());
});
afterAll(async () => {
  await h?.close();
  await target?.drop();
});

async function owner() {
  const user = await h.newUser();
  const connectionId = await addConnection(h, user.token, target.body);
  return { user, connectionId };
}

describe("POST /api/tables", () => {
  it("monitors a table with volume and schema drift by default, first due within one interval", async () => {
    const { user, connectionId } = await owner();
    const before = Date.now();
    const res = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events" } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      id: expect.any(Number),
      owner_id: user.id,
      connection_id: connectionId,
      schema: "public",
      table: "events",
      interval_seconds: 300,
      enabled: true,
      checks: [{ kind: "volume" }, { kind: "schema_drift" }],
      alert: { open_after: 2, resolve_after: 2 },
      last_run_at: null,
    });
    // At a random point of the first interval, so tables added together spread out.
    expect(Date.parse(res.body.next_run_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(res.body.next_run_at)).toBeLessThanOrEqual(Date.now() + 300_000);
  });

  it("answers 422, not 500, for a freshness column holding an epoch past what a date can hold", async () => {
    const { user, connectionId } = await owner();
    const name = `ev_${Date.now()}`;
    // Past a date even as nanoseconds, the finest unit read.
    await target.exec(`CREATE TABLE ${name} (id int, at_ms numeric)`);
    await target.exec(`INSERT INTO ${name} VALUES (1, 100000000000000000000000)`);
    const res = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: name, checks: [{ kind: "freshness", column: "at_ms" }] } });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toContainEqual({ path: "body.checks.0.column", message: expect.stringContaining('holds "100000000000000000000000", which is not a timestamp') });
  });

  it("keeps every kind of check as given", async () => {
    const { user, connectionId } = await owner();
    const checks = [
      { kind: "freshness", column: "ts", max_lag_seconds: 600 },
      { kind: "volume", baseline: { sensitivity: 4, direction: "drop", seasonality: "none" } },
      { kind: "null_rate", column: "note", max_rate: 0.1, recent_by: "ts" },
      { kind: "schema_drift" },
      { kind: "custom_sql", name: "negative_amounts", sql: "SELECT count(*) FROM events WHERE amount < 0", max: 0 },
    ];
    const table = await monitorTable(h, user.token, { connection_id: connectionId, schema: "public", table: "events", interval_seconds: 60, checks, alert: { open_after: 3 } });
    expect(table.checks).toEqual(checks);
    expect(table.alert).toEqual({ open_after: 3, resolve_after: 2 });
  });

  it.each([
    ["no table", { table: undefined }, "body.table"],
    ["an unknown table", { table: "no_such_table" }, "body.table"],
    ["an unknown schema", { schema: "nope" }, "body.table"],
    ["an interval under the minimum", { interval_seconds: 5 }, "body.interval_seconds"],
    ["an unknown check kind", { checks: [{ kind: "row_magic" }] }, "body.checks.0.kind"],
    ["a check with a typo'd field", { checks: [{ kind: "volume", min_row: 3 }] }, "body.checks.0.min_row"],
    ["a freshness check without a column", { checks: [{ kind: "freshness" }] }, "body.checks.0.column"],
    ["a column the table does not have", { checks: [{ kind: "freshness", column: "created" }] }, "body.checks.0.column"],
    ["a null rate sampled by a missing column", { checks: [{ kind: "null_rate", column: "note", recent_by: "nope" }] }, "body.checks.0.recent_by"],
    ["a null rate over 1", { checks: [{ kind: "null_rate", column: "note", max_rate: 2 }] }, "body.checks.0.max_rate"],
    ["custom SQL without bounds", { checks: [{ kind: "custom_sql", name: "x", sql: "SELECT 1" }] }, "body.checks.0.max"],
    ["custom SQL that writes", { checks: [{ kind: "custom_sql", name: "x", sql: "DELETE FROM events", max: 0 }] }, "body.checks.0.sql"],
    ["custom SQL that is two statements", { checks: [{ kind: "custom_sql", name: "x", sql: "SELECT 1; SELECT 2", max: 0 }] }, "body.checks.0.sql"],
    ["the same check twice", { checks: [{ kind: "volume" }, { kind: "volume" }] }, "body.checks.1"],
    ["bounds the wrong way round", { checks: [{ kind: "volume", min_rows: 10, max_rows: 1 }] }, "body.checks.0.min_rows"],
    ["open_after 0", { alert: { open_after: 0 } }, "body.alert.open_after"],
  ])("answers 422 for %s, naming %s", async (_name, change, path) => {
    const { user, connectionId } = await owner();
    const json = { connection_id: connectionId, table: "events", ...change };
    const res = await h.call("POST", "/api/tables", { token: user.token, json });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("invalid_input");
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("keeps freshness checks on two columns apart: their runs and series are separate", async () => {
    const { user, connectionId } = await owner();
    await target.exec("CREATE TABLE IF NOT EXISTS visits (id serial primary key, created_at timestamptz not null, updated_at timestamptz not null)");
    await target.exec("INSERT INTO visits (created_at, updated_at) VALUES (now() - interval '2 hours', now())");
    const checks = [
      { kind: "freshness", column: "created_at", max_lag_seconds: 3600 },
      { kind: "freshness", column: "updated_at", max_lag_seconds: 3600 },
    ];
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "visits", checks });
    expect(table.checks).toEqual(checks);
    const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(run.body.outcomes.map((o: any) => [o.check, o.status])).toEqual([["freshness:created_at", "fail"], ["freshness:updated_at", "pass"]]);
    const series = await h.call("GET", `/api/tables/${table.id}/runs?check=freshness:updated_at`, { token: user.token });
    expect(series.body.map((r: any) => r.status)).toEqual(["pass"]);

    const twice = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "visits", checks: [checks[0], checks[0]] } });
    expect(twice.status).toBe(422);
    expect(twice.body.errors).toEqual([{ path: "body.checks.1", message: "duplicates check 0 (freshness:created_at)" }]);
  });

  it("answers 404 for another user's connection, and saves nothing", async () => {
    const { connectionId } = await owner();
    const intruder = await h.newUser();
    const res = await h.call("POST", "/api/tables", { token: intruder.token, json: { connection_id: connectionId, table: "events" } });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: "not_found", detail: expect.any(String) });
    expect((await h.call("GET", "/api/tables", { token: intruder.token })).body).toEqual([]);
  });

  it("answers 401 without a token", async () => {
    expect((await h.call("POST", "/api/tables", { json: { connection_id: 1, table: "events" } })).status).toBe(401);
    expect((await h.call("GET", "/api/tables")).status).toBe(401);
  });
});

describe("GET /api/tables", () => {
  it("lists the tables by id, all at once or a page at a time naming the next page in a Link header", async () => {
    const { user, connectionId } = await owner();
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "schema_drift" }] })).id);
    const pages: number[][] = [];
    let next: string | null = "/api/tables?limit=2";
    while (next) {
      const res: ApiResponse<{ id: number }[]> = await h.call("GET", next, { token: user.token });
      expect(res.status).toBe(200);
      pages.push(res.body.map((t) => t.id));
      next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get("link") ?? "")?.[1] ?? null;
    }
    expect(pages).toEqual([ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
    // Without limit or after_id, every table, as before pages existed; past 500 a page is refused.
    const all = await h.call("GET", "/api/tables", { token: user.token });
    expect(all.body.map((t: { id: number }) => t.id)).toEqual(ids);
    expect(all.headers.get("link")).toBeNull();
    const tooMany = await h.call("GET", "/api/tables?limit=501", { token: user.token });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.errors).toContainEqual({ path: "query.limit", message: expect.any(String) });
  });
});

describe("GET, PATCH, DELETE /api/tables/{id}", () => {
  it("lists, reads, changes and deletes a monitored table", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 120 });
    expect((await h.call("GET", "/api/tables", { token: user.token })).body).toEqual([table]);
    expect((await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body).toEqual(table);

    const patched = await h.call("PATCH", `/api/tables/${table.id}`, {
      token: user.token,
      json: { interval_seconds: 60, enabled: false, checks: [{ kind: "freshness", column: "ts", max_lag_seconds: 30 }], alert: { resolve_after: 3 } },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ interval_seconds: 60, enabled: false, checks: [{ kind: "freshness", column: "ts", max_lag_seconds: 30 }], alert: { open_after: 2, resolve_after: 3 } });

    expect((await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token })).status).toBe(204);
    expect((await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).status).toBe(404);
    expect((await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token })).status).toBe(404);
  });

  it("validates a PATCH like a POST", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events" });
    const res = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "null_rate", column: "missing" }] } });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { path: string }) => e.path)).toEqual(["body.checks.0.column"]);
    expect((await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { interval_seconds: "60" } })).status).toBe(422);
    expect((await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body).toEqual(table);
  });

  it("warns of a baseline that can never judge at the table's interval, and not of fixed bounds", async () => {
    const { user, connectionId } = await owner();
    const week = 7 * 24 * 3600;
    const weekly = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", interval_seconds: week } });
    expect(weekly.status, weekly.text).toBe(201);
    expect(weekly.body.warnings).toEqual([expect.stringMatching(/^check volume is judged by a baseline that needs 14 runs, and MONITOR_RUN_RETENTION_DAYS \(35\) keeps 5 at this interval/)]);
    const bounded = await h.call("PATCH", `/api/tables/${weekly.body.id}`, { token: user.token, json: { checks: [{ kind: "volume", min_rows: 1 }] } });
    expect(bounded.status, bounded.text).toBe(200);
    expect(bounded.body.warnings).toBeUndefined();
    const hourly = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", interval_seconds: 3600 } });
    expect(hourly.body.warnings).toBeUndefined();
    // Made weekly by a PATCH: said then.
    const slowed = await h.call("PATCH", `/api/tables/${hourly.body.id}`, { token: user.token, json: { interval_seconds: week } });
    expect(slowed.body.warnings).toEqual([expect.stringContaining("check volume is judged by a baseline")]);
    // A weekly schedule, by its shortest gap.
    const scheduled = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", schedule: "0 9 * * 1" } });
    expect(scheduled.body.warnings).toEqual([expect.stringMatching(/keeps 5 at this schedule: it will never judge/)]);
  });

  it("refuses a baseline that could never judge: more samples needed than its window holds", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events" });
    for (const baseline of [{ min_samples: 10_000, window_points: 3 }, { min_samples: 2_000 }]) {
      const res = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "volume", baseline }] } });
      expect(res.status, JSON.stringify(baseline)).toBe(422);
      expect(res.body.errors).toEqual([{ path: "body.checks.0.baseline.min_samples", message: expect.stringContaining("at most window_points") }]);
    }
    const fine = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "volume", baseline: { min_samples: 20, window_points: 50 } }] } });
    expect(fine.status, fine.text).toBe(200);
  });

  it("dry-runs changed checks: one that cannot work is refused naming it, one that fails today is saved, neither leaves a run or an alert", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", alert: { open_after: 1 } });
    const broken = { kind: "custom_sql", name: "late", sql: "SELECT count(*) FROM events WHERE shipped_at IS NULL", max: 0 };
    const refused = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "volume" }, broken] } });
    expect(refused.status).toBe(422);
    expect(refused.body.errors).toEqual([{ path: "body.checks.1.sql", message: expect.stringMatching(/^check custom_sql:late cannot work: .*shipped_at/) }]);
    const typed = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "freshness", column: "note", max_lag_seconds: 60 }] } });
    expect(typed.status).toBe(422);
    expect(typed.body.errors).toEqual([{ path: "body.checks.0.column", message: "check freshness:note cannot work: column note is text, not a timestamp, date or epoch number" }]);
    expect((await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body).toEqual(table);

    const failing = { kind: "custom_sql", name: "too_many", sql: "SELECT count(*) FROM events", max: 1 };
    const saved = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [failing] } });
    expect(saved.status).toBe(200);
    expect(saved.body.checks).toEqual([failing]);
    expect((await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body).toEqual([]);
    expect((await h.call("GET", `/api/alerts?table_id=${table.id}`, { token: user.token })).body).toEqual([]);
  });

  it("refuses (409) a change checked against the table as it was, once another change of it was saved meanwhile", async () => {
    const { user, connectionId } = await owner();
    const path = `/api/tables/${(await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "volume" }] })).id}`;
    // The new check's dry run waits on a lock the test holds; another change is saved meanwhile.
    const locker = new pg.Client({ connectionString: pgUrl(target.body.database_name as string) });
    await locker.connect();
    try {
      await locker.query("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
      const checked = h.call("PATCH", path, { token: user.token, json: { checks: [{ kind: "volume" }, { kind: "custom_sql", name: "n", sql: "SELECT count(*) FROM events", max: 1000 }] } });
      await vi.waitFor(
        async () => {
          const [row] = await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", "postgres", [target.body.database_name]);
          expect(Number(row!.n)).toBeGreaterThan(0);
        },
        { timeout: 10_000, interval: 50 },
      );
      expect((await h.call("PATCH", path, { token: user.token, json: { enabled: false } })).status).toBe(200);
      await locker.query("COMMIT");
      const res = await checked;
      expect(res.status).toBe(409);
      expect(res.body.detail).toBe(`Monitored table ${path.split("/").at(-1)} was changed by another request while this change was checked; read it again and send this change anew`);
    } finally {
      await locker.end();
    }
    expect((await h.call("GET", path, { token: user.token })).body).toMatchObject({ enabled: false, checks: [{ kind: "volume" }] });
  });

  it("answers 404 to every verb on another user's table, and changes nothing", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events" });
    const intruder = await h.newUser();
    for (const [method, path, json] of [
      ["GET", `/api/tables/${table.id}`],
      ["PATCH", `/api/tables/${table.id}`, { enabled: false }],
      ["DELETE", `/api/tables/${table.id}`],
      ["POST", `/api/tables/${table.id}/run`],
      ["GET", `/api/tables/${table.id}/runs`],
    ] as const) {
      const res = await h.call(method, path, { token: intruder.token, json });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.code).toBe("not_found");
    }
    expect((await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body).toEqual(table);
    expect((await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body).toEqual([]);
  });

  it("answers 422 for an id that is not a positive integer", async () => {
    const user = await h.newUser();
    expect((await h.call("GET", "/api/tables/abc", { token: user.token })).status).toBe(422);
    expect((await h.call("GET", "/api/tables/0", { token: user.token })).status).toBe(422);
  });
});

describe("POST /api/tables/{id}/run and GET /api/tables/{id}/runs", () => {
  it.each([
    ["57P01", "terminating connection due to administrator command"],
    ["57P05", "terminating connection due to idle-session timeout"],
  ])("counts a check that Pulse's metadata store failed under (%s) as skipped, not as a failure of the table", async (sqlstate, message) => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "schema_drift" }], alert: { open_after: 1 } });
    // No snapshot yet, as after a resolve or a move to another table: the run takes one.
    await h.deps.store.db.execute(sql`UPDATE monitored_tables SET schema_snapshot = NULL WHERE id = ${table.id}`);
    // The store ending the session just as the check saves the table's snapshot.
    await h.deps.store.db.execute(
      sql.raw(
        `CREATE FUNCTION pulse_test_store_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.schema_snapshot IS DISTINCT FROM OLD.schema_snapshot THEN RAISE EXCEPTION '${message}' USING ERRCODE = '${sqlstate}'; END IF; RETURN NEW; END $$`,
      ),
    );
    await h.deps.store.db.execute(sql.raw("CREATE TRIGGER pulse_test_store_down BEFORE UPDATE ON monitored_tables FOR EACH ROW EXECUTE FUNCTION pulse_test_store_down()"));
    try {
      const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
      expect(run.status).toBe(200);
      expect(run.body.outcomes).toEqual([expect.objectContaining({ check: "schema_drift", status: "skipped", message: expect.stringContaining("metadata store") })]);
      expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);
    } finally {
      await h.deps.store.db.execute(sql.raw("DROP TRIGGER pulse_test_store_down ON monitored_tables"));
      await h.deps.store.db.execute(sql.raw("DROP FUNCTION pulse_test_store_down()"));
    }
    const again = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(again.body.outcomes).toEqual([expect.objectContaining({ check: "schema_drift", status: "pass", message: "snapshot of 4 columns taken" })]);
  });

  it("runs every check now and keeps the outcomes as history with their values", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [
        { kind: "freshness", column: "ts", max_lag_seconds: 3600 },
        { kind: "volume" },
        { kind: "null_rate", column: "amount", max_rate: 0.5 },
        { kind: "schema_drift" },
        { kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 1 },
      ],
    });
    expect(table.last_run_at).toBeNull();
    const run = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ table_id: table.id, trigger: "manual", target: { replica: false, replication_lag_seconds: null } });
    // The schedule is left as it was; last_run_at says the checks ran.
    const after = (await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body;
    expect(after).toMatchObject({ last_run_at: run.body.started_at, next_run_at: table.next_run_at });
    const byCheck = Object.fromEntries(run.body.outcomes.map((o: any) => [o.check, o]));
    expect(Object.keys(byCheck)).toEqual(["freshness:ts", "volume", "null_rate:amount", "schema_drift", "custom_sql:rows"]);
    expect(byCheck["freshness:ts"]).toMatchObject({ status: "pass", kind: "freshness", upper: 3600 });
    expect(byCheck["freshness:ts"].value).toBeLessThan(120);
    expect(byCheck.volume).toMatchObject({ status: "pass", value: 10, details: { method: "exact", verdict: "learning" } });
    expect(byCheck["null_rate:amount"]).toMatchObject({ status: "fail", value: 1, upper: 0.5 });
    expect(byCheck.schema_drift).toMatchObject({ status: "pass", value: 0, message: "4 columns, as accepted" });
    expect(byCheck["custom_sql:rows"]).toMatchObject({ status: "pass", value: 10, lower: 1 });

    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    const runs = await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token });
    expect(runs.status).toBe(200);
    expect(runs.body).toHaveLength(10);
    const volumes = await h.call("GET", `/api/tables/${table.id}/runs?check=volume&limit=5`, { token: user.token });
    expect(volumes.body.map((r: any) => [r.check, r.value])).toEqual([["volume", 10], ["volume", 10]]);
    const page = await h.call("GET", `/api/tables/${table.id}/runs?limit=1`, { token: user.token });
    expect(page.body).toHaveLength(1);
    const older = await h.call("GET", `/api/tables/${table.id}/runs?before=${encodeURIComponent(page.body[0].started_at)}`, { token: user.token });
    expect(older.body.every((r: any) => r.started_at < page.body[0].started_at)).toBe(true);

    // Checks of one run often start in the same millisecond (all ten runs here, to be sure):
    // paged by the last run's started_at and run_id, no run is skipped nor shown twice.
    await h.deps.store.db.execute(sql`UPDATE check_runs SET started_at = ${runs.body[0].started_at}::timestamptz WHERE table_id = ${table.id}`);
    const seen: number[] = [];
    for (let last: any = null, pages = 0; pages < 10; pages++) {
      const cursor = last ? `&before=${encodeURIComponent(last.started_at)}&before_id=${last.run_id}` : "";
      const next = await h.call("GET", `/api/tables/${table.id}/runs?limit=3${cursor}`, { token: user.token });
      expect(next.status).toBe(200);
      if (next.body.length === 0) break;
      seen.push(...next.body.map((r: any) => r.run_id));
      last = next.body.at(-1);
    }
    expect(seen).toEqual(runs.body.map((r: any) => r.run_id).sort((a: number, b: number) => b - a));
    const noTime = await h.call("GET", `/api/tables/${table.id}/runs?before_id=5`, { token: user.token });
    expect(noTime.status).toBe(422);
    expect(noTime.body.errors).toEqual([{ path: "query.before_id", message: "needs before (the same run's started_at)" }]);
    expect((await h.call("GET", `/api/tables/${table.id}/runs?limit=0`, { token: user.token })).status).toBe(422);
    expect((await h.call("GET", `/api/tables/${table.id}/runs?before=yesterday`, { token: user.token })).status).toBe(422);
  });

  it("sees the table as it is now: a column added just before is schema drift, not the cached shape", async () => {
    const { user, connectionId } = await owner();
    await target.exec("CREATE TABLE reshaped (id int)");
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "reshaped", interval_seconds: 3600, checks: [{ kind: "schema_drift" }], alert: { open_after: 1 } });
    const first = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(first.body.outcomes[0]).toMatchObject({ status: "pass", message: "1 column, as accepted" });
    await target.exec("ALTER TABLE reshaped ADD COLUMN label text");
    const second = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(second.body.outcomes[0]).toMatchObject({ status: "fail", value: 1, message: expect.stringMatching(/label/) });
  });

  it("holds the table to its shape when it was added: a change before the first run is drift", async () => {
    const { user, connectionId } = await owner();
    await target.exec("CREATE TABLE reshaped_early (id int)");
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "reshaped_early", interval_seconds: 3600, checks: [{ kind: "schema_drift" }] });
    await target.exec("ALTER TABLE reshaped_early ADD COLUMN label text");
    const first = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    expect(first.body.outcomes[0]).toMatchObject({ status: "fail", value: 1, message: "schema drift: added label (text)" });
  });

  it("leaves the schedule alone", async () => {
    const { user, connectionId } = await owner();
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events" });
    await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
    const after = (await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body;
    expect(after.next_run_at).toBe(table.next_run_at);
  });
});

describe("the statement behind GET /api/tables/{id}/runs", () => {
  let paged: Harness;
  beforeAll(async () => {
    paged = await createHarness();
  });
  afterAll(async () => {
    await paged?.close();
  });

  it("reads a page of a table's runs by index in page order: neither every run of the table sorted, nor every table's newest runs filtered", async () => {
    const user = await paged.newUser();
    const table = await monitorTable(paged, user.token, { connection_id: await addConnection(paged, user.token, target.body), table: "events", checks: [{ kind: "volume" }] });
    const quiet = 2_000_000;
    // The table's 20 checks, one run a minute each; 500 other tables' runs as many; a quiet
    // table's few, a day ago.
    const write = (tableIds: string, count: number, step: string) =>
      pgAdmin(
        `INSERT INTO check_runs (table_id, check_key, check_kind, status, value, message, trigger, started_at, finished_at)
         SELECT ${tableIds}, 'c' || i % 20, 'volume', 'pass', 10, 'row count 10', 'schedule', now() - ${step}, now() - ${step}
         FROM generate_series(1, ${count}) AS i`,
        paged.pgDatabase!.name,
      );
    await write(String(table.id), 20_000, "(i / 20) * interval '1 minute'");
    await write("1000000 + i % 500", 20_000, "(i / 500) * interval '1 minute'");
    await write(String(quiet), 5, "interval '1 day' - i * interval '1 minute'");
    const client = new pg.Client({ connectionString: pgUrl(paged.pgDatabase!.name) });
    await client.connect();
    try {
      await client.query("ANALYZE check_runs");
      const plan = async (tableId: number, options: Omit<Parameters<typeof listCheckRuns>[2], "limit">) => {
        const { sql: text, params } = listCheckRuns(paged.deps.store.db, tableId, { limit: 100, ...options }).toSQL();
        const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${text}`, params);
        return JSON.stringify(rows[0]["QUERY PLAN"]);
      };
      // The table's runs found by its id, not the newest runs of every table filtered for it
      // (which for a table with few runs or none read the whole deployment's)...
      const byTable = (p: string) => expect(p).toMatch(/"Index Cond":"\(+table_id = \d+\)/);
      // ...and in page order (ties in one millisecond sorted as read, "Incremental Sort"): no
      // sort of all of them, so a page reads about a page of runs.
      const inOrder = (p: string) => {
        byTable(p);
        expect(p).not.toContain('"Node Type":"Sort"');
      };
      const at = new Date(Date.now() - 3_600_000);
      inOrder(await plan(table.id, {}));
      inOrder(await plan(table.id, { before: { at } }));
      inOrder(await plan(table.id, { before: { at, id: 1_000_000 } }));
      inOrder(await plan(table.id, { checkKey: "c3", before: { at, id: 1_000_000 } }));
      byTable(await plan(quiet, {}));
      byTable(await plan(quiet, { before: { at, id: 1_000_000 } }));
    } finally {
      await client.end();
    }
  });
});

describe("the API description", () => {
  it("documents the monitoring routes in /openapi.json", async () => {
    const doc = (await h.call("GET", "/openapi.json")).body;
    for (const path of ["/api/tables", "/api/tables/{id}", "/api/tables/{id}/run", "/api/tables/{id}/runs", "/api/alerts", "/api/alerts/{id}/ack", "/api/alerts/{id}/mute", "/api/alerts/{id}/resolve", "/api/channels", "/api/channels/{id}", "/api/channels/{id}/test"]) {
      expect(doc.paths[path], path).toBeDefined();
    }
  });
});

describe("a monitored table's history when the table goes", () => {
  /** Runs of one table: about three weeks of a one-minute check. */
  const HISTORY = 30_000;
  const HOUR = 3_600_000;
  let purging: Harness;
  const clock = testClock();

  beforeAll(async () => {
    purging = await createHarness({ now: clock.now, env: { WEBHOOK_ALLOW_PRIVATE: "true" } });
  });
  afterAll(async () => {
    await purging?.close();
  });

  /** `count` runs of `tableId`, one a minute back from `until`, written straight into the store. */
  const writeHistory = (tableId: number, count: number, until = new Date()) =>
    pgAdmin(
      `INSERT INTO check_runs (table_id, check_key, check_kind, status, value, message, trigger, started_at, finished_at)
       SELECT $1, 'volume', 'volume', 'pass', 10, 'row count 10', 'schedule', $3::timestamptz - i * interval '1 minute', $3::timestamptz - i * interval '1 minute'
       FROM generate_series(1, $2) AS i`,
      purging.pgDatabase!.name,
      [tableId, count, until.toISOString()],
    );
  const runsOf = async (tableId: number) =>
    (await pgAdmin<{ n: number }>("SELECT count(*)::int AS n FROM check_runs WHERE table_id = $1", purging.pgDatabase!.name, [tableId]))[0]!.n;

  type Removal = (user: { token: string; password: string }, connectionId: number, tableId: number) => Promise<{ status: number }>;
  /** Each way a table goes, and what its runs then answer to its owner's token. */
  const removals: [string, Removal, number][] = [
    ["the table", (user, _, tableId) => purging.call("DELETE", `/api/tables/${tableId}`, { token: user.token }), 404],
    ["its connection", (user, connectionId) => purging.call("DELETE", `/databases/${connectionId}`, { token: user.token }), 404],
    ["its owner's account", (user) => purging.call("DELETE", "/users/me", { token: user.token, json: { password: user.password } }), 401],
  ];

  it.each(removals)("deleting %s does not wait on the runs (no cascade that could outrun the store's bound); the next housekeeping purges them in batches", async (_, remove, runsAfter) => {
    const user = await purging.newUser();
    const connectionId = await addConnection(purging, user.token, target.body);
    const table = await monitorTable(purging, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "volume" }] });
    const other = await purging.newUser();
    const stays = await monitorTable(purging, other.token, { connection_id: await addConnection(purging, other.token, target.body), table: "events", checks: [{ kind: "volume" }] });
    await writeHistory(table.id, HISTORY);
    await writeHistory(stays.id, 10);

    expect((await remove(user, connectionId, table.id)).status).toBe(204);
    // Left to the scheduler: a cascade in the delete's own statement grows with the history
    // (millions of runs for a connection's tables) and could run past STORE_QUERY_TIMEOUT_MS.
    expect(await runsOf(table.id)).toBe(HISTORY);
    expect((await purging.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).status).toBe(runsAfter);
    // Housekeeping runs once an hour.
    clock.advance(HOUR);
    await purging.scheduler.tick();
    expect(await runsOf(table.id)).toBe(0);
    expect(await runsOf(stays.id)).toBeGreaterThanOrEqual(10);
  });

  it("keeps retention up with a deployment that writes more than one batch of runs an hour", async () => {
    const user = await purging.newUser();
    const table = await monitorTable(purging, user.token, { connection_id: await addConnection(purging, user.token, target.body), table: "events", checks: [{ kind: "volume" }] });
    const retentionDays = purging.config.monitor.runRetentionDays;
    const expired = new Date(clock.now() - (retentionDays + 1) * 86_400_000);
    await writeHistory(table.id, 25_000, expired);
    await writeHistory(table.id, 10);
    clock.advance(HOUR);
    await purging.scheduler.tick();
    // The ten recent ones stay, plus what the tick itself ran.
    expect(await runsOf(table.id)).toBeGreaterThanOrEqual(10);
    expect(await runsOf(table.id)).toBeLessThan(20);
  });

  it("prunes the notifications sent or given up on past retention, never a pending one", async () => {
    const user = await purging.newUser();
    const channel = await addWebhook(purging, user.token, "http://127.0.0.1:9/hook");
    const old = new Date(clock.now() - (purging.config.monitor.runRetentionDays + 1) * 86_400_000);
    const later = new Date(Date.now() + 86_400_000);
    for (const [key, status, createdAt] of [
      ["sent-long-ago", "sent", old],
      ["failed-long-ago", "failed", old],
      ["pending-long-ago", "pending", old],
      ["sent-yesterday", "sent", new Date(Date.now() - 86_400_000)],
    ] as const) {
      await pgAdmin(
        "INSERT INTO sent_notifications (dedup_key, channel_id, payload, status, next_attempt_at, created_at) VALUES ($1, $2, '{}', $3, $4, $5)",
        purging.pgDatabase!.name,
        [`${channel}:${key}`, channel, status, later.toISOString(), createdAt.toISOString()],
      );
    }
    clock.advance(HOUR);
    await purging.scheduler.tick();
    const left = await pgAdmin<{ dedup_key: string }>("SELECT dedup_key FROM sent_notifications WHERE channel_id = $1 ORDER BY id", purging.pgDatabase!.name, [channel]);
    expect(left.map((r) => r.dedup_key)).toEqual([`${channel}:pending-long-ago`, `${channel}:sent-yesterday`]);
  });
});

describe("a check whose dry run is slow", () => {
  let slow: Harness;
  beforeAll(async () => {
    slow = await createHarness({ env: { MONITOR_SLOW_CHECK_MS: "100" } });
  });
  afterAll(async () => {
    await slow?.close();
  });

  it("is saved with a warning of what each run will cost the monitored database; a check with no statement never warns", async () => {
    const user = await slow.newUser();
    const connectionId = await addConnection(slow, user.token, target.body);
    const heavy = "SELECT count(*) FROM generate_series(1, 5000000)";
    const created = await slow.call("POST", "/api/tables", {
      token: user.token,
      json: { connection_id: connectionId, table: "events", checks: [{ kind: "volume" }, { kind: "custom_sql", name: "heavy", sql: heavy, min: 0 }] },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.warnings).toEqual([
      expect.stringMatching(/^check custom_sql:heavy took \d+\.\d s on its dry run \(over MONITOR_SLOW_CHECK_MS, 100 ms\): each run will cost the monitored database about as much$/),
    ]);
    // Said once, when it is saved: not part of the table.
    expect((await slow.call("GET", `/api/tables/${created.body.id}`, { token: user.token })).body).not.toHaveProperty("warnings");
    const cheap = await slow.call("PATCH", `/api/tables/${created.body.id}`, { token: user.token, json: { checks: [{ kind: "volume" }] } });
    expect(cheap.status, cheap.text).toBe(200);
    expect(cheap.body).not.toHaveProperty("warnings");
  });

  it("stops dry-running once MONITOR_RUN_TIMEOUT_MS has passed, saving the rest untried with a warning each", async () => {
    const bounded = await createHarness({ env: { MONITOR_RUN_TIMEOUT_MS: "100", MONITOR_SLOW_CHECK_MS: "600000" } });
    try {
      const user = await bounded.newUser();
      const connectionId = await addConnection(bounded, user.token, target.body);
      const heavy = (name: string) => ({ kind: "custom_sql", name, sql: "SELECT count(*) FROM generate_series(1, 5000000)", min: 0 });
      const created = await bounded.call("POST", "/api/tables", {
        token: user.token,
        json: { connection_id: connectionId, table: "events", checks: [heavy("first"), heavy("second"), heavy("third")] },
      });
      expect(created.status, created.text).toBe(201);
      const untried = (key: string) => `check ${key} was saved untried: the dry runs before it passed MONITOR_RUN_TIMEOUT_MS (100 ms); its runs will say whether it works`;
      expect(created.body.warnings).toEqual([untried("custom_sql:second"), untried("custom_sql:third")]);
    } finally {
      await bounded.close();
    }
  });
});

describe("dry runs of checks that cannot work on MariaDB and SQLite", () => {
  let small: Harness;
  let maria: MonitoredDb;
  beforeAll(async () => {
    // Results over 1 KiB are too large.
    small = await createHarness({ env: { QUERY_MAX_BYTES: "1024" } });
    maria = await mariaMonitoredDb();
    await maria.exec("ALTER TABLE events ADD COLUMN y YEAR");
    await maria.exec("INSERT INTO events (ts, y) VALUES (NOW(3), 2026)");
  });
  afterAll(async () => {
    await small?.close();
    await maria?.drop();
  });

  it("refuses freshness of a YEAR column, which is no timestamp, naming it", async () => {
    const user = await small.newUser();
    const connectionId = await addConnection(small, user.token, maria.body);
    const res = await small.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: [{ kind: "freshness", column: "y" }] } });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.checks.0.column", message: expect.stringContaining("year") }]);
  });

  it("refuses custom SQL whose result is too large with 422 naming the check, not a bare 413", async () => {
    const user = await small.newUser();
    const sqlite = await sqliteMonitoredDb(small.sqliteRoot);
    const connectionId = await addConnection(small, user.token, sqlite.body);
    const sql = "SELECT printf('%.5000c', 'x')";
    const res = await small.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: [{ kind: "custom_sql", name: "wide", sql, max: 0 }] } });
    expect(res.status, res.text).toBe(422);
    expect(res.body.errors).toEqual([{ path: "body.checks.0.sql", message: expect.stringMatching(/^check custom_sql:wide cannot work: .*result limit/) }]);
  });
});
