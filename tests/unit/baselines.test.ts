import { describe, expect, it } from "vitest";
import { formatNumber, judgeBaseline, type BaselineOptions, type MetricPoint } from "../../src/monitoring/baselines.js";
import { formatDuration, judgeFreshness } from "../../src/monitoring/freshness.js";
import { median, robustSigma, studentQuantile, theilSenSlope } from "../../src/monitoring/robust-stats.js";
import { phaseOf } from "../../src/monitoring/season-phases.js";
import { gaussianFrom, seededRandom } from "../support/random.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// 2025-01-06 is a Monday.
const MONDAY = Date.UTC(2025, 0, 6);

/** Deterministic Gaussian noise: tests never flake. */
const noise = (seed: number) => gaussianFrom(seededRandom(seed));

/** `count` points every `step` ms ending just before `end`, valued by `f(t, i)`. */
function series(count: number, step: number, end: number, f: (t: number, i: number) => number): MetricPoint[] {
  return Array.from({ length: count }, (_, i) => {
    const at = end - (count - i) * step;
    return { at, value: f(at, i) };
  });
}

const judge = (history: MetricPoint[], at: number, value: number, options: BaselineOptions = {}) =>
  judgeBaseline(history, { at, value }, options);

describe("learning", () => {
  it.each([
    [0, "learning"],
    [5, "learning"],
    [13, "learning"],
    [14, "ok"],
  ])("with %i points of history the verdict is %s", (count, verdict) => {
    const g = noise(1);
    const history = series(count, DAY, MONDAY, () => 1000 + 10 * g());
    expect(judge(history, MONDAY, 1000).verdict).toBe(verdict);
  });

  it("says how many points it has and needs", () => {
    const history = series(5, DAY, MONDAY, () => 100);
    expect(judge(history, MONDAY, 100).reason).toBe("learning: 5 usable points so far, 14 points over 7 days needed before judging");
    expect(judge(history, MONDAY, 100, { minSamples: 5 }).verdict).toBe("learning");
    expect(judge(history, MONDAY, 100, { minSamples: 5, minHistoryMs: 0 }).verdict).toBe("ok");
  });

  it("waits for a week of history before learning weekly seasons, a day for daily ones", () => {
    const g = noise(20);
    const sixDays = series(144, HOUR, MONDAY, () => 100 + g());
    expect(judge(sixDays, MONDAY, 100).verdict).toBe("learning");
    expect(judge(sixDays, MONDAY, 100, { seasonality: "hour_of_day" }).verdict).toBe("ok");
    expect(judge(sixDays, MONDAY, 100, { seasonality: "none" }).verdict).toBe("ok");
    expect(judge(series(170, HOUR, MONDAY, () => 100 + g()), MONDAY, 100).verdict).toBe("ok");
  });

  it("does not count non-finite values, or points at or after the judged time", () => {
    const history = [...series(13, DAY, MONDAY, () => 100), { at: MONDAY - HOUR, value: Number.NaN },
      { at: MONDAY, value: 100 }, { at: MONDAY + DAY, value: 100 }];
    expect(judge(history, MONDAY, 100).verdict).toBe("learning");
  });
});

describe("flat and constant series (MAD = 0)", () => {
  const flat = series(30, 6 * HOUR, MONDAY, () => 10_000);
  it.each([
    [10_000, "ok"],
    [10_001, "ok"], // +1 row is no incident
    [10_008, "ok"], // within the 0.1% minimum deviation
    [10_050, "anomaly"],
    [9_000, "anomaly"],
  ])("value %i on a constant 10,000 is %s", (value, verdict) => {
    const result = judge(flat, MONDAY, value, { model: "level" });
    expect(result.verdict).toBe(verdict);
    expect(Number.isFinite(result.score)).toBe(true);
  });

  it("uses the absolute minimum near zero: a null count of 0 going to 1 is not an incident", () => {
    const zeros = series(30, 6 * HOUR, MONDAY, () => 0);
    expect(judge(zeros, MONDAY, 1).verdict).toBe("ok");
    expect(judge(zeros, MONDAY, 5).verdict).toBe("anomaly");
    expect(judge(zeros, MONDAY, 5, { minDeviation: { absolute: 10 } }).verdict).toBe("ok");
  });

  it("tolerates tiny noise on a flat series", () => {
    const g = noise(2);
    const history = series(60, 3 * HOUR, MONDAY, () => Math.round(5000 + 2 * g()));
    expect(judge(history, MONDAY, 5003).verdict).toBe("ok");
    expect(judge(history, MONDAY, 4000).verdict).toBe("anomaly");
  });
});

describe("noisy series", () => {
  const g = noise(3);
  const history = series(200, HOUR, MONDAY, () => 1000 + 50 * g());

  it.each([
    [1000, "ok"],
    [1100, "ok"], // 2 sigma
    [1400, "anomaly"], // 8 sigma
    [600, "anomaly"],
  ])("value %i around 1,000 ± 50 is %s", (value, verdict) => {
    expect(judge(history, MONDAY, value).verdict).toBe(verdict);
  });

  it("raises few false alarms on clean noise when streamed point by point", () => {
    const stream = noise(4);
    const seen: MetricPoint[] = [];
    let alarms = 0;
    for (let i = 0; i < 600; i++) {
      const at = MONDAY + i * HOUR;
      const value = 1000 + 50 * stream();
      const verdict = judge(seen, at, value).verdict;
      if (verdict === "anomaly") alarms++;
      seen.push({ at, value, anomalous: verdict === "anomaly" });
    }
    expect(alarms).toBeLessThanOrEqual(2);
  });

  it("keeps |score| above the sensitivity exactly when outside the range", () => {
    for (const value of [700, 800, 850, 900, 1000, 1100, 1150, 1200, 1300]) {
      const result = judge(history, MONDAY, value, { model: "level", seasonality: "none" });
      const outside = value < result.lower || value > result.upper;
      expect(Math.abs(result.score) > 4.5).toBe(outside);
      expect(result.verdict === "anomaly").toBe(outside);
    }
  });

  it("is stricter with a lower sensitivity", () => {
    expect(judge(history, MONDAY, 1150).verdict).toBe("ok");
    expect(judge(history, MONDAY, 1150, { sensitivity: 2 }).verdict).toBe("anomaly");
  });
});

describe("trend", () => {
  const g = noise(5);
  // Daily inserts growing by 100 a day: every new normal value is above all past ones.
  const growing = series(28, DAY, MONDAY, (t) => 10_000 + (100 * (t - MONDAY)) / DAY + 20 * g());

  it("accepts a value on the trend line", () => {
    const result = judge(growing, MONDAY, 10_000, { seasonality: "none", model: "level" });
    expect(result.verdict).toBe("ok");
    expect(result.expected).toBeCloseTo(10_000, -2);
    expect(result.reason).toMatch(/trend \+\d+(\.\d+)?\/day/);
  });

  it("keeps a range several times narrower than a median without the trend would", () => {
    const width = (trend: boolean) => {
      const result = judge(growing, MONDAY, 10_000, { seasonality: "none", model: "level", trend });
      return result.upper - result.lower;
    };
    expect(width(false)).toBeGreaterThan(5 * width(true));
  });

  it("flags a value that stopped growing a week ago", () => {
    expect(judge(growing, MONDAY, 9_300, { seasonality: "none", model: "level" }).verdict).toBe("anomaly");
  });
});

describe("weekly seasonality: Monday is always low", () => {
  const g = noise(6);
  const weekday = (t: number) => new Date(t).getUTCDay();
  // Five weeks of daily counts: 10,000 on weekdays, 4,000 on Mondays, ±1%.
  const history = series(35, DAY, MONDAY + 7 * DAY, (t) => (weekday(t) === 1 ? 4000 : 10_000) * (1 + 0.01 * g()));
  const nextMonday = MONDAY + 7 * DAY;
  const nextTuesday = nextMonday + DAY;

  it.each([
    ["a normal Monday", "ok", nextMonday, 4000],
    ["a normal Tuesday", "ok", nextTuesday, 10_050],
    ["a Tuesday as low as a Monday", "anomaly", nextTuesday, 4000],
    ["a Monday as high as a Tuesday", "anomaly", nextMonday, 10_000],
    ["a Monday at half its usual", "anomaly", nextMonday, 2000],
  ])("%s is %s", (_name, verdict, at, value) => {
    expect(judge(history, at, value).verdict).toBe(verdict);
  });

  it("finds the weekly pattern by itself and says so", () => {
    const result = judge(history, nextTuesday, 4000);
    expect(result.seasonality).toBe("day_of_week");
    expect(result.reason).toMatch(/^value 4,000 is below the expected range [\d,]+–[\d,]+ \(median of \d+ points at the same weekday, out of \d+/);
  });

  it("without seasonality every Monday looks like an incident", () => {
    expect(judge(history, nextMonday, 4000, { seasonality: "none", model: "level" }).verdict).toBe("anomaly");
  });

  it("needs two past points of the same weekday when asked for weekly seasonality", () => {
    const short = history.slice(-8);
    expect(judge(short, nextMonday, 4000, { seasonality: "day_of_week", minSamples: 5 }).verdict).toBe("learning");
  });
});

describe("daily and weekly seasonality on hourly points", () => {
  const g = noise(7);
  const hourly = (t: number) => {
    const hour = new Date(t).getUTCHours();
    const weekend = [0, 6].includes(new Date(t).getUTCDay());
    return 1000 * (1 + 0.8 * Math.sin((2 * Math.PI * (hour - 9)) / 24)) * (weekend ? 0.5 : 1) * (1 + 0.02 * g());
  };
  const history = series(24 * 21, HOUR, MONDAY + 21 * DAY, hourly);
  const noon = MONDAY + 21 * DAY + 15 * HOUR; // a Monday afternoon, the daily peak

  it.each([
    ["the usual peak", "ok", noon, hourly(noon)],
    ["a night-time value at the peak", "anomaly", noon, 250],
    ["a weekend-sized peak on a Monday", "anomaly", noon, hourly(noon) / 2],
  ])("%s is %s", (_name, verdict, at, value) => {
    expect(judge(history, at, value).verdict).toBe(verdict);
  });

  it("knows Saturday afternoons are half a weekday's", () => {
    const saturday = MONDAY + 19 * DAY + 15 * HOUR;
    const past = history.filter((p) => (p.at as number) < saturday);
    expect(judge(past, saturday, hourly(saturday)).verdict).toBe("ok");
    expect(judge(past, saturday, hourly(saturday) * 2).verdict).toBe("anomaly");
  });
});

describe("direction", () => {
  const g = noise(8);
  const history = series(50, 4 * HOUR, MONDAY, () => 500 + 5 * g());

  it.each<[BaselineOptions["direction"], number, string]>([
    ["both", 800, "anomaly"],
    ["both", 200, "anomaly"],
    ["spike", 800, "anomaly"],
    ["spike", 200, "ok"],
    ["drop", 800, "ok"],
    ["drop", 200, "anomaly"],
  ])("watching %s, %i is %s", (direction, value, verdict) => {
    expect(judge(history, MONDAY, value, { direction }).verdict).toBe(verdict);
  });

  it("still says the value was outside the range", () => {
    expect(judge(history, MONDAY, 200, { direction: "spike" }).reason).toMatch(/is below the expected range .*; only spikes are watched$/);
  });
});

describe("points judged anomalous stay out of the training window", () => {
  const g = noise(9);
  const normal = series(24, HOUR, MONDAY - 6 * HOUR, () => 100 + g());
  const incident = series(6, HOUR, MONDAY, () => 300 + g());

  it("an ongoing incident does not become the expectation", () => {
    const flagged = [...normal, ...incident.map((p) => ({ ...p, anomalous: true }))];
    expect(judge(flagged, MONDAY, 300, { model: "level", minHistoryMs: 0 }).verdict).toBe("anomaly");
    expect(judge(flagged, MONDAY, 100, { model: "level", minHistoryMs: 0 }).verdict).toBe("ok");
  });

  it("unflagged, the same points would widen the range", () => {
    const width = (history: MetricPoint[]) => {
      const result = judge(history, MONDAY, 100, { model: "level", seasonality: "none", minHistoryMs: 0 });
      return result.upper - result.lower;
    };
    const flagged = [...normal, ...incident.map((p) => ({ ...p, anomalous: true }))];
    expect(width([...normal, ...incident])).toBeGreaterThan(1.5 * width(flagged));
  });

  it("a lasting new level is accepted once most of the window sits there", () => {
    const moved = [...series(10, HOUR, MONDAY - 20 * HOUR, () => 100 + g()),
      ...series(20, HOUR, MONDAY, () => 300 + g()).map((p) => ({ ...p, anomalous: true }))];
    expect(judge(moved, MONDAY, 300, { model: "level", seasonality: "none", minHistoryMs: 0 }).verdict).toBe("ok");
  });
});

describe("window", () => {
  it("ignores points older than the duration and beyond the point count", () => {
    const g = noise(10);
    const history = [...series(50, HOUR, MONDAY - 70 * DAY, () => 5000 + g()), ...series(50, HOUR, MONDAY, () => 100 + g())];
    expect(judge(history, MONDAY, 100).verdict).toBe("ok");
    const wide = { window: { durationMs: 100 * DAY, points: 1000 }, model: "level", seasonality: "none", trend: false } as const;
    expect(judge(history, MONDAY, 100, wide).expected).toBeGreaterThan(1000);
    expect(judge(history, MONDAY, 100, { window: { points: 10 } }).samples).toBe(10);
  });
});

describe("running totals (row counts)", () => {
  const g = noise(11);
  // A table growing by about 1,000 rows an hour.
  const total = series(200, HOUR, MONDAY, (_t, i) => 1_000_000 + 1000 * i + Math.round(30 * g()));
  const last = total[total.length - 1]!.value;

  it("expects the last value plus the usual growth", () => {
    const result = judge(total, MONDAY, last + 1000);
    expect(result).toMatchObject({ verdict: "ok", model: "change" });
    expect(result.reason).toMatch(/previous value plus the usual change|last normal value plus the usual change/);
  });

  it.each([
    ["a stall (no new rows)", "anomaly", 0],
    ["rows deleted", "anomaly", -50_000],
    ["a batch loaded twice", "anomaly", 30_000],
    ["a slightly slow hour", "ok", 900],
  ])("%s is %s", (_name, verdict, growth) => {
    expect(judge(total, MONDAY, last + growth).verdict).toBe(verdict);
  });

  it("calls a recovery after a short dip normal, and a stall anomalous however long", () => {
    const dip = [...total, { at: MONDAY, value: last - 40_000, anomalous: true }];
    expect(judge(dip, MONDAY + HOUR, last + 2000).verdict).toBe("ok");
    const stalled = [...total, ...[0, 1, 2, 3].map((k) => ({ at: MONDAY + k * HOUR, value: last, anomalous: true }))];
    expect(judge(stalled, MONDAY + 4 * HOUR, last).verdict).toBe("anomaly");
    expect(judge(stalled, MONDAY + 4 * HOUR, last + 5000).verdict).toBe("ok"); // caught up
  });
});

describe("inputs", () => {
  it("accepts Dates and epoch milliseconds alike", () => {
    const g = noise(12);
    const numbers = series(30, 6 * HOUR, MONDAY, () => 100 + g());
    const dates = numbers.map((p) => ({ ...p, at: new Date(p.at) }));
    expect(judge(dates, MONDAY, 130)).toEqual(judgeBaseline(numbers, { at: new Date(MONDAY), value: 130 }));
  });

  it("calls a value that is not a number an anomaly", () => {
    const history = series(30, HOUR, MONDAY, () => 100);
    expect(judge(history, MONDAY, Number.NaN)).toMatchObject({ verdict: "anomaly", reason: "value is not a finite number (NaN)" });
  });

  it("names the metric in the reason", () => {
    const history = series(30, DAY, MONDAY, () => 10_000);
    expect(judge(history, MONDAY, 5012, { label: "row count", model: "level" }).reason)
      .toMatch(/^row count 5,012 is below the expected range 9,990–10,010 \(median of 30 points\)$/);
  });
});

describe("seasons and time zones", () => {
  it.each([
    [Date.UTC(2025, 0, 6, 3), "UTC", 3, 1],
    [Date.UTC(2025, 0, 6, 3), "America/New_York", 22, 0], // still Sunday evening in New York
    [Date.UTC(2025, 0, 6, 23, 30), "Asia/Kolkata", 5, 2], // 05:00 on Tuesday
    [Date.UTC(2025, 6, 7, 3), "America/New_York", 23, 0], // summer time: UTC-4
  ])("%s in %s is hour %i of weekday %i", (t, zone, hour, weekday) => {
    expect(phaseOf(t, "hour_of_day", zone)).toBe(hour);
    expect(phaseOf(t, "day_of_week", zone)).toBe(weekday);
  });
});

describe("robust statistics", () => {
  it.each([
    [[], Number.NaN],
    [[5], 5],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[1, 1, 1, 1000], 1],
  ])("median of %j is %d", (values, expected) => {
    expect(median(values)).toBe(expected);
  });

  it("scales the MAD to sigma, ignores a wild outlier, and is 0 only for constants", () => {
    const g = noise(13);
    const values = Array.from({ length: 2000 }, () => 10 * g());
    expect(robustSigma(values)).toBeCloseTo(10, 0);
    expect(robustSigma([...values.slice(0, 1999), 1e9])).toBeCloseTo(10, 0);
    expect(robustSigma([0, 0, 0, 0])).toBe(0);
    expect(robustSigma([0, 0, 0, 4])).toBeGreaterThan(0); // MAD is 0 here; not the answer
  });

  it("finds a slope despite outliers, and compares only within groups", () => {
    const points = Array.from({ length: 20 }, (_, i) => ({ t: i, v: 3 * i + (i === 7 ? 500 : 0) }));
    expect(theilSenSlope([points])).toBe(3);
    const weekly = [[{ t: 0, v: 10 }, { t: 7, v: 17 }], [{ t: 1, v: 100 }, { t: 8, v: 107 }]];
    expect(theilSenSlope(weekly)).toBe(1);
  });

  it("skips pairs closer than the minimum gap (two hours of one Monday are not a trend)", () => {
    const monday = [{ t: 0, v: 10 }, { t: 1, v: 50 }, { t: 7, v: 17 }, { t: 8, v: 57 }];
    expect(theilSenSlope([monday], 6)).toBe(1);
    expect(theilSenSlope([monday], 100)).toBe(0);
  });

  it("widens the threshold for few degrees of freedom and not for many", () => {
    expect(studentQuantile(3.5, 10)).toBeCloseTo(5.1, 1);
    expect(studentQuantile(3.5, 1000)).toBeCloseTo(3.5, 1);
  });
});

describe("freshness", () => {
  const now = Date.UTC(2025, 0, 6, 12);

  it.each<[string, number | null, number | undefined, number, string]>([
    ["fresh data", now - 60_000, undefined, 60, "ok"],
    ["stale data", now - 3 * HOUR, undefined, 3 * 3600, "anomaly"],
    ["stale only because the replica lags", now - 3 * HOUR, 2.9 * 3600, 360, "ok"],
    ["a timestamp from the future", now + 60_000, undefined, 0, "ok"],
  ])("%s", (_name, latest, replicationLagSeconds, dataLag, verdict) => {
    const result = judgeFreshness({ latest, now, replicationLagSeconds, maxLagSeconds: 3600 });
    expect(result.verdict).toBe(verdict);
    expect(result.dataLagSeconds).toBeCloseTo(dataLag, 6);
  });

  it("says why, replica included", () => {
    const result = judgeFreshness({ latest: now - 3 * HOUR, now, replicationLagSeconds: 600, maxLagSeconds: 3600 });
    expect(result.reason).toBe("data lag 2 h 50 min is over the limit of 1 h; the replica itself is 10 min behind");
    expect(result).toMatchObject({ lagSeconds: 3 * 3600, replicationLagSeconds: 600 });
  });

  it("calls an empty table an anomaly", () => {
    expect(judgeFreshness({ latest: null, now, maxLagSeconds: 60 })).toMatchObject({ verdict: "anomaly", lagSeconds: null });
  });

  it("learns the usual lag and watches only spikes", () => {
    const g = noise(14);
    const lags = series(100, 2 * HOUR, now, () => 300 + 60 * g());
    const fresh = judgeFreshness({ latest: now - 280_000, now, history: lags });
    expect(fresh.verdict).toBe("ok");
    expect(judgeFreshness({ latest: now - 2 * HOUR, now, history: lags }).verdict).toBe("anomaly");
    expect(judgeFreshness({ latest: now, now, history: lags }).verdict).toBe("ok"); // fresher than usual: fine
    expect(judgeFreshness({ latest: now - 2 * HOUR, now, history: lags.slice(0, 3) }).verdict).toBe("learning");
  });

  it.each([2, 12, 20])("notices a feed that stops (a Wednesday at %i h) and says so until data arrives: a lag is no running total, and its incident no pattern", (hour) => {
    // An hourly batch checked every 5 minutes for ten days: the lag climbs 0 to 55 min and
    // falls back. The default window (1,000 points) holds 3.5 days of it.
    const STEP = 5 * 60_000;
    const stopped = MONDAY + 9 * DAY + hour * HOUR;
    const history: MetricPoint[] = series(10 * 24 * 12, STEP, stopped, (_t, i) => (i % 12) * 300);
    const verdicts: string[] = [];
    // The batch last landed an hour before `stopped`, and then never again for four days: each
    // run's lag is judged against the history, kept with its verdict as a run keeps it.
    for (let at = stopped; at <= stopped + 4 * DAY; at += STEP) {
      const judged = judgeFreshness({ latest: stopped - HOUR, now: at, history });
      verdicts.push(judged.verdict);
      history.push({ at, value: judged.dataLagSeconds!, anomalous: judged.verdict === "anomaly" });
    }
    // Anomalous within four hours (the usual peak is 55 min; its spread is wide), and from then
    // on, through new weekdays and a window that is by then all incident.
    const fromFourHours = verdicts.slice(4 * 12);
    expect(fromFourHours).toEqual(Array(fromFourHours.length).fill("anomaly"));
    // Data again: fresh, and judged so.
    const back = history.at(-1)!.at as number;
    expect(judgeFreshness({ latest: back, now: back + 60_000, history }).verdict).toBe("ok");
  });

  it.each([
    [45, "45 s"],
    [720, "12 min"],
    [3600, "1 h"],
    [11_100, "3 h 5 min"],
    [187_200, "2 d 4 h"],
  ])("formats %i seconds as %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe("numbers in messages", () => {
  it("reads as people write them, and the very large stay short (a bound of 1e308 was 411 characters)", () => {
    expect([10_300, 42.125, 0.012345, -7].map(formatNumber)).toEqual(["10,300", "42.13", "0.0123", "-7"]);
    expect([1e308, -2.5e20, 1.234_567e17].map(formatNumber)).toEqual(["1E308", "-2.5E20", "1.23E17"]);
    expect(formatNumber(999_999_999_999_999)).toBe("999,999,999,999,999");
  });
});
