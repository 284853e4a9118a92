// Stopping the scheduler (SIGTERM) while a scheduled check runs for longer than the stop may
// wait (red-team pass): the check's statement ran on at its database past the process's end,
// its audit record was never written, and its table stayed leased to the dead instance for
// MONITOR_LEASE_SECONDS (five minutes) before another instance could run it. Now the run is
// stopped at its bound: the statement is cancelled at the database and recorded, and the table
// is released, still due, for the next instance.

import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import { CANCEL_GRACE_MS, createScheduler } from "../../src/monitoring/scheduler.js";
import { rowsOf } from "../../src/store/rows.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTableUnchecked, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { pgAdmin, pgUrl, uniqueName } from "../support/services.js";

let h: Harness;
let db: MonitoredDb;

beforeAll(async () => {
  // No jitter: a table is due as soon as it is added.
  h = await createHarness({ random: () => 0 });
  db = await pgMonitoredDb();
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

/** Statements on the monitored database waiting on a lock. */
async function waitingOnLock(): Promise<number> {
  const [row] = await pgAdmin<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", "postgres", [db.body.database_name]);
  return Number(row!.n);
}

describe("stopping the scheduler while a check runs past the stop's bound", () => {
  it("cancels the check's statement, records it, records no outcome and releases the table, still due", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events" }, [
      { kind: "custom_sql", name: "blocked", sql: "SELECT count(*) AS n FROM events", max: 1000 },
    ]);
    // The check's statement waits on this lock for as long as the test holds it.
    const locker = new pg.Client({ connectionString: pgUrl(db.body.database_name as string) });
    await locker.connect();
    await locker.query("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE");
    try {
      const scheduler = createScheduler(h.deps, { instanceId: uniqueName("stopping") });
      const tick = scheduler.tick();
      await vi.waitFor(async () => expect(await waitingOnLock()).toBe(1), { timeout: 10_000, interval: 50 });

      const stopping = Date.now();
      await scheduler.stop(200);
      // Bounded: what it waited for, and the grace its runs get to stop (slack for a busy machine).
      expect(Date.now() - stopping).toBeLessThan(200 + CANCEL_GRACE_MS + 1_000);
      expect((await tick).claimed).toEqual([table.id]);
      // Cancelled at the database, not left to wait out its timeout there.
      await vi.waitFor(async () => expect(await waitingOnLock()).toBe(0), { timeout: 5_000, interval: 50 });

      const [row] = rowsOf<{ lease_owner: string | null; due: boolean; last_run_at: Date | null }>(
        await h.deps.store.db.execute(sql`SELECT lease_owner, next_run_at <= now() AS due, last_run_at FROM monitored_tables WHERE id = ${table.id}`),
      );
      expect(row).toEqual({ lease_owner: null, due: true, last_run_at: null });
      expect((await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body).toEqual([]);
      await h.deps.audit!.flush();
      const audit = await h.call("GET", `/api/audit?connection_id=${connectionId}&source=monitor`, { token: user.token });
      expect(audit.body.records).toEqual([expect.objectContaining({ sql: "SELECT count(*) AS n FROM events", outcome: "error", error_code: "query_cancelled" })]);
    } finally {
      await locker.query("COMMIT");
      await locker.end();
    }
  }, 60_000);

  it("ends as usual a run that got past its checks, its outcomes being written when the bound passed", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events" }, [
      { kind: "custom_sql", name: "quick", sql: "SELECT count(*) AS n FROM events", max: 1000 },
    ]);
    // The run's outcomes wait on this lock, in Pulse's own store, until after the stop's bound.
    const locker = new pg.Client({ connectionString: h.config.databaseUrl });
    await locker.connect();
    await locker.query("BEGIN; LOCK TABLE check_runs IN ACCESS EXCLUSIVE MODE");
    const scheduler = createScheduler(h.deps, { instanceId: uniqueName("finishing") });
    const tick = scheduler.tick();
    try {
      await vi.waitFor(() => expect(scheduler.running).toBeGreaterThan(0), { timeout: 10_000, interval: 20 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const stopping = scheduler.stop(200);
      await new Promise((resolve) => setTimeout(resolve, 400));
      await locker.query("COMMIT");
      await stopping;
      await tick;
    } finally {
      await locker.end();
    }
    const [row] = rowsOf<{ lease_owner: string | null; due: boolean; ran: boolean }>(
      await h.deps.store.db.execute(sql`SELECT lease_owner, next_run_at <= now() AS due, last_run_at IS NOT NULL AS ran FROM monitored_tables WHERE id = ${table.id}`),
    );
    expect(row).toEqual({ lease_owner: null, due: false, ran: true });
    expect((await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body).toHaveLength(1);
  }, 60_000);
});
