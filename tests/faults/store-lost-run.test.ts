// The metadata store failing as a scheduled run's outcomes are written (red-team pass on a
// failover): the checks had run, but their outcomes were never stored and the table was
// scheduled one interval on, as if they had been. A failing check told nobody for a whole
// interval (a day, for a daily table), and its history had no trace of the run. Now a run whose
// outcomes the store could not take leaves its table still due: it runs again at the first tick
// the store answers.

import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createScheduler } from "../../src/monitoring/scheduler.js";
import { rowsOf } from "../../src/store/rows.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTableUnchecked, pgMonitoredDb, type MonitoredDb } from "../support/monitoring.js";
import { uniqueName } from "../support/services.js";

let h: Harness;
let db: MonitoredDb;

beforeAll(async () => {
  // No jitter: a table is due as soon as it is added. A short statement timeout: the outcomes'
  // write gives up on the lock below within a second.
  h = await createHarness({ random: () => 0, env: { STORE_QUERY_TIMEOUT_MS: "1000" } });
  db = await pgMonitoredDb();
  await db.insertEvents(3, Date.now());
});
afterAll(async () => {
  await h?.close();
  await db?.drop();
});

const tableState = async (id: number) =>
  rowsOf<{ lease_owner: string | null; due: boolean }>(await h.deps.store.db.execute(sql`SELECT lease_owner, next_run_at <= now() AS due FROM monitored_tables WHERE id = ${id}`))[0];

describe("a scheduled run whose outcomes the metadata store cannot take", () => {
  it("leaves its table due, and the next tick runs it and opens its alert", async () => {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTableUnchecked(h, user, { connection_id: connectionId, table: "events", interval_seconds: 86_400, alert: { open_after: 1 } }, [
      { kind: "custom_sql", name: "rows", sql: "SELECT count(*) AS n FROM events", max: 0 },
    ]);
    const scheduler = createScheduler(h.deps, { instanceId: uniqueName("lost-run") });
    // The run's outcomes wait on this lock, in Pulse's own store, past STORE_QUERY_TIMEOUT_MS:
    // the store cancels the write (503 store_unavailable, to a request).
    const locker = new pg.Client({ connectionString: h.config.databaseUrl });
    await locker.connect();
    try {
      await locker.query("BEGIN; LOCK TABLE check_runs IN ACCESS EXCLUSIVE MODE");
      expect((await scheduler.tick()).claimed).toEqual([table.id]);
      await locker.query("COMMIT");

      expect((await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body).toEqual([]);
      expect(await tableState(table.id)).toEqual({ lease_owner: null, due: true });

      expect((await scheduler.tick()).claimed).toEqual([table.id]);
      const runs = (await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token })).body;
      expect(runs).toEqual([expect.objectContaining({ status: "fail", value: 3 })]);
      const alerts = (await h.call("GET", "/api/alerts?status=active", { token: user.token })).body;
      expect(alerts).toEqual([expect.objectContaining({ table_id: table.id })]);
      expect(await tableState(table.id)).toEqual({ lease_owner: null, due: false });
    } finally {
      await locker.end();
      await scheduler.stop();
    }
  }, 60_000);
});
