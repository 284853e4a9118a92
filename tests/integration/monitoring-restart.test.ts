// Restarts and outages against a real PostgreSQL metadata store: a long outage costs one
// catch-up run; an instance stopped mid-run loses and doubles nothing (a run past the stop's
// bound is stopped and its table released); a lease held by a dead
// instance expires and another runs the table; a notification that failed before a restart
// is delivered exactly once after it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { enqueueNotifications } from "../../src/store/monitoring-alerts.js";
import { claimDueTables } from "../../src/store/monitoring-tables.js";
import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, addWebhook, monitorTable, pgMonitoredDb, runsPerTable, testClock, type MonitoredDb } from "../support/monitoring.js";
import { LOCAL_RECEIVER_ENV, startWebhookReceiver, type WebhookReceiver } from "../support/webhook-receiver.js";

const MINUTE = 60_000;
/** One interval plus the most jitter a 60 s interval can get (a tenth of it). */
const CYCLE = MINUTE + 6_000;
const SLOW_SQL = "SELECT count(*) FROM generate_series(1, 4000000)";

let db: MonitoredDb;
let hooks: WebhookReceiver;
beforeAll(async () => {
  db = await pgMonitoredDb();
  await db.insertEvents(3, Date.now());
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await db?.drop();
  await hooks?.close();
});

describe("one instance, restarted", () => {
  let base: Harness;
  const clock = testClock();
  beforeAll(async () => {
    base = await createHarness({ now: clock.now, random: () => 0, env: LOCAL_RECEIVER_ENV });
  });
  afterAll(async () => base?.close());

  const instance = () => createHarness({ shareWith: base, now: clock.now, random: () => 0, env: LOCAL_RECEIVER_ENV });

  async function slowTable(h: Harness) {
    const user = await h.newUser();
    const connectionId = await addConnection(h, user.token, db.body);
    const table = await monitorTable(h, user.token, {
      connection_id: connectionId,
      table: "events",
      interval_seconds: 60,
      checks: [{ kind: "custom_sql", name: "slow", sql: SLOW_SQL, min: 0 }],
    });
    return { user, table };
  }

  it("after a long outage runs a table once, not once per missed interval", async () => {
    const { user, table } = await slowTable(base);
    await base.scheduler.tick();
    clock.advance(6 * 60 * MINUTE); // six hours down: 360 missed slots
    expect((await base.scheduler.tick()).claimed).toEqual([table.id]);
    expect((await base.scheduler.tick()).claimed).toEqual([]);
    expect((await runsPerTable(base, [table.id])).get(table.id)).toBe(2);
    const next = Date.parse((await base.call("GET", `/api/tables/${table.id}`, { token: user.token })).body.next_run_at);
    expect(next).toBe(clock.now() + MINUTE);
  });

  it("stopped in the middle of a run, lets it finish: the next instance neither loses nor repeats it", async () => {
    const first = await instance();
    const second = await instance();
    try {
      const { table } = await slowTable(first);
      clock.advance(CYCLE);
      const ticking = first.scheduler.tick();
      while (first.scheduler.running === 0) await new Promise((r) => setTimeout(r, 5));
      await first.scheduler.stop(30_000);
      expect(first.scheduler.running).toBe(0);
      await ticking;
      expect((await runsPerTable(base, [table.id])).get(table.id)).toBe(1);
      expect((await first.scheduler.tick()).claimed).toEqual([]); // stopped for good
      expect((await second.scheduler.tick()).claimed).not.toContain(table.id); // not due again yet
      clock.advance(CYCLE);
      expect((await second.scheduler.tick()).claimed).toContain(table.id);
      expect((await runsPerTable(base, [table.id])).get(table.id)).toBe(2);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it("stopped with a run that outlasts the stop timeout: the run is stopped, records nothing, and the next instance runs the table at once", async () => {
    const first = await instance();
    const second = await instance();
    try {
      const { table } = await slowTable(first);
      clock.advance(CYCLE);
      const ticking = first.scheduler.tick();
      while (first.scheduler.running === 0) await new Promise((r) => setTimeout(r, 5));
      await first.scheduler.stop(1);
      // Its statement cancelled, within the grace stop() gives it.
      expect(first.scheduler.running).toBe(0);
      await ticking;
      expect((await runsPerTable(base, [table.id])).get(table.id) ?? 0).toBe(0);
      // Released, still due: not left to its lease (five minutes).
      expect((await second.scheduler.tick()).claimed).toContain(table.id);
      expect((await runsPerTable(base, [table.id])).get(table.id)).toBe(1);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it("picks up a table whose instance died holding the lease, once the lease expires", async () => {
    const survivor = await instance();
    try {
      const { table } = await slowTable(survivor);
      clock.advance(CYCLE);
      const now = clock.now();
      // An instance claims it and dies before running it.
      const leased = await claimDueTables(base.deps.store.db, { owner: "dead-instance", now: new Date(now), leaseUntil: new Date(now + 300_000), limit: 1000 });
      expect(leased.map((t) => t.id)).toContain(table.id);
      expect((await survivor.scheduler.tick()).claimed).not.toContain(table.id);
      clock.advance(301_000);
      expect((await survivor.scheduler.tick()).claimed).toContain(table.id);
      expect((await runsPerTable(base, [table.id])).get(table.id)).toBe(1);
    } finally {
      await survivor.close();
    }
  });

  it("delivers a notification that failed before a restart exactly once afterwards", async () => {
    const first = await instance();
    const user = await first.newUser();
    const connectionId = await addConnection(first, user.token, db.body);
    const path = `/restart-${user.id}`;
    const channelId = await addWebhook(first, user.token, `${hooks.url}${path}`);
    const table = await monitorTable(first, user.token, {
      connection_id: connectionId,
      table: "events",
      interval_seconds: 60,
      checks: [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", max: 0 }],
      alert: { open_after: 1 },
    });
    clock.advance(CYCLE);
    hooks.failNext(1, 502);
    expect((await first.scheduler.tick()).claimed).toContain(table.id);
    expect(hooks.at(path)).toEqual([]); // the endpoint failed: pending in the outbox
    expect(first.logs.join("")).toContain("notification not delivered");
    await first.close();

    const second = await instance();
    try {
      await second.scheduler.tick(); // too early for the retry
      expect(hooks.at(path)).toEqual([]);
      for (let i = 0; i < 4; i++) {
        clock.advance(CYCLE);
        await second.scheduler.tick();
      }
      expect(hooks.at(path).map((r) => r.body.event)).toEqual(["alert.opened"]);
      const [alert] = (await second.call("GET", "/api/alerts", { token: user.token })).body;
      // The same notification queued again (a second instance, a replay) is not queued twice.
      const again = await enqueueNotifications(second.deps.store.db, [
        { dedupKey: `alert:${alert.id}:opened:1:channel:${channelId}`, channelId, alertId: alert.id, payload: {}, nextAttemptAt: new Date(clock.now()) },
      ]);
      expect(again).toBe(0);
    } finally {
      await second.close();
    }
  });
});

