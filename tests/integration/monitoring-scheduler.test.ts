// The scheduler against a real PostgreSQL metadata store: leases with FOR UPDATE SKIP LOCKED
// so two instances run every due table exactly once, renewed while a run outlasts them; the
// same SQL (advisory lock included) on PGlite; transient connection failures retried with
// backoff; users take turns; housekeeping never holds up a claim; startService runs and stops it in order.
// (Restarts and outages: monitoring-restart.test.ts; connection affinity: monitoring-affinity.test.ts.)

import { createServer, connect, type Server, type Socket } from "node:net";

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { keepLease } from "../../src/monitoring/keep-lease.js";
import { createScheduler } from "../../src/monitoring/scheduler.js";
import { startService } from "../../src/serve.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, pgMonitoredDb, runsPerTable, testClock, tickTogetherUntilIdle, type MonitoredDb } from "../support/monitoring.js";
import { PG, pgAdmin } from "../support/services.js";

const MINUTE = 60_000;
/** One interval plus the most jitter a 60 s interval can get (a tenth of it). */
const CYCLE = MINUTE + 6_000;
const SLOW_SQL = "SELECT count(*) FROM generate_series(1, 4000000)";

let db: MonitoredDb;
beforeAll(async () => {
  db = await pgMonitoredDb();
  await db.insertEvents(3, Date.now());
});
afterAll(async () => db?.drop());

describe("two instances on one store", () => {
  let a: Harness;
  let b: Harness;
  const clock = testClock();
  beforeAll(async () => {
    const env = { MONITOR_MAX_CONCURRENCY: "3" };
    a = await createHarness({ now: clock.now, env });
    b = await createHarness({ now: clock.now, env, shareWith: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it("run every due table exactly once per interval, however their ticks interleave", async () => {
    const user = await a.newUser();
    const connectionId = await addConnection(a, user.token, db.body);
    const tables: number[] = [];
    for (let i = 0; i < 12; i++) {
      const t = await monitorTable(a, user.token, { connection_id: connectionId, table: "events", interval_seconds: 60, checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 0 }] });
      tables.push(t.id);
    }
    const claimedBy = { a: 0, b: 0 };
    const cycles = 5;
    for (let cycle = 1; cycle <= cycles; cycle++) {
      clock.advance(CYCLE);
      const claimed = await tickTogetherUntilIdle(a.scheduler, b.scheduler, (onA, onB) => {
        claimedBy.a += onA.length;
        claimedBy.b += onB.length;
      });
      expect(claimed).toEqual(tables);
    }
    const runs = await runsPerTable(a, tables);
    expect([...runs.values()]).toEqual(tables.map(() => cycles));
    // Which instance runs them is a race: the tables share one connection, which one instance
    // runs at a time (connection affinity: monitoring-affinity.test.ts).
    expect(claimedBy.a + claimedBy.b).toBe(tables.length * cycles);
  });
});

describe("a run longer than the lease", () => {
  let a: Harness;
  let b: Harness;
  const clock = testClock();
  const LEASE_SECONDS = 10;
  beforeAll(async () => {
    const env = { MONITOR_LEASE_SECONDS: String(LEASE_SECONDS), MONITOR_STATEMENT_TIMEOUT_MS: "60000" };
    a = await createHarness({ now: clock.now, env });
    b = await createHarness({ now: clock.now, env, shareWith: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const leaseOf = async (id: number) =>
    (await pgAdmin<{ lease_owner: string | null; lease_until: Date | null }>("SELECT lease_owner, lease_until FROM monitored_tables WHERE id = $1", a.pgDatabase!.name, [id]))[0]!;
  const until = async (condition: () => Promise<boolean>, what: string) => {
    for (const deadline = Date.now() + 20_000; !(await condition()); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    }
  };

  it("keeps its lease renewed, so a second instance does not claim the table while it runs", async () => {
    // The check blocks on a lock the test holds: the run lasts exactly as long as the test wants.
    await db.exec("CREATE TABLE IF NOT EXISTS locked_events (id int)");
    const locker = new pg.Client({ ...PG, database: db.body.database_name as string });
    await locker.connect();
    try {
      const user = await a.newUser();
      const connectionId = await addConnection(a, user.token, db.body);
      const table = await monitorTable(a, user.token, { connection_id: connectionId, table: "locked_events", interval_seconds: 60, checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM locked_events", min: 0 }] });
      const first = createScheduler(a.deps, { instanceId: "first", renewEveryMs: 50 });
      const second = createScheduler(b.deps, { instanceId: "second", renewEveryMs: 50 });
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE locked_events IN ACCESS EXCLUSIVE MODE");
      clock.advance(CYCLE);
      const running = first.tick();
      await until(async () => first.running === 1 && (await leaseOf(table.id)).lease_owner === "first", "the first instance runs the table");

      // Twice the lease passes while the check waits on the lock; each time, once the lease
      // has been renewed for the new time, the other instance finds the table still leased.
      for (let round = 0; round < 2; round++) {
        clock.advance(2 * LEASE_SECONDS * 1000);
        await until(async () => ((await leaseOf(table.id)).lease_until?.getTime() ?? 0) > clock.now(), "the lease is renewed");
        expect((await second.tick()).claimed).toEqual([]);
        expect(first.running).toBe(1);
      }

      await locker.query("COMMIT");
      expect((await running).claimed).toEqual([table.id]);
      expect(await leaseOf(table.id)).toEqual({ lease_owner: null, lease_until: null });
      // Renewals stopped with the run: nothing leases the finished table again.
      await new Promise((r) => setTimeout(r, 200));
      expect(await leaseOf(table.id)).toEqual({ lease_owner: null, lease_until: null });
      expect((await runsPerTable(a, [table.id])).get(table.id)).toBe(1);
      await first.stop();
      await second.stop();
    } finally {
      await locker.end();
    }
  });
  /** A user's table `name` (its one check waits on a lock the test holds) run by a scheduler's
   * tick once `interval` has passed twice; `meanwhile` is done while it runs. Answers the table
   * as it is after the run. */
  async function changedWhileRunning(name: string, interval: number, meanwhile: (user: { token: string }, table: { id: number }) => Promise<void>) {
    await db.exec(`CREATE TABLE IF NOT EXISTS ${name} (id int)`);
    const locker = new pg.Client({ ...PG, database: db.body.database_name as string });
    await locker.connect();
    const scheduler = createScheduler(a.deps, { instanceId: name, renewEveryMs: 50 });
    try {
      const user = await a.newUser();
      const connectionId = await addConnection(a, user.token, db.body);
      const checks = [{ kind: "custom_sql", name: "rows", sql: `SELECT count(*) FROM ${name}`, min: 0 }];
      const table = await monitorTable(a, user.token, { connection_id: connectionId, table: name, interval_seconds: interval, checks });
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE ${name} IN ACCESS EXCLUSIVE MODE`);
      clock.advance(2 * interval * 1000);
      // Ticks until one claims it: earlier tests' tables, due for longer, may take a tick's slots.
      const ticks: Promise<{ claimed: number[] }>[] = [];
      await until(async () => (await leaseOf(table.id)).lease_owner === name || (ticks.push(scheduler.tick()), false), "the table runs");
      await meanwhile(user, table);
      await locker.query("COMMIT");
      expect((await Promise.all(ticks)).flatMap((tick) => tick.claimed)).toContain(table.id);
      return (await a.call("GET", `/api/tables/${table.id}`, { token: user.token })).body;
    } finally {
      await scheduler.stop();
      await locker.end();
    }
  }

  it("waits, when the run stops renewing, for a renewal under way, so the lease it then ends is the one the store holds", async () => {
    const user = await a.newUser();
    const connectionId = await addConnection(a, user.token, db.body);
    const table = await monitorTable(a, user.token, { connection_id: connectionId, table: "events", interval_seconds: 60 });
    const taken = new Date(clock.now() + LEASE_SECONDS * 1000);
    await pgAdmin("UPDATE monitored_tables SET lease_owner = 'renewer', lease_until = $2 WHERE id = $1", a.pgDatabase!.name, [table.id, taken]);
    // A row lock the test holds makes the next renewal wait in the store.
    const locker = new pg.Client({ ...PG, database: a.pgDatabase!.name });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM monitored_tables WHERE id = $1 FOR UPDATE", [table.id]);
      clock.advance(1000);
      const lease = keepLease(a.deps, { id: table.id, owner: "renewer", until: taken, renewEveryMs: 10 });
      await until(
        async () => (await pgAdmin("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'update \"monitored_tables\"%'", a.pgDatabase!.name)).length > 0,
        "a renewal waits on the row lock",
      );
      const stopped = lease.stop();
      setTimeout(() => void locker.query("COMMIT"), 100);
      await stopped;
      expect(lease.until()?.getTime()).toBe((await leaseOf(table.id)).lease_until?.getTime());
      expect(lease.until()?.getTime()).toBe(clock.now() + LEASE_SECONDS * 1000);
    } finally {
      await locker.end();
    }
  });

  it("keeps a change of timing made while the table ran, rather than the schedule it was claimed with", async () => {
    const after = await changedWhileRunning("locked_timing", 7 * 24 * 3600, async (user, table) => {
      const patched = await a.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { interval_seconds: 60 } });
      expect(patched.status, patched.text).toBe(200);
    });
    expect(after.interval_seconds).toBe(60);
    // Due one new interval after this run: not a week after it, nor at once again.
    expect(Date.parse(after.next_run_at)).toBeGreaterThanOrEqual(clock.now() + MINUTE);
    expect(Date.parse(after.next_run_at)).toBeLessThanOrEqual(clock.now() + CYCLE);
  });

  it("runs a table moved to another table while it ran at once after, the run that ended having read the old one", async () => {
    const after = await changedWhileRunning("locked_moved", 3600, async (user, table) => {
      const moved = await a.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { table: "events", checks: [{ kind: "schema_drift" }] } });
      expect(moved.status, moved.text).toBe(200);
    });
    expect(Date.parse(after.next_run_at)).toBe(clock.now());
  });

  it("warns of no lost lease when the table is deleted while it runs", async () => {
    const logsBefore = a.logs.length;
    await changedWhileRunning("locked_deleted", 3600, async (user, table) => {
      expect((await a.call("DELETE", `/api/tables/${table.id}`, { token: user.token })).status).toBe(204);
      await new Promise((r) => setTimeout(r, 200)); // renewals (every 50 ms) find it gone
    });
    expect(a.logs.slice(logsBefore).join("")).not.toContain("lease lost");
  });
});

describe("transient connection failures", () => {
  let h: Harness;
  let proxy: Server;
  let refuse = 0;
  let accepted = 0;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    h = await createHarness({ env: { MONITOR_RETRY_BASE_MS: "100", MONITOR_RETRY_ATTEMPTS: "3" } });
    // Forwards to PostgreSQL, or drops the connection at once while `refuse` lasts.
    proxy = createServer((socket) => {
      accepted += 1;
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      if (refuse > 0) {
        refuse -= 1;
        socket.destroy();
        return;
      }
      const upstream = connect(PG.port, PG.host);
      socket.pipe(upstream).pipe(socket);
      upstream.on("error", () => socket.destroy());
      socket.on("error", () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    await h?.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });

  it("retries with backoff before counting a failure, and counts it when the database stays away", async () => {
    const user = await h.newUser();
    const port = (proxy.address() as { port: number }).port;
    const connectionId = await addConnection(h, user.token, { ...db.body, port });
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 1 }],
      alert: { open_after: 1 },
    });
    await h.deps.connectors.evict(connectionId);

    refuse = 1;
    accepted = 0;
    const [recovered] = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(recovered).toMatchObject({ status: "pass", value: 3 });
    expect(accepted).toBeGreaterThanOrEqual(2);
    expect((await h.call("GET", "/api/alerts", { token: user.token })).body).toEqual([]);

    await h.deps.connectors.evict(connectionId);
    refuse = 1000;
    accepted = 0;
    const startedAt = Date.now();
    const [failed] = (await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).body.outcomes;
    expect(failed).toMatchObject({ status: "error", details: { code: "connection_failed" } });
    expect(accepted).toBe(3);
    // Backoff of 100 ms then 200 ms, each scaled by 0.5–1.5.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(150);
    expect((await h.call("GET", "/api/alerts?status=open", { token: user.token })).body).toHaveLength(1);
    refuse = 0;
  });
});

describe("users taking turns", () => {
  it("claims each user's oldest due table before anyone's second, however many one user has", async () => {
    const clock = testClock();
    const h = await createHarness({ now: clock.now, random: () => 0, env: { MONITOR_MAX_CONCURRENCY: "2" } });
    try {
      const check = { kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 0 };
      const many = await h.newUser();
      const manyConnection = await addConnection(h, many.token, db.body);
      const manys: number[] = [];
      for (let i = 0; i < 3; i++) {
        manys.push((await monitorTable(h, many.token, { connection_id: manyConnection, table: "events", checks: [check] })).id);
        clock.advance(1_000); // so that each is due before the next
      }
      const one = await h.newUser();
      const ones = (await monitorTable(h, one.token, { connection_id: await addConnection(h, one.token, db.body), table: "events", checks: [check] })).id;
      clock.advance(1_000);
      const { claimed } = await h.scheduler.tick();
      // Oldest first alone would have claimed two of the first user's.
      expect(claimed.sort((a, b) => a - b)).toEqual([manys[0], ones].sort((a, b) => a - b));
    } finally {
      await h.close();
    }
  });
});

/** A harness on a test clock with `slots` (MONITOR_MAX_CONCURRENCY) that ticks once, when
 * started (every later claim is a refill), and a database whose `events` the test locks with
 * `lock()`, so that checks reading it wait: `body` runs with them, then all is closed. */
async function withSlotsHeld(
  slots: number,
  body: (ctx: { h: Harness; clock: ReturnType<typeof testClock>; slow: MonitoredDb; lock: () => Promise<void> }) => Promise<void>,
): Promise<void> {
  const clock = testClock();
  const slow = await pgMonitoredDb();
  const h = await createHarness({ now: clock.now, random: () => 0, env: { MONITOR_MAX_CONCURRENCY: String(slots), MONITOR_TICK_MS: "3600000", MONITOR_STATEMENT_TIMEOUT_MS: "60000" } });
  const locker = new pg.Client({ ...PG, database: slow.body.database_name as string });
  await locker.connect();
  const lock = async () => {
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
  };
  try {
    await body({ h, clock, slow, lock });
  } finally {
    await locker.query("COMMIT").catch(() => undefined);
    await locker.end();
    await h.close();
    await slow.drop();
  }
}

const COUNT_EVENTS = { kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 0 };

describe("a user whose runs hold most of the slots", () => {
  it("leaves the free slot to others' due tables run after run, not one table per tick", async () => {
    await withSlotsHeld(4, async ({ h, clock, slow, lock }) => {
      const a = await h.newUser();
      const aConnection = await addConnection(h, a.token, slow.body);
      const held: number[] = [];
      for (let i = 0; i < 3; i++) held.push((await monitorTable(h, a.token, { connection_id: aConnection, table: "events", interval_seconds: 60, checks: [COUNT_EVENTS] })).id);
      const b = await h.newUser();
      const bConnection = await addConnection(h, b.token, db.body);
      const others: number[] = [];
      for (let i = 0; i < 6; i++) others.push((await monitorTable(h, b.token, { connection_id: bConnection, table: "events", interval_seconds: 60, checks: [COUNT_EVENTS] })).id);
      const meta = h.pgDatabase!.name;
      await pgAdmin("UPDATE monitored_tables SET next_run_at = now() + interval '1 day' WHERE id = ANY($1::int[])", meta, [others]);

      // The first user's three runs wait on a lock the test holds, in three of the four slots.
      await lock();
      clock.advance(CYCLE);
      h.scheduler.start();
      for (const deadline = Date.now() + 10_000; h.scheduler.running < 3; await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() > deadline) throw new Error("the first user's tables never ran");
      }

      // The other user's six come due; one claim takes the free slot, and each run that ends
      // hands it on.
      await pgAdmin("UPDATE monitored_tables SET next_run_at = $2 WHERE id = ANY($1::int[])", meta, [others, new Date(clock.now() - 1000)]);
      await h.scheduler.tick();
      for (const deadline = Date.now() + 15_000; ; await new Promise((r) => setTimeout(r, 50))) {
        const runs = await runsPerTable(h, others);
        if (others.every((id) => runs.get(id) === 1)) break;
        if (Date.now() > deadline) throw new Error(`only ${runs.size} of the other user's 6 tables ran`);
      }
      // The last of them has saved its runs and is ending its lease: then only the first user's
      // three, still waiting on the lock, hold slots.
      await expect.poll(() => h.scheduler.running, { timeout: 5000 }).toBe(3);
    });
  });
});

describe("housekeeping beside the claims", () => {
  it("prunes on time while every slot is taken by runs that wait", async () => {
    await withSlotsHeld(1, async ({ h, clock, slow, lock }) => {
      const user = await h.newUser();
      const kept = await monitorTable(h, user.token, { connection_id: await addConnection(h, user.token, db.body), table: "events", interval_seconds: 60, checks: [COUNT_EVENTS] });
      expect((await h.call("POST", `/api/tables/${kept.id}/run`, { token: user.token })).status).toBe(200);
      const meta = h.pgDatabase!.name;
      await pgAdmin("UPDATE monitored_tables SET next_run_at = now() + interval '1 day' WHERE id = $1", meta, [kept.id]);
      await monitorTable(h, user.token, { connection_id: await addConnection(h, user.token, slow.body), table: "events", interval_seconds: 60, checks: [COUNT_EVENTS] });

      // The one slot waits on a lock the test holds; the first tick's housekeeping is done.
      await lock();
      clock.advance(CYCLE);
      h.scheduler.start();
      await until(async () => h.scheduler.running === 1, 10_000);
      await new Promise((r) => setTimeout(r, 300));

      // A run past its retention, and the hour's pruning due, with no slot free.
      await pgAdmin("UPDATE check_runs SET started_at = started_at - interval '400 days' WHERE table_id = $1", meta, [kept.id]);
      clock.advance(2 * 3_600_000);
      await h.scheduler.tick();
      expect((await runsPerTable(h, [kept.id])).get(kept.id)).toBe(0);
      expect(h.scheduler.running).toBe(1);
    });
  });

  it("runs a table that comes due while an hour's pruning is stuck behind a lock", async () => {
    const h = await createHarness({ random: () => 0, env: { MONITOR_TICK_MS: "100", STORE_QUERY_TIMEOUT_MS: "60000" } });
    const locker = new pg.Client({ connectionString: h.pgDatabase!.url });
    await locker.connect();
    const scheduler = createScheduler(h.deps, { instanceId: "housekeeper" });
    try {
      // The audit trail's pruning, the last of the hour's chores, waits on this lock.
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE audit_groups IN ACCESS EXCLUSIVE MODE");
      scheduler.start();
      const pruneWaits = async () =>
        (await pgAdmin<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE '%audit_groups%'", PG.database, [h.pgDatabase!.name]))[0]!.n > 0;
      await until(pruneWaits, 10_000);

      const user = await h.newUser();
      const connectionId = await addConnection(h, user.token, db.body);
      const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 60, checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 0 }] });
      await until(async () => (await runsPerTable(h, [table.id])).get(table.id) === 1, 10_000);
      expect(await pruneWaits()).toBe(true);
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      await locker.end();
      await scheduler.stop();
      await h.close();
    }
  });
});

/** Polls `done` every 20 ms until it holds; fails after `timeoutMs`. */
async function until(done: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`not done within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("on the embedded PGlite store", () => {
  it("claims and runs due tables with the same SQL", async () => {
    const clock = testClock();
    const h = await createHarness({ store: "pglite", now: clock.now });
    try {
      const user = await h.newUser();
      const connectionId = await addConnection(h, user.token, db.body);
      const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 60, checks: [{ kind: "volume", min_rows: 1 }] });
      clock.advance(CYCLE);
      expect((await h.scheduler.tick()).claimed).toEqual([table.id]);
      expect((await h.scheduler.tick()).claimed).toEqual([]);
      const runs = (await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body;
      expect(runs.map((r: any) => [r.status, r.value])).toEqual([["pass", 3]]);
      // A manual run takes its lease under the same advisory lock.
      expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    } finally {
      await h.close();
    }
  });
});

describe("startService", () => {
  it("runs the scheduler when MONITOR_SCHEDULER=on and stops it before closing the stores", async () => {
    const h = await createHarness({ random: () => 0, env: { MONITOR_SCHEDULER: "on", MONITOR_TICK_MS: "100", PORT: "0", HOST: "127.0.0.1" } });
    try {
      const user = await h.newUser();
      const connectionId = await addConnection(h, user.token, db.body);
      const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 60, checks: [{ kind: "custom_sql", name: "slow", sql: SLOW_SQL, min: 0 }] });
      const service = await startService(h.deps);
      expect(service.scheduler).not.toBeNull();
      const deadline = Date.now() + 10_000;
      while (service.scheduler!.running === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await service.stop(); // waits for the running check, then closes pools and stores
      expect((await runsPerTable(h, [table.id])).get(table.id)).toBe(1);
      await expect(h.deps.store.ping()).rejects.toThrow();
    } finally {
      await h.close().catch(() => {});
    }
  });

  it("lets a check running at shutdown finish with the requests in flight, then closes everything within the close bound", async () => {
    const h = await createHarness({ random: () => 0, env: { MONITOR_SCHEDULER: "on", MONITOR_TICK_MS: "100", PORT: "0", HOST: "127.0.0.1" } });
    try {
      const user = await h.newUser();
      const connectionId = await addConnection(h, user.token, db.body);
      // Longer than the close bound below, well within the drain's.
      const longer = "SELECT count(*) FROM generate_series(1, 25000000)";
      const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 60, checks: [{ kind: "custom_sql", name: "slower", sql: longer, min: 0 }] });
      const service = await startService(h.deps, { closeTimeoutMs: 1000 });
      const deadline = Date.now() + 10_000;
      while (service.scheduler!.running === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const logsBefore = h.logs.length;
      await service.stop();
      expect((await runsPerTable(h, [table.id])).get(table.id)).toBe(1);
      expect(h.logs.slice(logsBefore).join("")).toContain('"msg":"shut down"');
      await expect(h.deps.store.ping()).rejects.toThrow();
    } finally {
      await h.close().catch(() => {});
    }
  });
});
