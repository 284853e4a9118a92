// Reusing a baseline training for the next few points: when it is allowed (retrainReason),
// what a reused training judges (judgeTrained), and the per-series cache the scheduler uses.
import { describe, expect, it } from "vitest";

import { createBaselineCache, REUSE_POLICY, retrainReason, type ReusePolicy } from "../../src/monitoring/baseline-cache.js";
import {
  judgeBaseline,
  judgeTrained,
  trainBaseline,
  trainingKey,
  type BaselineOptions,
  type MetricPoint,
} from "../../src/monitoring/baselines.js";
import { historyOf } from "../support/history.js";
import { gaussianFrom, seededRandom } from "../support/random.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
// 2025-01-06 is a Monday.
const MONDAY = Date.UTC(2025, 0, 6);

/** Deterministic Gaussian noise: tests never flake. */
const noise = (seed: number) => gaussianFrom(seededRandom(seed));

/** `count` points every `step` ms ending just before `end`, valued by `f(t, i)`, after a
 * marker eight days earlier saying when the series began (as the scheduler loads it). */
function series(count: number, step: number, end: number, f: (t: number, i: number) => number): MetricPoint[] {
  const points = Array.from({ length: count }, (_, i) => {
    const at = end - (count - i) * step;
    return { at, value: f(at, i) };
  });
  return [{ at: end - 8 * DAY, value: Number.NaN }, ...points];
}

const g = noise(5);
/** A one-minute check over its whole window: a level around 5,000 and a growing total. */
const level = series(1000, MINUTE, MONDAY, () => 5000 + 40 * g());
const total = series(1000, MINUTE, MONDAY, (_t, i) => 2_000_000 + 50 * i + Math.round(5 * g()));
const trained = trainBaseline(level, MONDAY);
const key = trainingKey({});
/** Normal points after the training, one a minute from its time on. */
const after = (count: number, value = 5000): MetricPoint[] => Array.from({ length: count }, (_, i) => ({ at: MONDAY + i * MINUTE, value }));
const policy: ReusePolicy = { maxShare: 1 / 32, maxPoints: 30, maxAgeMs: 30 * MINUTE };

describe("when a training may judge a later point", () => {
  it.each<[string, MetricPoint[], number, ReusePolicy, string | null]>([
    ["one point since, a minute later", after(1), MONDAY + MINUTE, policy, null],
    ["as many points since as allowed", after(30), MONDAY + 30 * MINUTE, policy, null],
    ["one point more than allowed", after(31), MONDAY + 31 * MINUTE, { ...policy, maxAgeMs: HOUR }, "points"],
    ["a share of the window smaller than the point limit", after(20), MONDAY + 20 * MINUTE, { ...policy, maxShare: 1 / 64 }, "points"],
    ["older than the age limit", after(1), MONDAY + 30 * MINUTE + 1, policy, "age"],
    ["a point before the training", [], MONDAY - 1, policy, "clock"],
    ["a point since judged anomalous", [...after(2), { at: MONDAY + 2 * MINUTE, value: 9000, anomalous: true }], MONDAY + 3 * MINUTE, policy, "anomaly"],
    ["points before the training, at the judged time or not numbers are not counted",
      [{ at: MONDAY - MINUTE, value: 1, anomalous: true }, ...after(30), { at: MONDAY + 31 * MINUTE, value: Number.NaN }, { at: MONDAY + 32 * MINUTE, value: 1, anomalous: true }],
      MONDAY + 32 * MINUTE, { ...policy, maxAgeMs: HOUR }, null],
  ])("%s: %s", (_name, since, now, p, reason) => {
    expect(retrainReason(trained, key, since, now, p)).toBe(reason);
  });

  it("never reuses a training made under other training options, but ignores options of the verdict", () => {
    expect(retrainReason(trained, trainingKey({ seasonality: "none" }), after(1), MONDAY + MINUTE, policy)).toBe("options");
    expect(retrainReason(trained, trainingKey({ window: { points: 500 } }), after(1), MONDAY + MINUTE, policy)).toBe("options");
    expect(trainingKey({ sensitivity: 3, label: "row count", direction: "spike" })).toBe(key);
  });

  it.each<[string, number, number, number, string | null]>([
    // [case, points in the window, its span in days, points since, expected]
    ["too few points, still too few", 5, 10, 1, null],
    ["too few points, enough now", 13, 10, 1, "ready"],
    ["a short history, still short", 100, 6, 1, null],
    ["a short history, long enough now", 100, 7 - 1 / 1440, 2, "ready"],
  ])("a training made while learning (%s) is reused until it could judge", (_name, count, days, since, reason) => {
    const step = (days * DAY) / count;
    const history = series(count, step, MONDAY, () => 100 + g()).slice(1);
    history.unshift({ at: MONDAY - days * DAY, value: Number.NaN });
    const learning = trainBaseline(history, MONDAY);
    expect(learning.models).toBeNull();
    const points = Array.from({ length: since }, (_, i) => ({ at: MONDAY + i * MINUTE, value: 100 }));
    expect(retrainReason(learning, key, points, MONDAY + since * MINUTE, { ...policy, maxShare: 1 })).toBe(reason);
  });

  it("is never reused on a series of fewer than 32 points: 1/32 of it is under one point", () => {
    const daily = series(28, DAY, MONDAY, () => 100 + g());
    expect(retrainReason(trainBaseline(daily, MONDAY), key, [{ at: MONDAY, value: 100 }], MONDAY + DAY, { ...policy, maxAgeMs: 2 * DAY }))
      .toBe("points");
  });
});

describe("judging with a training", () => {
  it.each<[string, MetricPoint[], number, BaselineOptions]>([
    ["a noisy level", level, 5100, {}],
    ["a growing total", total, 2_050_000, {}],
    ["a weekly hourly pattern", series(600, HOUR, MONDAY, (t) => (new Date(t).getUTCDay() === 1 ? 500 : 1000) + 10 * g()), 520, {}],
    ["a series still learning", series(10, HOUR, MONDAY, () => 100).slice(1), 100, {}],
    ["a value that is not a number", level, Number.NaN, {}],
    ["a spike-only check", level, 4000, { direction: "spike", label: "null rate" }],
  ])("made for the same time and nothing since, is judgeBaseline exactly (%s)", (_name, history, value, options) => {
    const point = { at: MONDAY, value };
    expect(judgeTrained(trainBaseline(history, MONDAY, options), [], point, options)).toEqual(judgeBaseline(history, point, options));
  });

  it.each<[string, MetricPoint[], (i: number) => number]>([
    ["a noisy level", level, () => 5000 + 40 * g()],
    ["a growing total", total, (i) => 2_000_000 + 50 * (1000 + i) + Math.round(5 * g())],
  ])("a few points later, judges %s almost as a new training does", (_name, history, valueAt) => {
    const since = Array.from({ length: 20 }, (_, i) => ({ at: MONDAY + i * MINUTE, value: valueAt(i) }));
    const point = { at: MONDAY + 20 * MINUTE, value: valueAt(20) };
    const reused = judgeTrained(trainBaseline(history, MONDAY), since, point);
    const fresh = judgeBaseline([...history, ...since], point);
    expect(reused).toMatchObject({ verdict: fresh.verdict, model: fresh.model });
    const halfWidth = (fresh.upper - fresh.lower) / 2;
    expect(Math.abs(reused.expected - fresh.expected)).toBeLessThan(0.25 * halfWidth);
    expect((reused.upper - reused.lower) / 2).toBeCloseTo(halfWidth, -Math.log10(0.2 * halfWidth));
    expect(reused.samples).toBe(1000);
  });

  it("measures a running total's change from the newest normal point since the training", () => {
    const since = Array.from({ length: 10 }, (_, i) => ({ at: MONDAY + i * MINUTE, value: 2_050_000 + 50 * i }));
    const reused = judgeTrained(trainBaseline(total, MONDAY), since, { at: MONDAY + 10 * MINUTE, value: 2_050_500 });
    expect(reused).toMatchObject({ verdict: "ok", model: "change" });
    expect(reused.expected).toBeCloseTo(2_050_500, -1);
    // The same value measured from the training's own last point would be a stall of ten minutes.
    expect(judgeTrained(trainBaseline(total, MONDAY), [], { at: MONDAY + 10 * MINUTE, value: 2_049_950 }).verdict).toBe("anomaly");
  });
});

describe("the per-series cache", () => {
  /** A one-minute series streamed through a cache, with every load recorded. */
  function stream(count: number, options: BaselineOptions = {}, valueAt = (_i: number) => 5000 + 40 * g(), p = policy) {
    const cache = createBaselineCache({ policy: p });
    const history = [...level];
    const load = historyOf(history);
    const loads: (number | null)[] = [];
    const verdicts: string[] = [];
    for (let i = 0; i < count; i++) {
      const at = MONDAY + i * MINUTE;
      const judged = cache.judgeSync("7:volume", { at, value: valueAt(i) }, options, (since) => {
        loads.push(since);
        return load(since);
      });
      verdicts.push(judged.verdict);
      history.push({ at, value: valueAt(i), anomalous: judged.verdict === "anomaly" });
    }
    return { cache, loads, verdicts };
  }

  it("loads the whole window to train, then only the points since, until the point limit", () => {
    const { cache, loads } = stream(62);
    expect(loads.slice(0, 3)).toEqual([null, MONDAY, MONDAY]);
    // Trained at points 0 and 31 (after 30 reuses), each time on a whole window.
    expect(loads.filter((l) => l === null)).toHaveLength(2);
    expect(cache.stats).toMatchObject({ judgements: 62, trainings: 2 });
    // The windows (the second has grown by 31 points), and 1 + 2 + ... + 30 points since each.
    expect(cache.stats.pointsLoaded).toBe(1001 + 1032 + 2 * 465);
  });

  it("trains again after the age limit even when few points came", () => {
    const cache = createBaselineCache({ policy });
    const load = (since: number | null) => (since === null ? level : []);
    cache.judgeSync("s", { at: MONDAY, value: 5000 }, {}, load);
    cache.judgeSync("s", { at: MONDAY + 10 * MINUTE, value: 5000 }, {}, load);
    cache.judgeSync("s", { at: MONDAY + 31 * MINUTE, value: 5000 }, {}, load);
    expect(cache.stats.trainings).toBe(2);
  });

  it("judges an incident and what follows it on fresh trainings only", () => {
    const spikes = new Set([10, 11, 12]);
    const { cache, verdicts } = stream(20, {}, (i) => (spikes.has(i) ? 9000 : 5000 + 40 * g()));
    expect(verdicts.slice(9, 14)).toEqual(["ok", "anomaly", "anomaly", "anomaly", "ok"]);
    // Point 0, then each point from 11 (an anomaly since the training) to 13 (the last one
    // loaded since a training holds one), and none after.
    expect(cache.stats.trainings).toBe(1 + 3);
  });

  it("trains again when a check's training options change, not for its wording", () => {
    const cache = createBaselineCache({ policy });
    const load = (since: number | null) => (since === null ? level : []);
    cache.judgeSync("s", { at: MONDAY, value: 5000 }, {}, load);
    cache.judgeSync("s", { at: MONDAY + MINUTE, value: 5000 }, { label: "row count", sensitivity: 6 }, load);
    expect(cache.stats.trainings).toBe(1);
    cache.judgeSync("s", { at: MONDAY + 2 * MINUTE, value: 5000 }, { seasonality: "none" }, load);
    expect(cache.stats.trainings).toBe(2);
  });

  it("keeps one training per series, forgetting the least recently judged beyond its size", () => {
    const cache = createBaselineCache({ policy, maxSeries: 2 });
    const load = (since: number | null) => (since === null ? level : []);
    for (const s of ["a", "b", "a", "c", "a", "b"]) cache.judgeSync(s, { at: MONDAY + MINUTE, value: 5000 }, {}, load);
    // a, b trained; a reused; c trained (b forgotten); a reused; b trained again.
    expect(cache.stats.trainings).toBe(4);
  });

  it("answers the same through its asynchronous loader", async () => {
    const sync = createBaselineCache({ policy });
    const async = createBaselineCache({ policy });
    for (let i = 0; i < 5; i++) {
      const point = { at: MONDAY + i * MINUTE, value: 5000 + i };
      const load = (since: number | null) => (since === null ? level : after(i).filter((q) => (q.at as number) >= since));
      expect(await async.judge("s", point, {}, async (since) => load(since))).toEqual(sync.judgeSync("s", point, {}, load));
    }
  });

  it("uses the policy the scheduler runs with by default", () => {
    expect(REUSE_POLICY).toEqual({ maxShare: 1 / 32, maxPoints: 30, maxAgeMs: 30 * MINUTE });
  });
});
