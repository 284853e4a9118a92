// Connection affinity against a real PostgreSQL metadata store: one instance at a time runs a
// connection's checks, so its monitoring budget (one statement at a time by default, kept in
// each process) holds across instances; scheduled claims and manual runs obey it alike, and
// other connections still go to whichever instance is free.
// (Leases in general: monitoring-scheduler.test.ts; the CLI: monitoring-cli.test.ts.)

import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { createScheduler } from "../../src/monitoring/scheduler.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, pgMonitoredDb, runsPerTable, testClock, tickTogetherUntilIdle, type MonitoredDb, type TestClock } from "../support/monitoring.js";
import { seededRandom } from "../support/random.js";
import { PG, pgAdmin } from "../support/services.js";

/** One interval plus the most jitter a 60 s interval can get (a tenth of it). */
const CYCLE = 60_000 + 6_000;
/** Sessions running a statement on the check's database as the check's own statement ends
 * (it included): any two overlapping statements make the first to end see 2. */
const SESSIONS_AT_ONCE_SQL =
  "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND backend_type = 'client backend') " +
  "FROM (SELECT count(*) FROM generate_series(1, 500000)) s";
const atOnce = { kind: "custom_sql", name: "sessions_at_once", sql: SESSIONS_AT_ONCE_SQL, min: 1, max: 1 };
const blocked = { kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM locked_events", min: 0 };

let db1: MonitoredDb;
let db2: MonitoredDb;
beforeAll(async () => {
  [db1, db2] = await Promise.all([pgMonitoredDb(), pgMonitoredDb()]);
  await db1.insertEvents(3, Date.now());
  await db2.insertEvents(3, Date.now());
  // Checks of this table block on a lock the test holds: they run as long as the test wants.
  await db1.exec("CREATE TABLE locked_events (id int)");
});
afterAll(async () => {
  await db1?.drop();
  await db2?.drop();
});

/** Two instances on one store, with their schedulers' own clock and seeded jitter. */
let a: Harness;
let b: Harness;
let clock: TestClock;
beforeEach(async () => {
  clock = testClock();
  const env = { MONITOR_MAX_CONCURRENCY: "2" };
  a = await createHarness({ now: clock.now, random: seededRandom(1), env });
  b = await createHarness({ now: clock.now, random: seededRandom(2), env, shareWith: a });
});
afterEach(async () => {
  await b?.close();
  await a?.close();
});

async function monitorTables(token: string, connectionId: number, count: number, table: string, check: Record<string, unknown>): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push((await monitorTable(a, token, { connection_id: connectionId, table, interval_seconds: 60, checks: [check] })).id);
  return ids;
}

const leaseOf = async (id: number) =>
  (await pgAdmin<{ lease_owner: string | null; next_run_at: Date }>("SELECT lease_owner, next_run_at FROM monitored_tables WHERE id = $1", a.pgDatabase!.name, [id]))[0]!;

async function until(condition: () => boolean | Promise<boolean>, what: string) {
  for (const deadline = Date.now() + 20_000; !(await condition()); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
  }
}

/** Holds ACCESS EXCLUSIVE on db1's locked_events until release() (which commits). */
async function lockEvents() {
  const locker = new pg.Client({ ...PG, database: db1.body.database_name as string });
  await locker.connect();
  await locker.query("BEGIN");
  await locker.query("LOCK TABLE locked_events IN ACCESS EXCLUSIVE MODE");
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await locker.query("COMMIT");
      await locker.end();
    },
  };
}

const byId = (x: number, y: number) => x - y;

describe("two schedulers on one store", () => {
  it("never run one connection's checks on two instances at once, and run every due table once per interval", async () => {
    const user = await a.newUser();
    const connectionOf = new Map<number, number>();
    for (const db of [db1, db2]) {
      const connectionId = await addConnection(a, user.token, db.body);
      for (const id of await monitorTables(user.token, connectionId, 4, "events", atOnce)) connectionOf.set(id, connectionId);
    }
    const tables = [...connectionOf.keys()].sort(byId);
    const cycles = 3;
    for (let cycle = 1; cycle <= cycles; cycle++) {
      clock.advance(CYCLE);
      const claimed = await tickTogetherUntilIdle(a.scheduler, b.scheduler, (onA, onB) => {
        const connectionsOnA = new Set(onA.map((id) => connectionOf.get(id)));
        expect(onB.filter((id) => connectionsOnA.has(connectionOf.get(id))), "tables of a connection the other instance runs").toEqual([]);
      });
      expect(claimed).toEqual(tables);
    }
    expect([...(await runsPerTable(a, tables)).values()]).toEqual(tables.map(() => cycles));
    // What the monitored databases saw: never two statements of one connection at once.
    const values = await pgAdmin<{ value: number }>("SELECT value FROM check_runs WHERE table_id = ANY($1::int[])", a.pgDatabase!.name, [tables]);
    expect(values).toHaveLength(tables.length * cycles);
    expect(new Set(values.map((r) => r.value))).toEqual(new Set([1]));
  });

  it("give another connection's due tables to the second instance, and none of the busy connection's", async () => {
    const user = await a.newUser();
    const busyConnection = await addConnection(a, user.token, db1.body);
    const busyTables = await monitorTables(user.token, busyConnection, 3, "locked_events", blocked);
    const lock = await lockEvents();
    try {
      clock.advance(CYCLE);
      const firstTick = a.scheduler.tick();
      await until(() => a.scheduler.running === 2, "the first instance runs two of the busy connection's tables");
      const owners = await Promise.all(busyTables.map(async (id) => (await leaseOf(id)).lease_owner));
      const waiting = busyTables.filter((_, i) => owners[i] === null);
      expect(waiting).toHaveLength(1);

      // Another connection's tables fall due meanwhile: the second instance takes them, and
      // leaves the busy connection's third table (due, unleased) alone.
      const otherConnection = await addConnection(a, user.token, db2.body);
      const otherTables = await monitorTables(user.token, otherConnection, 2, "events", { kind: "volume", min_rows: 1 });
      clock.advance(CYCLE);
      expect((await b.scheduler.tick()).claimed.sort(byId)).toEqual(otherTables);
      expect(a.scheduler.running).toBe(2);

      await lock.release();
      expect((await firstTick).claimed).toHaveLength(2);
      // The connection is free again: whichever instance claims next takes its last table.
      expect((await b.scheduler.tick()).claimed).toEqual(waiting);
      expect([...(await runsPerTable(a, busyTables)).values()]).toEqual([1, 1, 1]);
    } finally {
      await lock.release();
    }
  });
});

describe("POST /api/tables/{id}/run", () => {
  const BUSY_DETAIL = "Checks of this table's connection are running on another instance; retry shortly";

  it("answers 409 while another instance runs checks of the table's connection, and runs once it has finished", async () => {
    const user = await a.newUser();
    const connectionId = await addConnection(a, user.token, db1.body);
    const [running] = await monitorTables(user.token, connectionId, 1, "locked_events", blocked);
    const lock = await lockEvents();
    try {
      clock.advance(CYCLE);
      const otherTick = b.scheduler.tick();
      await until(() => b.scheduler.running === 1, "the other instance runs the connection");
      const [table] = await monitorTables(user.token, connectionId, 1, "events", { kind: "volume", min_rows: 1 });
      const before = await leaseOf(table!);

      const refused = await a.call("POST", `/api/tables/${table}/run`, { token: user.token });
      expect(refused.status).toBe(409);
      expect(refused.body).toEqual({ code: "conflict", detail: BUSY_DETAIL, busy: "connection" });
      expect((await runsPerTable(a, [table!])).get(table!)).toBe(0);

      await lock.release();
      expect((await otherTick).claimed).toEqual([running]);
      const ran = await a.call("POST", `/api/tables/${table}/run`, { token: user.token });
      expect(ran.status).toBe(200);
      expect(ran.body.outcomes.map((o: any) => [o.check, o.status, o.value])).toEqual([["volume", "pass", 3]]);
      // The lease is given back, and the schedule is the one it had.
      expect(await leaseOf(table!)).toEqual({ lease_owner: null, next_run_at: before.next_run_at });
    } finally {
      await lock.release();
    }
  });

  it("runs while this instance's own scheduler runs the connection, whose budget then serializes them", async () => {
    const user = await a.newUser();
    const connectionId = await addConnection(a, user.token, db1.body);
    const [running] = await monitorTables(user.token, connectionId, 1, "locked_events", blocked);
    // As startService makes it: the scheduler leases under the process's id, like manual runs.
    const own = createScheduler(a.deps);
    const lock = await lockEvents();
    try {
      clock.advance(CYCLE);
      const ownTick = own.tick();
      await until(() => own.running === 1, "this instance's scheduler runs the connection");
      const [table] = await monitorTables(user.token, connectionId, 1, "events", { kind: "volume", min_rows: 1 });

      // The very table its scheduler runs is refused, for it is running already.
      const again = await a.call("POST", `/api/tables/${running}/run`, { token: user.token });
      expect(again.status).toBe(409);
      expect(again.body).toEqual({ code: "conflict", detail: "This table's checks are running already; retry shortly", busy: "table" });

      const manual = a.call("POST", `/api/tables/${table}/run`, { token: user.token });
      await until(async () => (await leaseOf(table!)).lease_owner === a.deps.monitoring.instanceId, "the manual run holds its lease");
      await lock.release();
      const ran = await manual;
      expect(ran.status).toBe(200);
      expect(ran.body.outcomes.map((o: any) => [o.check, o.status])).toEqual([["volume", "pass"]]);
      expect((await ownTick).claimed).toEqual([running]);
    } finally {
      await lock.release();
      await own.stop();
    }
  });
});
