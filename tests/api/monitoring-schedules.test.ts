// Monitored tables on a cron schedule (`schedule` + `timezone`) instead of `interval_seconds`:
// validated at the API (422 naming the field), stored, and run by the scheduler at the
// schedule's times, read in its time zone, driven here by a clock moved by hand.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createHarness, type Harness } from "../support/harness.js";
import { addConnection, monitorTable, sqliteMonitoredDb, testClock } from "../support/monitoring.js";

const MINUTE = 60_000;
/** Monday 4 January 2027, 10:20 UTC. */
const START = Date.UTC(2027, 0, 4, 10, 20);
const ROWS_CHECK = [{ kind: "custom_sql", name: "rows", sql: "SELECT count(*) FROM events", min: 0 }];

async function ownerOf(h: Harness) {
  const user = await h.newUser();
  const db = await sqliteMonitoredDb(h.sqliteRoot);
  return { user, connectionId: await addConnection(h, user.token, db.body) };
}

describe("/api/tables with a schedule", () => {
  let h: Harness;
  const clock = testClock(START);
  beforeAll(async () => {
    h = await createHarness({ now: clock.now });
  });
  afterAll(async () => h?.close());

  it("stores the schedule and its zone, and is first due at the schedule's next time", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "30 9 * * *", timezone: "Asia/Kolkata", checks: ROWS_CHECK });
    // 09:30 in India (UTC+5:30) is 04:00 UTC, next on the 5th.
    expect(table).toMatchObject({ schedule: "30 9 * * *", timezone: "Asia/Kolkata", interval_seconds: null, next_run_at: "2027-01-05T04:00:00.000Z" });
    expect((await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body).toMatchObject({ schedule: "30 9 * * *", timezone: "Asia/Kolkata" });
  });

  it("reads a schedule without a zone in UTC, and says so", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 * * * *", checks: ROWS_CHECK });
    expect(table).toMatchObject({ schedule: "0 * * * *", timezone: "UTC", next_run_at: "2027-01-04T11:00:00.000Z" });
  });

  it("keeps interval_seconds as it was for a table without a schedule", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 600, checks: ROWS_CHECK });
    expect(table).toMatchObject({ interval_seconds: 600, schedule: null, timezone: null });
  });

  it.each([
    ["a cron expression with four fields", { schedule: "0 * * *" }, "body.schedule"],
    ["a minute out of range", { schedule: "61 * * * *" }, "body.schedule"],
    ["a schedule no date matches", { schedule: "0 0 30 2 *" }, "body.schedule"],
    ["runs closer together than the minimum interval", { schedule: "*/10 * * * * *" }, "body.schedule"],
    ["an unknown time zone", { schedule: "0 * * * *", timezone: "Mars/Olympus" }, "body.timezone"],
    ["both a schedule and an interval", { schedule: "0 * * * *", interval_seconds: 300 }, "body.schedule"],
    ["a time zone without a schedule", { timezone: "Europe/Paris" }, "body.timezone"],
  ])("answers 422 for %s, naming %s", async (_name, change, path) => {
    const { user, connectionId } = await ownerOf(h);
    const res = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", ...change } });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("invalid_input");
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("switches between a schedule and an interval with PATCH", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", interval_seconds: 3600, checks: ROWS_CHECK });
    const patch = (json: Record<string, unknown>) => h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json });

    expect((await patch({ timezone: "Europe/Paris" })).status).toBe(422);
    const scheduled = await patch({ schedule: "0 12 * * *", timezone: "Europe/Paris" });
    expect(scheduled.body).toMatchObject({ schedule: "0 12 * * *", timezone: "Europe/Paris", interval_seconds: null, next_run_at: "2027-01-04T11:00:00.000Z" });
    // A new zone keeps the schedule.
    const moved = await patch({ timezone: "America/New_York" });
    expect(moved.body).toMatchObject({ schedule: "0 12 * * *", timezone: "America/New_York", next_run_at: "2027-01-04T17:00:00.000Z" });
    const bad = await patch({ timezone: "Not/AZone" });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].path).toBe("body.timezone");
    const back = await patch({ interval_seconds: 900 });
    expect(back.body).toMatchObject({ schedule: null, timezone: null, interval_seconds: 900 });
  });
});

describe("the scheduler, on a schedule", () => {
  let h: Harness;
  const clock = testClock(START);
  beforeAll(async () => {
    h = await createHarness({ now: clock.now });
  });
  afterAll(async () => h?.close());

  it("runs the table at each of the schedule's times, and once after an outage, not per missed time", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 * * * *", checks: ROWS_CHECK });
    const nextRunAt = async () => (await h.call("GET", `/api/tables/${table.id}`, { token: user.token })).body.next_run_at as string;

    expect((await h.scheduler.tick()).claimed).toEqual([]);
    clock.advance(40 * MINUTE); // 11:00
    expect((await h.scheduler.tick()).claimed).toEqual([table.id]);
    expect(await nextRunAt()).toBe("2027-01-04T12:00:00.000Z");

    clock.advance(59 * MINUTE); // 11:59
    expect((await h.scheduler.tick()).claimed).toEqual([]);
    clock.advance(3 * 60 * MINUTE); // 14:59: three times missed
    expect((await h.scheduler.tick()).claimed).toEqual([table.id]);
    expect(await nextRunAt()).toBe("2027-01-04T15:00:00.000Z");
    expect((await h.scheduler.tick()).claimed).toEqual([]);

    const runs = await h.call("GET", `/api/tables/${table.id}/runs`, { token: user.token });
    expect(runs.body).toHaveLength(2);
  });

  it("runs a schedule with one date left once, then is never due again", async () => {
    const { user, connectionId } = await ownerOf(h);
    const at = new Date(clock.now() + 30 * MINUTE);
    const once = `0 ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} * ${at.getUTCFullYear()}`;
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: once, checks: ROWS_CHECK });
    clock.advance(30 * MINUTE);
    const logsBefore = h.logs.length;
    // (The hourly table of the test before is due too.)
    expect((await h.scheduler.tick()).claimed).toContain(table.id);
    const after = await h.call("GET", `/api/tables/${table.id}`, { token: user.token });
    expect(after.body).toMatchObject({ next_run_at: "9999-12-31T00:00:00.000Z", last_run_at: at.toISOString() });
    clock.advance(60 * MINUTE);
    expect((await h.scheduler.tick()).claimed).not.toContain(table.id);
    expect(h.logs.slice(logsBefore).join("")).not.toMatch(/"level":(50|40)/);
  });
});
