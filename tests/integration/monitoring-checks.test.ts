// Every check kind against real PostgreSQL, MariaDB and SQLite: exact values, names quoted
// per dialect, writes refused by the guard and recorded as errors, the monitoring budget
// (spent budget and busy connection recorded as skipped) and the statement timeout.

import mysql from "mysql2/promise";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { runTableChecks } from "../../src/monitoring/run-table.js";
import { findMonitoredTable, updateMonitoredTable } from "../../src/store/monitoring-tables.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, mariaMonitoredDb, monitorTable, monitorTableUnchecked, monitoredDb, pgMonitoredDb, testClock, type Dialect, type MonitoredDb } from "../support/monitoring.js";
import { MARIADB, pgAdmin, pgUrl } from "../support/services.js";

const MINUTE = 60_000;

/** For a describe block: a harness on `env` and a PostgreSQL database to monitor (`prepare`d
 * before its tests), handed to `assign`, closed and dropped after them. */
function withPgMonitoring(env: Record<string, string>, assign: (made: { h: Harness; db: MonitoredDb }) => void, prepare?: (db: MonitoredDb) => Promise<unknown>) {
  let h: Harness | undefined;
  let db: MonitoredDb | undefined;
  beforeAll(async () => {
    h = await createHarness({ env });
    db = await pgMonitoredDb();
    await prepare?.(db);
    assign({ h, db });
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });
}

describe.each<Dialect>(["postgresql", "mysql", "sqlite"])("checks on %s", (dialect) => {
  let h: Harness;
  let db: MonitoredDb;
  const clock = testClock();
  const started = clock.now();
  let user: Awaited<ReturnType<Harness["newUser"]>>;
  let connectionId: number;

  beforeAll(async () => {
    h = await createHarness({ now: clock.now });
    db = await monitoredDb(dialect, h);
    // 7 events stamped 10 minutes ago, 3 of them without a note.
    await db.insertEvents(4, started - 10 * MINUTE);
    await db.insertEvents(3, started - 10 * MINUTE, null);
    user = await h.newUser();
    connectionId = await addConnection(h, user.token, db.body);
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  const run = async (table: { id: number }) => (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body;

  it("measures row count, data lag, null rate and a custom number exactly", async () => {
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [
        { kind: "volume", min_rows: 1 },
        { kind: "freshness", column: "ts", max_lag_seconds: 3600 },
        { kind: "null_rate", column: "note", max_rate: 0.25 },
        { kind: "null_rate", column: "id", max_rate: 0, recent_by: "ts", sample_rows: 5 },
        { kind: "custom_sql", name: "noted", sql: "SELECT count(note) FROM events", min: 1, max: 100 },
      ],
    });
    const report = await run(table);
    const [volume, freshness, notes, ids, custom] = report.outcomes;
    expect(volume).toMatchObject({ status: "pass", value: 7, details: { method: "exact" } });
    expect(freshness).toMatchObject({ status: "pass", value: 600, upper: 3600, details: { replication_lag_seconds: 0 } });
    expect(freshness.details.latest).toBe(new Date(started - 10 * MINUTE).toISOString());
    expect(notes).toMatchObject({ status: "fail", value: 3 / 7, details: { sampled_rows: 7, null_rows: 3 } });
    expect(notes.message).toMatch(/null rate of note 42\.9% is outside the limit/);
    expect(ids).toMatchObject({ status: "pass", value: 0, details: { sampled_rows: 5 } });
    expect(custom).toMatchObject({ status: "pass", value: 4 });
    expect(report.target).toMatchObject({ replica: false });
  });

  it("follows the clock: the same data is staler an hour later", async () => {
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "freshness", column: "ts", max_lag_seconds: 1800 }] });
    clock.advance(60 * MINUTE);
    try {
      const [freshness] = (await run(table)).outcomes;
      expect(freshness).toMatchObject({ status: "fail", value: 70 * 60 });
      expect(freshness.message).toBe("data lag 1 h 10 min is over the limit of 30 min");
    } finally {
      clock.advance(-60 * MINUTE);
    }
  });

  it("quotes user-given names, so odd table and column names just work", async () => {
    const odd = dialect === "mysql" ? "odd`tab'le" : 'odd "tab\'le';
    const col = "we'ird \"col`";
    const q = (name: string) => (dialect === "mysql" ? "`" + name.replaceAll("`", "``") + "`" : '"' + name.replaceAll('"', '""') + '"');
    const type = dialect === "mysql" ? "datetime(3)" : dialect === "postgresql" ? "timestamptz" : "text";
    await db.exec(`CREATE TABLE ${q(odd)} (${q(col)} ${type})`);
    const stamp = new Date(started - 2 * MINUTE).toISOString();
    const literal = dialect === "mysql" ? stamp.replace("T", " ").replace("Z", "") : stamp;
    await db.exec(`INSERT INTO ${q(odd)} VALUES ('${literal}'), (NULL)`);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: odd,
      checks: [{ kind: "volume", min_rows: 0 }, { kind: "freshness", column: col, max_lag_seconds: 600 }, { kind: "null_rate", column: col, max_rate: 1 }],
    });
    const statuses = (await run(table)).outcomes.map((o: any) => [o.check, o.status, o.value]);
    expect(statuses).toEqual([
      ["volume", "pass", 2],
      [`freshness:${col}`, "pass", 120],
      [`null_rate:${col}`, "pass", 0.5],
    ]);
  });

  it("samples the newest rows by recent_by among those that have a value, not the rows without one", async () => {
    const type = dialect === "mysql" ? "datetime(3)" : dialect === "postgresql" ? "timestamptz" : "text";
    const stamp = new Date(started - MINUTE).toISOString();
    const literal = dialect === "mysql" ? `'${stamp.replace("T", " ").replace("Z", "")}'` : `'${stamp}'`;
    await db.exec(`CREATE TABLE stamped (email text, updated_at ${type})`);
    // The five newest rows have lost their email; five older ones, never stamped, have theirs.
    for (let i = 0; i < 5; i++) await db.exec(`INSERT INTO stamped VALUES ('a@example.com', NULL), (NULL, ${literal})`);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "stamped",
      checks: [{ kind: "null_rate", column: "email", max_rate: 0.1, recent_by: "updated_at", sample_rows: 5 }],
    });
    expect((await run(table)).outcomes[0]).toMatchObject({ status: "fail", value: 1, details: { sampled_rows: 5, null_rows: 5 } });
  });

  it("refuses a stored custom SQL that writes: recorded as an error, nothing changed", async () => {
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", max: 100 }],
    });
    // The API refuses such SQL (422); a row stored before a guard rule existed must still be stopped.
    await updateMonitoredTable(h.deps.store.db, user.id, table.id, { checks: [{ kind: "custom_sql", name: "wipe", sql: "DELETE FROM events", max: 0 }] });
    const row = (await findMonitoredTable(h.deps.store.db, table.id))!;
    const report = await runTableChecks(h.deps, row, "manual");
    expect(report.outcomes[0]).toMatchObject({ check: "custom_sql:wipe", status: "error", value: null });
    expect(report.outcomes[0]!.message).toMatch(/^refused by the SQL guard: DELETE is not a read/);
    expect(report.outcomes[0]!.details).toMatchObject({ code: "sql_refused", rule: "not_read_only" });
    const [volume] = (await run(await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [{ kind: "volume", min_rows: 0 }] }))).outcomes;
    expect(volume.value).toBe(7);
  });

  type RefusedCheck = [string, { kind: string; name?: string; sql?: string; column?: string; max?: number; max_lag_seconds?: number }, string, RegExp];
  // PostgreSQL alone selects no column at all.
  const noColumn: RefusedCheck[] =
    dialect === "postgresql"
      ? [["custom SQL returning no column", { kind: "custom_sql", name: "bare", sql: "SELECT FROM events LIMIT 1", max: 1 }, "body.checks.0.sql", /^check custom_sql:bare cannot work: the statement returned no column: select the number to judge$/]]
      : [];
  it.each<RefusedCheck>([
    ["custom SQL naming a missing column", { kind: "custom_sql", name: "typo", sql: "SELECT count(nope) FROM events", max: 1 }, "body.checks.0.sql", /^check custom_sql:typo cannot work: .*nope/],
    ["custom SQL whose first column is text", { kind: "custom_sql", name: "words", sql: "SELECT note FROM events WHERE note IS NOT NULL", max: 1 }, "body.checks.0.sql", /^check custom_sql:words cannot work: the statement (must return exactly one row|'s first column must be a number)/],
    ["custom SQL returning no row", { kind: "custom_sql", name: "none", sql: "SELECT count(*) FROM events WHERE id < 0 GROUP BY id", max: 1 }, "body.checks.0.sql", /^check custom_sql:none cannot work: the statement must return exactly one row; it returned 0$/],
    ["custom SQL returning NULL", { kind: "custom_sql", name: "empty_sum", sql: "SELECT sum(id) FROM events WHERE id < 0", max: 1 }, "body.checks.0.sql", /^check custom_sql:empty_sum cannot work: the statement returned NULL, not a number: an aggregate over no rows\? Wrap it in COALESCE\(\.\.\., 0\) if none means 0$/],
    ["custom SQL returning a text value", { kind: "custom_sql", name: "label", sql: "SELECT 'abc' AS label", max: 1 }, "body.checks.0.sql", /^check custom_sql:label cannot work: the statement's first column must be a number; it was "abc"$/],
    // JavaScript's Number() would read these as 16 and 5.
    ["custom SQL returning hexadecimal text", { kind: "custom_sql", name: "hex", sql: "SELECT '0x10' AS hex", max: 1 }, "body.checks.0.sql", /^check custom_sql:hex cannot work: the statement's first column must be a number; it was "0x10"$/],
    ["custom SQL returning padded text", { kind: "custom_sql", name: "padded", sql: "SELECT ' 5 ' AS padded", max: 1 }, "body.checks.0.sql", /^check custom_sql:padded cannot work: the statement's first column must be a number; it was " 5 "$/],
    ["freshness of a text column", { kind: "freshness", column: "note", max_lag_seconds: 60 }, "body.checks.0.column", /^check freshness:note cannot work: column note (is text|holds "x", which is not a timestamp)/],
    ...noColumn,
  ])("answers 422 for %s at creation, after a dry run that records nothing", async (_name, check, path, message) => {
    const audited = async () => {
      await h.deps.audit!.flush();
      return (await h.call("GET", `/api/audit?source=monitor&connection_id=${connectionId}&limit=500`, { token: user.token })).body.records.length;
    };
    const before = await audited();
    const res = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: [check] } });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([{ path, message: expect.stringMatching(message) }]);
    expect(res.body.detail).toContain(check.kind === "custom_sql" ? `custom_sql:${check.name}` : "freshness:note");
    const typeOnly = check.kind === "freshness" && dialect !== "sqlite"; // refused by the column's type, before any statement
    expect((await audited()) - before).toBe(typeOnly ? 0 : 1);
    expect((await h.call("GET", "/api/tables", { token: user.token })).body.map((t: any) => t.checks)).not.toContainEqual([check]);
  });

  it("records a check on a table that disappeared as an error naming it", async () => {
    await db.exec("CREATE TABLE doomed (id int)");
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "doomed", checks: [{ kind: "volume", min_rows: 0 }, { kind: "schema_drift" }] });
    await run(table);
    await db.exec("DROP TABLE doomed");
    clock.advance(5 * MINUTE); // one interval: drift looks at a fresh introspection
    const [volume, drift] = (await run(table)).outcomes;
    // The cached schema still lists it, so the database itself says it is gone.
    expect(volume).toMatchObject({ status: "error", message: expect.stringMatching(/doomed/) });
    expect(drift).toMatchObject({ status: "fail", message: "the table no longer exists" });
  });
});

describe("the monitoring budget", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "3", MONITOR_MAX_CONCURRENCY: "1", MONITOR_STATEMENT_TIMEOUT_MS: "3000" }, (made) => ({ h, db } = made), (db) => db.insertEvents(5, Date.now()));

  it("records checks over the per-minute budget as skipped, and opens no alert for them", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const checks = ["a", "b", "c", "d", "e"].map((name) => ({ kind: "custom_sql" as const, name, sql: "SELECT 1", max: 10 }));
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events", alert: { open_after: 1 } }, checks);
    const { outcomes } = await runTableChecks(h.deps, (await findMonitoredTable(h.deps.store.db, table.id))!, "schedule");
    // One budget slot went to introspecting the schema, two to checks; the rest were skipped.
    expect(outcomes.map((o) => o.status)).toEqual(["pass", "pass", "skipped", "skipped", "skipped"]);
    expect(outcomes[2]!.message).toMatch(/^skipped: Query budget of this database for your checks is spent \(3 per minute\)/);
    const runs = (await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body;
    expect(runs.filter((r: any) => r.status === "skipped")).toHaveLength(3);
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);
  });
});

describe("a manual run past its database's budget", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "3", MONITOR_MAX_CONCURRENCY: "1" }, (made) => ({ h, db } = made));

  it("answers a manual run's checks skipped for the budget without keeping them: runs asked for without end would fill the history", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const checks = ["a", "b", "c", "d", "e"].map((name) => ({ kind: "custom_sql" as const, name, sql: "SELECT 1", max: 10 }));
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events" }, checks);
    const { outcomes } = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body;
    expect(outcomes.map((o: any) => o.status)).toEqual(["pass", "pass", "skipped", "skipped", "skipped"]);
    expect(outcomes.map((o: any) => o.run_id === null)).toEqual([false, false, true, true, true]);
    const runs = (await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body;
    expect(runs.map((r: any) => r.status)).toEqual(["pass", "pass"]);
  });
});

describe("a check its database's budget never lets run", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "2", MONITOR_ALERT_AFTER_SKIPS: "3" }, (made) => ({ h, db } = made));

  it("opens its alert once it was skipped MONITOR_ALERT_AFTER_SKIPS runs in a row", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const checks = ["a", "b"].map((name) => ({ kind: "custom_sql" as const, name, sql: "SELECT 1", max: 10 }));
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events", alert: { open_after: 1 } }, checks);
    const run = async () => (await runTableChecks(h.deps, (await findMonitoredTable(h.deps.store.db, table.id))!, "schedule")).outcomes.map((o) => o.status);
    const alerts = async () => (await h.call("GET", "/api/alerts", { token: user.token })).body;
    // The introspection and check a take the minute's two statements; b is skipped every time.
    expect(await run()).toEqual(["pass", "skipped"]);
    expect(await run()).toEqual(["skipped", "skipped"]);
    expect(await alerts()).toEqual([]);
    expect(await run()).toEqual(["skipped", "skipped"]);
    // b: three skips in a row; a ran in the first run.
    const [alert, ...others] = await alerts();
    expect(others).toEqual([]);
    expect(alert).toMatchObject({ check: "custom_sql:b", status: "open" });
    expect(alert.last_detail).toMatch(/^not run in its last 3 runs: skipped: Query budget of this database for your checks is spent \(2 per minute\)/);
    const runs = (await h.call("GET", `/api/tables/${table.id}/runs?check=custom_sql:b`, { token: user.token })).body;
    expect(runs.map((r: any) => r.status)).toEqual(["skipped", "skipped", "skipped"]);
  });
});

describe("the monitoring budget of a database saved twice", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "3", MONITOR_MAX_CONCURRENCY: "1" }, (made) => ({ h, db } = made));

  it("is one budget for both saved connections, not one each", async () => {
    const user = await h.newUser();
    const checks = ["a", "b"].map((name) => ({ kind: "custom_sql" as const, name, sql: "SELECT 1", max: 10 }));
    const tables = [];
    for (const host of ["127.0.0.1", "localhost"]) {
      const connectionId = await addConnection(h, user.token, { ...db.body, host });
      tables.push(await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events" }, checks));
    }
    const run = async (table: { id: number }) => (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes.map((o: any) => o.status);
    // An introspection and two checks spend the database's three statements a minute...
    expect(await run(tables[0])).toEqual(["pass", "pass"]);
    // ...so the other connection's introspection is refused, and its checks skipped.
    expect(await run(tables[1])).toEqual(["skipped", "skipped"]);
  });
});

describe("a table's run time", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_RUN_TIMEOUT_MS: "500", MONITOR_ALERT_AFTER_SKIPS: "2" }, (made) => ({ h, db } = made));

  it("starts no check past MONITOR_RUN_TIMEOUT_MS, and records the rest as skipped", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    // Each takes longer than the whole run may.
    const slow = (name: string) => ({ kind: "custom_sql" as const, name, sql: "SELECT count(*) FROM generate_series(1, 20000000)", min: 0 });
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events", alert: { open_after: 1 } }, [slow("a"), slow("b"), slow("c")]);
    const { outcomes } = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body;
    expect(outcomes.map((o: { status: string }) => o.status)).toEqual(["pass", "skipped", "skipped"]);
    expect(outcomes[2].message).toBe("skipped: the table's run passed MONITOR_RUN_TIMEOUT_MS (500 ms)");
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);

    // Skipped twice in a row (MONITOR_ALERT_AFTER_SKIPS): a check that never gets to run is
    // not left quiet. The runs stay recorded as skipped.
    const again = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(again.map((o: { status: string }) => o.status)).toEqual(["pass", "skipped", "skipped"]);
    const alerts = (await h.call("GET", "/api/alerts", { token: user.token })).body;
    expect(alerts.map((a: any) => [a.check, a.status]).sort()).toEqual([["custom_sql:b", "open"], ["custom_sql:c", "open"]]);
    expect(alerts[0].last_detail).toBe("not run in its last 2 runs: skipped: the table's run passed MONITOR_RUN_TIMEOUT_MS (500 ms)");
  });
});

describe("one monitoring statement at a time per database", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_MAX_CONCURRENCY: "1", MONITOR_STATEMENT_TIMEOUT_MS: "5000" }, (made) => ({ h, db } = made));

  it("lets one wait and skips the next instead of queueing without bound", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const slow = { kind: "custom_sql" as const, name: "slow", sql: "SELECT count(*) FROM generate_series(1, 3000000)", min: 0 };
    // Three tables of one connection: a table whose checks are running is not run again meanwhile.
    const tables = await Promise.all([1, 2, 3].map(() => monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events" }, [slow])));
    await h.call("POST", `/api/tables/${tables[0].id}/run`, { token: user.token }); // introspection done, connector open
    // Run as the scheduler runs them: on the schema already introspected (a manual run looks
    // at the schema again first, which takes a turn of its own).
    const rows = await Promise.all(tables.map(async (table) => (await findMonitoredTable(h.deps.store.db, table.id))!));
    const runs = await Promise.all(rows.map((row) => runTableChecks(h.deps, row, "schedule")));
    const statuses = runs.map((r) => r.outcomes[0]!.status).sort();
    expect(statuses).toEqual(["pass", "pass", "skipped"]);
    const skipped = runs.find((r) => r.outcomes[0]!.status === "skipped")!;
    expect(skipped.outcomes[0]!.message).toMatch(/Too many statements on this database for your checks: 1 running and 1 waiting/);
  });

  it("cancels a check at the statement timeout and records an error", async () => {
    const fast = await createHarness({ env: { MONITOR_STATEMENT_TIMEOUT_MS: "200" } });
    try {
      const user = await fast.newUser();
      const connectionId = await addConnection(fast, user.token, db.body);
      const slow = { kind: "custom_sql" as const, name: "slow", sql: "SELECT count(*) FROM generate_series(1, 50000000)", min: 0 };
      const table = await monitorTableUnchecked(fast, user, { connection_id: connectionId, table: "events" }, [slow]);
      const startedAt = Date.now();
      const [outcome] = (await fast.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
      expect(outcome).toMatchObject({ status: "error", details: { code: "query_timeout" } });
      expect(Date.now() - startedAt).toBeLessThan(3000);
    } finally {
      await fast.close();
    }
  });
});

describe("volume of what PostgreSQL keeps no estimate for", () => {
  let h: Harness;
  let db: MonitoredDb;
  let user: Awaited<ReturnType<Harness["newUser"]>>;
  let connectionId: number;
  beforeAll(async () => {
    h = await createHarness();
    db = await pgMonitoredDb();
    // Autovacuum analyzes the partitions, never their parent, whose reltuples stays -1.
    await db.exec("CREATE TABLE parted (id int NOT NULL) PARTITION BY RANGE (id)");
    await db.exec("CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (200)");
    await db.exec("CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (200) TO (1000)");
    await db.exec("INSERT INTO parted SELECT g FROM generate_series(0, 299) g");
    await db.exec("ANALYZE parted_low");
    await db.exec("ANALYZE parted_high");
    await db.exec("CREATE VIEW parted_view AS SELECT id FROM parted");
    user = await h.newUser();
    connectionId = await addConnection(h, user.token, db.body);
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  // exact_count_below 100: 300 rows are too many to count, as 300,000 would be at the default.
  const volumeOf = async (table: string) => {
    const monitored = await monitorTable(h, user.token, { connection_id: connectionId, table, checks: [{ kind: "volume", min_rows: 1, exact_count_below: 100 }] });
    return (await h.call("POST", `/api/tables/${monitored.id}/run`, { token: user.token })).body.outcomes[0];
  };

  it("takes a partitioned table's rows from its partitions' estimates", async () => {
    expect(await volumeOf("parted")).toMatchObject({ status: "pass", value: 300, details: { method: expect.stringMatching(/^(n_live_tup|reltuples)$/) } });
  });

  it("counts a big table emptied by DELETE as empty, though its estimate still says full", async () => {
    await db.exec("CREATE TABLE emptied AS SELECT g AS id FROM generate_series(1, 300) g");
    await db.exec("ANALYZE emptied");
    await db.exec("DELETE FROM emptied");
    // The live count follows the DELETE once its session's statistics are flushed (within a
    // second of it going idle); reltuples stays 300 until a VACUUM or ANALYZE.
    for (let tries = 0; ; tries++) {
      const [row] = await pgAdmin<{ live: string; est: number }>(
        "SELECT s.n_live_tup AS live, c.reltuples AS est FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'emptied'",
        db.body.database_name as string,
      );
      if (Number(row!.live) === 0) {
        expect(row!.est).toBe(300);
        break;
      }
      expect(tries).toBeLessThan(100);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await volumeOf("emptied")).toMatchObject({ status: "fail", value: 0, details: { method: "exact" } });
  });

  it("says a view too large to count has no estimate, and what to do instead of ANALYZE", async () => {
    const outcome = await volumeOf("parted_view");
    expect(outcome).toMatchObject({ status: "error" });
    expect(outcome.message).toMatch(/a view has none: raise exact_count_below/);
  });
});

describe("freshness with timestamps in the future", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "100000" }, (made) => ({ h, db } = made));

  it("takes a clock or a zone a few hours ahead as fresh, and refuses a sentinel that would read as fresh for ever", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    await db.insertEvents(1, Date.now() + 5 * 3_600_000);
    const check = { kind: "freshness", column: "ts", max_lag_seconds: 3600 };
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", checks: [check] });
    // Saved, with what a column of local time read as UTC would hide.
    expect(table.warnings).toEqual([expect.stringMatching(/^check freshness:ts: its newest value, \S+, is (4 h 59 min|5 h) ahead of now, and reads as fresh: if the column holds local time/)]);
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes[0].status).toBe("pass");
    await db.insertEvents(1, Date.parse("9999-12-31T00:00:00Z"));
    const run = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes[0];
    expect(run).toMatchObject({ status: "error", message: expect.stringMatching(/^the newest ts is 9999-12-31T00:00:00.000Z, .* in the future: a sentinel or scheduled row hides how fresh the data is/) });
    // And so a save's dry run refuses it.
    const saved = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: [{ ...check, max_lag_seconds: 7200 }] } });
    expect(saved.status).toBe(422);
    expect(saved.body.detail).toMatch(/in the future/);
  });
});

describe("freshness of a column without a time zone, written in local time", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "100000" }, (made) => ({ h, db } = made), async (db) => {
    await db.exec(`ALTER DATABASE "${db.body.database_name as string}" SET timezone = 'America/New_York'`);
    await db.exec("CREATE TABLE local_events (at timestamp NOT NULL)");
  });

  it("reads it in the check's timezone: a row five hours old is stale, one a minute old fresh", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    // As the database's own sessions write now() into a timestamp: New York's wall clock.
    await db.exec("INSERT INTO local_events VALUES (now() - interval '5 hours')");
    const check = { kind: "freshness", column: "at", max_lag_seconds: 3600, timezone: "America/New_York" };
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "local_events", checks: [check] });
    const lagNow = async () => (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes[0];
    const stale = await lagNow();
    expect(stale.status).toBe("fail");
    expect(Math.abs(stale.value - 5 * 3600)).toBeLessThan(60);
    await db.exec("INSERT INTO local_events VALUES (now() - interval '1 minute')");
    const fresh = await lagNow();
    expect(fresh.status).toBe("pass");
    expect(Math.abs(fresh.value - 60)).toBeLessThan(60);
    // Read as UTC (no timezone), the same minute-old row is five hours stale.
    const utc = await monitorTable(h, user.token, { connection_id: connectionId, table: "local_events", checks: [{ ...check, timezone: undefined }] });
    expect((await h.call("POST", `/api/tables/${utc.id}/run`, { token: user.token })).body.outcomes[0].status).toBe("fail");
  });

  it("makes a change of zone another check: its lags a new series, the old one's alert gone; one freshness check a column", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    await db.exec("INSERT INTO local_events VALUES (now() - interval '1 minute')");
    // Read as UTC, a minute-old row of New York's wall clock is hours stale: an alert opens.
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "local_events", alert: { open_after: 1 }, checks: [{ kind: "freshness", column: "at", max_lag_seconds: 3600 }] });
    const run = async () => (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes[0];
    expect(await run()).toMatchObject({ check: "freshness:at", status: "fail" });
    const alerts = async () => ((await h.call("GET", `/api/alerts?table_id=${table.id}`, { token: user.token })).body as { check: string }[]).map((a) => a.check);
    expect(await alerts()).toEqual(["freshness:at"]);
    // Its zone said, spelt any way: saved in the zone's own spelling, run as a new series.
    const patched = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "freshness", column: "at", max_lag_seconds: 3600, timezone: "america/new_york" }] } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.checks).toEqual([{ kind: "freshness", column: "at", max_lag_seconds: 3600, timezone: "America/New_York" }]);
    expect(await alerts()).toEqual([]);
    expect(await run()).toMatchObject({ check: "freshness:at@America/New_York", status: "pass" });
    // Its series holds only the runs read in its zone; the UTC one's stay under their own name.
    const runsOf = async (check: string) => ((await h.call("GET", `/api/tables/${table.id}/runs?check=${encodeURIComponent(check)}`, { token: user.token })).body as unknown[]).length;
    expect([await runsOf("freshness:at@America/New_York"), await runsOf("freshness:at")]).toEqual([1, 1]);
    // Two freshness checks of one column are one too many, whatever their zones.
    const twice = await h.call("PATCH", `/api/tables/${table.id}`, {
      token: user.token,
      json: { checks: [{ kind: "freshness", column: "at", max_lag_seconds: 3600 }, { kind: "freshness", column: "at", max_lag_seconds: 3600, timezone: "Asia/Tokyo" }] },
    });
    expect(twice.status).toBe(422);
    expect(twice.body.errors).toEqual([{ path: "body.checks.1", message: "duplicates check 0 (freshness:at)" }]);
    // A zone's other names are the same zone, and the same check: UTC's aliases are UTC.
    for (const [sent, saved, name] of [["US/Eastern", "America/New_York", "freshness:at@America/New_York"], ["Etc/UTC", "UTC", "freshness:at"]]) {
      const renamed = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { checks: [{ kind: "freshness", column: "at", max_lag_seconds: 3600, timezone: sent }] } });
      expect(renamed.body.checks[0].timezone).toBe(saved);
      expect((await run()).check).toBe(name);
    }
  });

  it("refuses a time zone it does not know, naming the check's field", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const res = await h.call("POST", "/api/tables", {
      token: user.token,
      json: { connection_id: connectionId, table: "local_events", checks: [{ kind: "freshness", column: "at", max_lag_seconds: 60, timezone: "Mars/Olympus" }] },
    });
    expect(res.status).toBe(422);
    expect(res.body.errors[0].path).toBe("body.checks.0.timezone");
    expect(res.body.errors[0].message).toMatch(/unknown time zone Mars\/Olympus/);
  });
});

describe("freshness of a MariaDB DATETIME written in local time", () => {
  let h: Harness;
  let db: MonitoredDb;
  beforeAll(async () => {
    h = await createHarness({ env: { MONITOR_QUERIES_PER_MINUTE: "100000" } });
    db = await mariaMonitoredDb();
    await db.exec("CREATE TABLE local_events (at DATETIME NOT NULL)");
  });
  afterAll(async () => {
    await h?.close();
    await db?.drop();
  });

  /** Runs `sql` in a session of New York's time, where NOW() is its wall clock. The shared server
   * has no time zone tables (SET time_zone = 'America/New_York' is refused there, and loading them
   * would change a shared server): New York's offset now stands in for its name, the same for
   * rows written now. */
  async function inNewYork(sql: string) {
    const offset = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", timeZoneName: "longOffset" })
      .formatToParts(new Date())
      .find((part) => part.type === "timeZoneName")!
      .value.replace("GMT", "");
    const conn = await mysql.createConnection({ ...MARIADB, database: db.body.database_name as string });
    try {
      await conn.query(`SET time_zone = '${offset}'`);
      await conn.query(sql);
    } finally {
      await conn.end();
    }
  }

  it("reads it in the check's timezone: a row written a minute ago is a minute old, not five hours", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    await inNewYork("INSERT INTO local_events VALUES (NOW() - INTERVAL 1 MINUTE)");
    const check = { kind: "freshness", column: "at", max_lag_seconds: 3600, timezone: "America/New_York" };
    const local = await monitorTable(h, user.token, { connection_id: connectionId, table: "local_events", checks: [check] });
    const fresh = (await h.call("POST", `/api/tables/${local.id}/run`, { token: user.token })).body.outcomes[0];
    expect(fresh.status, fresh.message).toBe("pass");
    expect(Math.abs(fresh.value - 60)).toBeLessThan(60);
    // Read as UTC (no timezone), the same row is New York's offset (four or five hours) stale.
    const utc = await monitorTable(h, user.token, { connection_id: connectionId, table: "local_events", checks: [{ ...check, timezone: undefined }] });
    const stale = (await h.call("POST", `/api/tables/${utc.id}/run`, { token: user.token })).body.outcomes[0];
    expect(stale.status).toBe("fail");
    expect(stale.value).toBeGreaterThan(4 * 3600);
    expect(stale.value).toBeLessThan(5 * 3600 + 120);
  });
});

describe("a table moved while its run is under way", () => {
  let h: Harness;
  let db: MonitoredDb;
  withPgMonitoring({ MONITOR_QUERIES_PER_MINUTE: "100000" }, (made) => ({ h, db } = made), async (db) => {
    for (const name of ["t_a", "t_b", "t_c"]) await db.exec(`CREATE TABLE ${name} (id int, ${name.slice(2)} text)`);
  });

  it("keeps no schema snapshot of the table the run read: the next run takes the new table's", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "t_a", checks: [{ kind: "volume" }, { kind: "schema_drift" }] });
    expect((await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { table: "t_b" } })).status).toBe(200);
    const locker = new pg.Client({ connectionString: pgUrl(db.body.database_name as string) });
    await locker.connect();
    try {
      await locker.query("BEGIN; LOCK TABLE t_b IN ACCESS EXCLUSIVE MODE");
      const running = h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
      await vi.waitFor(
        async () => {
          const [row] = await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", "postgres", [db.body.database_name]);
          expect(Number(row!.n)).toBeGreaterThan(0);
        },
        { timeout: 10_000, interval: 50 },
      );
      expect((await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { table: "t_c" } })).status).toBe(200);
      await locker.query("ROLLBACK");
      const moved = (await running).body.outcomes.find((o: any) => o.kind === "schema_drift");
      expect(moved.message).toMatch(/^no snapshot taken: the table was moved/);
    } finally {
      await locker.end();
    }
    const next = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(next.find((o: any) => o.kind === "schema_drift")).toMatchObject({ status: "pass" });
    expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes.find((o: any) => o.kind === "schema_drift")).toMatchObject({ status: "pass" });
  });
});
