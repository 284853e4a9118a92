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
});
