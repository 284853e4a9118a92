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
    // croner's seventh field made this one search every year to 9999: seconds of the event loop.
    ["a seventh field (years)", { schedule: "0 0 0 L * +1#1 2024-9999" }, "body.schedule"],
    ["a one-shot date", { schedule: "2030-01-23T00:00:00" }, "body.schedule"],
  ])("answers 422 for %s, naming %s", async (_name, change, path) => {
    const { user, connectionId } = await ownerOf(h);
    const res = await h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", ...change } });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe("invalid_input");
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(path);
  });

  it("keeps a time zone sent in another case in its usual spelling, and an alias as sent", async () => {
    const { user, connectionId } = await ownerOf(h);
    const lower = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 12 * * *", timezone: "europe/paris", checks: ROWS_CHECK });
    expect(lower).toMatchObject({ timezone: "Europe/Paris", next_run_at: "2027-01-04T11:00:00.000Z" });
    const alias = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 12 * * *", timezone: "US/Pacific", checks: ROWS_CHECK });
    expect(alias).toMatchObject({ timezone: "US/Pacific", next_run_at: "2027-01-04T20:00:00.000Z" });
  });

  it("says which field is out of range as sent, and keeps a schedule without the spaces around it", async () => {
    const { user, connectionId } = await ownerOf(h);
    const post = (json: Record<string, unknown>) => h.call("POST", "/api/tables", { token: user.token, json: { connection_id: connectionId, table: "events", checks: ROWS_CHECK, ...json } });
    // croner says "Invalid value for day: 31" of a 32.
    expect((await post({ schedule: "0 0 32 * *" })).body.errors).toEqual([{ path: "body.schedule", message: "not a cron expression (a day out of its range)" }]);
    const pasted = await post({ schedule: " 0 12 * * *\n", timezone: "Europe/Paris" });
    expect(pasted.body).toMatchObject({ schedule: "0 12 * * *", timezone: "Europe/Paris" });
  });

  it("keeps a run already due when PATCH sends the same schedule again", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 * * * *", checks: ROWS_CHECK });
    const due = table.next_run_at;
    clock.advance(40 * MINUTE + 30_000); // 11:00:30: due, not yet claimed
    try {
      const same = await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { schedule: "0 * * * *", timezone: "UTC" } });
      expect(same.body.next_run_at).toBe(due);
    } finally {
      clock.advance(-(40 * MINUTE + 30_000));
    }
  });

  it("learns a scheduled table's seasons (hour of day, day of week) in its time zone", async () => {
    const { user, connectionId } = await ownerOf(h);
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 * * * *", timezone: "America/New_York", checks: [{ kind: "volume" }] });
    const baselines = h.deps.monitoring.baselines;
    const judge = baselines.judge.bind(baselines);
    const zones: (string | undefined)[] = [];
    baselines.judge = (series, point, options, load) => {
      zones.push(options.timeZone);
      return judge(series, point, options, load);
    };
    try {
      expect((await h.call("POST", `/api/tables/${table.id}/run`, { token: user.token })).status).toBe(200);
    } finally {
      baselines.judge = judge;
    }
    expect(zones).toEqual(["America/New_York"]);
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

  it("goes on to the schedule's next time when the clock is stepped back during a run, not the same time again", async () => {
    const { user, connectionId } = await ownerOf(h);
    const slow = { kind: "custom_sql", name: "slow", sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) FROM c", min: 0 };
    const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule: "0 * * * *", checks: [slow] });
    const due = Date.parse(table.next_run_at);
    const back = clock.now();
    clock.advance(due - back);
    try {
      const ticking = h.scheduler.tick();
      await new Promise((resolve) => setTimeout(resolve, 200));
      clock.advance(-5_000); // NTP steps the clock back while the check runs
      expect((await ticking).claimed).toContain(table.id);
      const after = await h.call("GET", `/api/tables/${table.id}`, { token: user.token });
      expect(after.body.next_run_at).toBe(new Date(due + 60 * MINUTE).toISOString());
    } finally {
      clock.advance(back - clock.now());
      await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token });
    }
  });

  it("runs a time of a list once on DST days, as a single time: not twice at fall-back, nor never at spring-forward", async () => {
    const { user, connectionId } = await ownerOf(h);
    const runsOn = async (schedule: string, from: number, to: number) => {
      const table = await monitorTable(h, user.token, { connection_id: connectionId, table: "events", schedule, timezone: "America/New_York", checks: ROWS_CHECK });
      const times: string[] = [];
      const back = clock.now();
      clock.advance(from - back);
      try {
        await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { schedule: "0 0 1 1 *" } });
        await h.call("PATCH", `/api/tables/${table.id}`, { token: user.token, json: { schedule } });
        for (let t = from; t < to; t += 15 * MINUTE) {
          clock.advance(t - clock.now());
          if ((await h.scheduler.tick()).claimed.includes(table.id)) times.push(new Date(t).toISOString().slice(11, 16));
        }
      } finally {
        clock.advance(back - clock.now());
        await h.call("DELETE", `/api/tables/${table.id}`, { token: user.token });
      }
      return times;
    };
    // Fall-back, 3 November 2024: 01:30 comes twice (05:30 and 06:30 UTC).
    expect(await runsOn("30 1,13 * * *", Date.UTC(2024, 10, 3, 4), Date.UTC(2024, 10, 3, 19))).toEqual(["05:30", "18:30"]);
    // Spring-forward, 10 March 2024: 02:30 never comes; it runs at 03:00 (07:00 UTC).
    expect(await runsOn("30 2,14 * * *", Date.UTC(2024, 2, 10, 5), Date.UTC(2024, 2, 10, 19))).toEqual(["07:00", "18:30"]);
  });
});
