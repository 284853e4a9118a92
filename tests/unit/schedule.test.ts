// Schedules as saved: what new ones may be (five or six fields), and that one saved before that
// rule (with croner's seventh field, years) still has a next time.

import { describe, expect, it } from "vitest";

import { nextRunAfter, scheduleGap } from "../../src/monitoring/schedule.js";
import type { Monitoring } from "../../src/monitoring/runtime.js";

const NOW = Date.parse("2026-03-01T00:00:00Z");
const m = { jitterMs: () => 0 } as unknown as Monitoring;

describe("schedules", () => {
  it("refuses a seventh field in a new schedule, and still reads one already saved", () => {
    expect(scheduleGap("0 0 9 * * * *", "UTC", NOW)).toMatchObject({ field: "schedule" });
    // Else its table ran again at every lease's end, its next time never set.
    expect(nextRunAfter(m, { schedule: "0 0 9 * * * *", timezone: "UTC", intervalSeconds: 86_400 }, NOW).toISOString()).toBe("2026-03-01T09:00:00.000Z");
  });

  it("finds a schedule's shortest gap where only the turn of a day or a year shows it", () => {
    // From 01:00, its first 24 runs are 29 minutes or more apart; 23:59 and 00:00 are a minute.
    expect(scheduleGap("0,30,59 0-20/2,23 * * *", "UTC", Date.parse("2027-01-04T01:00:00Z"))).toEqual({ seconds: 60 });
    expect(scheduleGap("0,59 0,23 1-31/2 1,12 *", "Asia/Kathmandu", Date.parse("2027-01-04T01:00:00Z"))).toEqual({ seconds: 60 });
    expect(scheduleGap("0 9 * * *", "Europe/Paris", NOW)).toEqual({ seconds: 86_400 });
  });
});
