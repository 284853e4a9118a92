// Replica awareness against a real streaming standby (tests/support/pg-standby.ts): primary or
// replica and replay lag in the connection test and in run reports, freshness that does not
// blame a table for the standby's lag (and does not excuse a primary that stopped writing),
// row counts from what a standby replicates, and guarded reads on a server that cannot write.
//
// Replay lag is the server's clock against the primary's commit times, so the monitoring
// clock here is the real one, and lag is made for real: replay paused, then a wait.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createPostgresDriver } from "../../src/connectors/drivers/postgres.js";
import { DomainError } from "../../src/errors.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable } from "../support/monitoring.js";
import { startPgStandbyPair, type PgNode, type PgStandbyPair } from "../support/pg-standby.js";
import { uniqueName } from "../support/services.js";

/** How long a paused standby is left behind: long enough to tell apart from noise. */
const LAG_MS = 1_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let pair: PgStandbyPair;
let h: Harness;
let user: Awaited<ReturnType<Harness["newUser"]>>;
let primaryId: number;
let standbyId: number;

const connectionBody = (node: PgNode) => ({
  db_type: "postgresql",
  host: node.host,
  port: node.port,
  database_name: pair.database,
  username: "postgres",
  db_password: "unused",
});

beforeAll(async () => {
  pair = await startPgStandbyPair();
  h = await createHarness();
  user = await h.newUser();
  primaryId = await addConnection(h, user.token, connectionBody(pair.primary));
  standbyId = await addConnection(h, user.token, connectionBody(pair.standby));
}, 60_000);

afterAll(async () => {
  await h?.close();
  await pair?.stop();
});

/** A fresh table on the primary, `events (id, ts default now(), note)`, replayed on the standby. */
async function eventsTable(): Promise<string> {
  const name = uniqueName("events");
  await pair.onPrimary(`CREATE TABLE ${name} (id serial primary key, ts timestamptz not null default now(), note text)`);
  await pair.waitFor("replayed");
  return name;
}

/** Runs `during` with the standby's replay paused after the primary committed `write` (received
 * by the standby, not applied) and `LAG_MS` went by; replay resumes and catches up afterwards. */
async function whileLagging<T>(write: string, during: () => Promise<T>): Promise<T> {
  await pair.pauseReplay();
  try {
    await pair.onPrimary(write);
    await pair.waitFor("received");
    await sleep(LAG_MS);
    return await during();
  } finally {
    await pair.resumeReplay();
    await pair.waitFor("replayed");
  }
}

const probe = async (id: number) => {
  const res = await h.call("POST", `/databases/${id}/test`, { token: user.token });
  expect(res.status).toBe(200);
  return res.body;
};
const run = async (table: { id: number }) => {
  const res = await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token });
  expect(res.status).toBe(200);
  return res.body;
};
const query = (id: number, sql: string, extra: Record<string, unknown> = {}) =>
  h.call("POST", `/databases/${id}/query`, { token: user.token, json: { sql, ...extra } });

describe("POST /databases/{id}/test", () => {
  it("reports the primary as a writable primary without replay lag", async () => {
    expect(await probe(primaryId)).toMatchObject({ ok: true, server_version: expect.stringMatching(/^15\./), replica: false, read_only: false, replication_lag_seconds: null });
  });

  it("reports a caught-up standby as a read-only replica with no lag, however long the primary has been idle", async () => {
    await eventsTable(); // a commit, replayed, then silence
    await sleep(300);
    expect(await probe(standbyId)).toMatchObject({ ok: true, replica: true, read_only: true, replication_lag_seconds: 0 });
  });

  it("reports how far a standby whose replay is paused is behind", async () => {
    const table = await eventsTable();
    const tested = await whileLagging(`INSERT INTO ${table} (note) VALUES ('unreplayed')`, () => probe(standbyId));
    expect(tested).toMatchObject({ replica: true, read_only: true });
    expect(tested.replication_lag_seconds).toBeGreaterThanOrEqual(LAG_MS / 1000);
    expect(tested.replication_lag_seconds).toBeLessThan(LAG_MS / 1000 + 10);
  });
});

describe("monitoring runs on a standby", () => {
  it("reports the target of each run: the standby as a replica, the primary as a primary", async () => {
    const table = await eventsTable();
    // Connections of their own: a run reports the target as probed at most once a minute per
    // connection, and other tests probe the shared ones while replay is paused.
    const on = async (node: PgNode) =>
      monitorTable(h, user.token, { connection_id: await addConnection(h, user.token, connectionBody(node)), table, checks: [{ kind: "volume", min_rows: 0 }] });
    expect((await run(await on(pair.standby))).target).toEqual({ replica: true, replication_lag_seconds: 0 });
    expect((await run(await on(pair.primary))).target).toEqual({ replica: false, replication_lag_seconds: null });
  });

  it("does not blame a table for the standby's replay lag, and sees the new rows once replayed", async () => {
    const table = await eventsTable();
    await pair.onPrimary(`INSERT INTO ${table} (note) VALUES ('replayed')`);
    await pair.waitFor("replayed");
    // A connection of its own, probed for the first time while replay is paused.
    const laggingId = await addConnection(h, user.token, connectionBody(pair.standby));
    const freshness = (max_lag_seconds: number) => [{ kind: "freshness", column: "ts", max_lag_seconds }];
    const onStandby = await monitorTable(h, user.token, { connection_id: laggingId, table, checks: freshness(1) });
    const onPrimary = await monitorTable(h, user.token, { connection_id: primaryId, table, checks: freshness(60) });
    const stamps = async () =>
      (await pair.onPrimary<{ note: string; ts: Date }>(`SELECT note, ts FROM ${table}`)).reduce<Record<string, string>>(
        (all, row) => ({ ...all, [row.note]: row.ts.toISOString() }),
        {},
      );

    const lagging = await whileLagging(`INSERT INTO ${table} (note) VALUES ('unreplayed')`, () => run(onStandby));
    const ts = await stamps();
    const [standbyFreshness] = lagging.outcomes;
    // The standby's newest row is LAG_MS old, all of it replay lag: the data itself is fresh.
    expect(standbyFreshness).toMatchObject({ status: "pass", upper: 1, details: { latest: ts.replayed } });
    expect(standbyFreshness.details.lag_seconds).toBeGreaterThanOrEqual(LAG_MS / 1000);
    expect(standbyFreshness.details.replication_lag_seconds).toBeGreaterThanOrEqual(LAG_MS / 1000);
    expect(standbyFreshness.value).toBeLessThan(0.5);
    expect(standbyFreshness.message).toMatch(/^data lag 0 s is within the limit of 1 s; the replica itself is \d s behind$/);
    expect(lagging.target.replica).toBe(true);
    expect(lagging.target.replication_lag_seconds).toBeGreaterThanOrEqual(LAG_MS / 1000);

    // The primary has the newer row, and no replay lag to subtract from its age.
    const [primaryFreshness] = (await run(onPrimary)).outcomes;
    expect(primaryFreshness).toMatchObject({ status: "pass", details: { latest: ts.unreplayed, replication_lag_seconds: 0 } });
    expect(primaryFreshness.value).toBe(primaryFreshness.details.lag_seconds);

    // Replayed: the standby sees the primary's row and is no longer behind, so the row's whole
    // age (over LAG_MS by now) is the data's: over the limit.
    const [caughtUp] = (await run(onStandby)).outcomes;
    expect(caughtUp).toMatchObject({ status: "fail", details: { latest: ts.unreplayed, replication_lag_seconds: 0 } });
    expect(caughtUp.value).toBe(caughtUp.details.lag_seconds);
  });

  it("still finds a primary that stopped writing stale: a caught-up standby excuses nothing", async () => {
    const table = await eventsTable();
    await pair.onPrimary(`INSERT INTO ${table} (ts, note) VALUES (now() - interval '10 minutes', 'old')`);
    await pair.waitFor("replayed");
    await sleep(300); // the primary idle: its last commit recedes, the standby is still caught up
    const monitored = await monitorTable(h, user.token, { connection_id: standbyId, table, checks: [{ kind: "freshness", column: "ts", max_lag_seconds: 300 }] });
    const [freshness] = (await run(monitored)).outcomes;
    expect(freshness).toMatchObject({ status: "fail", details: { replication_lag_seconds: 0 } });
    expect(freshness.value).toBe(freshness.details.lag_seconds);
    expect(freshness.value).toBeGreaterThanOrEqual(600);
    expect(freshness.message).toBe("data lag 10 min is over the limit of 5 min");
  });

  it("counts a small table exactly, as far as the standby has replayed", async () => {
    const table = uniqueName("small");
    await pair.onPrimary(`CREATE TABLE ${table} AS SELECT g AS id FROM generate_series(1, 20) g`);
    await pair.waitFor("replayed");
    const monitored = await monitorTable(h, user.token, { connection_id: standbyId, table, checks: [{ kind: "volume", min_rows: 0 }] });
    const volume = async () => (await run(monitored)).outcomes[0];

    expect(await volume()).toMatchObject({ status: "pass", value: 20, details: { method: "exact" } });
    expect(await whileLagging(`INSERT INTO ${table} SELECT generate_series(21, 25)`, volume)).toMatchObject({ value: 20 });
    expect(await volume()).toMatchObject({ status: "pass", value: 25, details: { method: "exact" } });
  });

  it("reads a big table's count from the replicated pg_class.reltuples, never the standby's empty pg_stat counters", async () => {
    const table = uniqueName("big");
    await pair.onPrimary(`CREATE TABLE ${table} AS SELECT g AS id FROM generate_series(1, 1000) g`);
    await pair.waitFor("replayed");
    const checks = [{ kind: "volume", exact_count_below: 100 }];
    const onStandby = await monitorTable(h, user.token, { connection_id: standbyId, table, checks });
    const onPrimary = await monitorTable(h, user.token, { connection_id: primaryId, table, checks });
    const volume = async (monitored: { id: number }) => (await run(monitored)).outcomes[0];
    const liveTuples = async (on: "onPrimary" | "onStandby") =>
      Number((await pair[on]<{ n: string }>("SELECT n_live_tup AS n FROM pg_stat_user_tables WHERE relname = $1", [table]))[0]?.n);
    const primaryCounted = async (n: number) => {
      for (let i = 0; i < 100 && (await liveTuples("onPrimary")) !== n; i++) await sleep(20);
    };

    // Never analyzed: the primary's activity counters know, the standby's never will.
    await primaryCounted(1000);
    expect(await liveTuples("onStandby")).toBe(0);
    expect(await volume(onPrimary)).toMatchObject({ status: "pass", value: 1000, details: { method: "n_live_tup" } });
    expect(await volume(onStandby)).toMatchObject({
      status: "error",
      value: null,
      message: "more than 100 rows and no row estimate: run ANALYZE on the table (on the primary)",
    });

    await pair.onPrimary(`ANALYZE ${table}`);
    await pair.waitFor("replayed");
    expect(await volume(onStandby)).toMatchObject({ status: "pass", value: 1000, details: { method: "reltuples" } });

    // The estimate is as fresh as the primary's last ANALYZE (autovacuum's, in real life).
    await pair.onPrimary(`INSERT INTO ${table} SELECT generate_series(1001, 1500)`);
    await pair.waitFor("replayed");
    await primaryCounted(1500);
    expect(await volume(onPrimary)).toMatchObject({ value: 1500, details: { method: "n_live_tup" } });
    expect(await volume(onStandby)).toMatchObject({ value: 1000, details: { method: "reltuples" } });
    await pair.onPrimary(`ANALYZE ${table}`);
    await pair.waitFor("replayed");
    expect(await volume(onStandby)).toMatchObject({ status: "pass", value: 1500, details: { method: "reltuples" } });
  });

  it("runs null-rate, custom SQL and schema-drift checks on the standby", async () => {
    const table = await eventsTable();
    await pair.onPrimary(`INSERT INTO ${table} (note) VALUES ('a'), ('b'), (NULL), (NULL)`);
    await pair.waitFor("replayed");
    const monitored = await monitorTable(h, user.token, {
      connection_id: standbyId,
      table,
      checks: [
        { kind: "null_rate", column: "note", max_rate: 0.5 },
        { kind: "custom_sql", name: "noted", sql: `SELECT count(note) FROM ${table}`, min: 2, max: 2 },
        { kind: "schema_drift" },
      ],
    });
    const outcomes = (await run(monitored)).outcomes.map((o: any) => [o.check, o.status, o.value]);
    expect(outcomes).toEqual([
      ["null_rate:note", "pass", 0.5],
      ["custom_sql:noted", "pass", 2],
      ["schema_drift", "pass", expect.anything()],
    ]);
  });
});

describe("POST /databases/{id}/query on a standby", () => {
  it("answers reads with what the standby has replayed", async () => {
    const table = await eventsTable();
    await pair.onPrimary(`INSERT INTO ${table} (note) VALUES ('one'), ('two')`);
    await pair.waitFor("replayed");
    // A timeout other than the session's adds SET LOCAL to the pipeline: that works in recovery too.
    const res = await query(standbyId, `SELECT count(*)::int AS n, pg_is_in_recovery() AS replica FROM ${table}`, { timeout_ms: 5_000 });
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ columns: ["n", "replica"], rows: [[2, true]] });
  });

  it("refuses a write with the guard before the standby sees it", async () => {
    const table = await eventsTable();
    const res = await query(standbyId, `DELETE FROM ${table}`);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "sql_refused" });
  });

  it("keeps the driver's read-only transactions on a standby, guard or no guard", async () => {
    const table = await eventsTable();
    const driver = await createPostgresDriver(
      { dialect: "postgresql", host: pair.standby.host, port: pair.standby.port, database: pair.database, username: "postgres", password: "", ssl: false, connectTimeoutMs: 3_000 },
      { maxConnections: 1, idleTimeoutMs: 1_000 },
    );
    const limits = { maxRows: 10, maxBytes: 100_000, timeoutMs: 5_000 };
    try {
      const write = await driver.query(`INSERT INTO ${table} (note) VALUES ('x')`, limits).catch((err: unknown) => err);
      expect(write).toBeInstanceOf(DomainError);
      expect(write).toMatchObject({ code: "sql_failed", extra: { sqlstate: "25006" } });
      // Advisory locks are allowed in recovery; the pipeline's unlock step must work there too.
      expect((await driver.query("SELECT pg_try_advisory_lock(42) AS locked", limits)).rows).toEqual([[true]]);
      expect((await driver.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory'", limits)).rows).toEqual([[0]]);
    } finally {
      await driver.close();
    }
  });
});
