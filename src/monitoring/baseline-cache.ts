// Reuses baseline trainings across the runs of a series. Training on a full window costs
// milliseconds and reading a trained model microseconds, while a model trained a few points
// ago judges like a fresh one; so each series keeps its last training, and a run loads only
// the points since it. When a training may be reused is a pure rule (retrainReason).

import {
  judgeTrained,
  toMs,
  trainBaseline,
  trainingKey,
  type BaselineJudgement,
  type BaselineOptions,
  type MetricPoint,
  type Timestamp,
  type TrainedBaseline,
} from "./baselines.js";

export interface ReusePolicy {
  /** Points judged since the training, at most, as a share of the usable points it saw... */
  maxShare: number;
  /** ...and never more than this many. */
  maxPoints: number;
  /** Time since the training, at most. */
  maxAgeMs: number;
}

/**
 * A one-minute check retrains every half hour (30 of a 1,000-point window); an hourly one,
 * whose window holds weeks, every point (the hour has passed), as does any series of fewer
 * than 32 points, since 1/32 of it is under one point. `npx tsx bench/detection.ts --reuse`
 * shows what reuse costs in detection quality when age does not limit it.
 */
export const REUSE_POLICY: ReusePolicy = { maxShare: 1 / 32, maxPoints: 30, maxAgeMs: 30 * 60_000 };

export type RetrainReason =
  /** Trained under other options (a check's baseline settings changed). */
  | "options"
  /** The point is older than the training: a clock went back, or a late point. */
  | "clock"
  | "age"
  | "points"
  /** A point since was judged anomalous: incidents are judged on fresh trainings only. */
  | "anomaly"
  /** Trained while learning, and the window could judge now. */
  | "ready";

/** Why `trained` must not judge a point at `now`, given the points since it (oldest first,
 * as the series holds them); null when it may. */
export function retrainReason(
  trained: TrainedBaseline,
  key: string,
  since: readonly MetricPoint[],
  now: number,
  policy: ReusePolicy,
): RetrainReason | null {
  if (key !== trained.key) return "options";
  if (now < trained.at) return "clock";
  if (now - trained.at > policy.maxAgeMs) return "age";
  let count = 0;
  for (const p of since) {
    const t = toMs(p.at);
    if (t < trained.at || t >= now || !Number.isFinite(p.value)) continue;
    if (p.anomalous === true) return "anomaly";
    count++;
  }
  if (count > Math.min(policy.maxPoints, Math.floor(policy.maxShare * trained.samples))) return "points";
  const { samples, at } = trained.learnsUntil;
  if (trained.models === null && trained.samples + count >= samples && now >= at) return "ready";
  return null;
}

/** History of one series for a judgement: all of the window (`since` null), or only the points
 * at or after `since`. Oldest first. */
export type HistoryLoader = (since: number | null) => Promise<MetricPoint[]>;

export interface BaselineCacheStats {
  judgements: number;
  trainings: number;
  /** History points handed to the cache by loaders. */
  pointsLoaded: number;
  /** Process CPU time spent training and judging (not loading), in ms; of which training. */
  cpuMs: number;
  trainingCpuMs: number;
}

export interface BaselineCache {
  /** Judges `point` of `series` ("tableId:checkKey"), training again only when the series'
   * last training may not be reused. */
  judge(series: string, point: { at: Timestamp; value: number }, options: BaselineOptions, load: HistoryLoader): Promise<BaselineJudgement>;
  /** The same with history at hand (benchmarks and tests). */
  judgeSync(series: string, point: { at: Timestamp; value: number }, options: BaselineOptions, load: (since: number | null) => MetricPoint[]): BaselineJudgement;
  readonly stats: Readonly<BaselineCacheStats>;
}

interface Entry {
  trained: TrainedBaseline;
  /** Judgements made with it, by this cache. */
  uses: number;
}

/** Beyond this many series the least recently judged trainings are dropped: about 10 kB each
 * (eight candidate models), so at most ~100 MB. A dropped one is trained again when needed. */
const MAX_SERIES = 10_000;

/** A judgement in steps: it yields what history it needs (see HistoryLoader) and is given it. */
type Judging = Generator<number | null, BaselineJudgement, MetricPoint[]>;

export function createBaselineCache(options: { policy?: ReusePolicy; maxSeries?: number } = {}): BaselineCache {
  const policy = options.policy ?? REUSE_POLICY;
  const maxSeries = options.maxSeries ?? MAX_SERIES;
  const entries = new Map<string, Entry>();
  const stats: BaselineCacheStats = { judgements: 0, trainings: 0, pointsLoaded: 0, cpuMs: 0, trainingCpuMs: 0 };

  const remember = (series: string, entry: Entry) => {
    entries.delete(series);
    if (entries.size >= maxSeries) entries.delete(entries.keys().next().value!);
    entries.set(series, entry);
  };

  // CPU time, not wall time: on a busy machine a few µs of work can span a preemption.
  const timed = <T>(fn: () => T, training = false): T => {
    const started = process.cpuUsage();
    try {
      return fn();
    } finally {
      const used = process.cpuUsage(started);
      const ms = (used.user + used.system) / 1000;
      stats.cpuMs += ms;
      if (training) stats.trainingCpuMs += ms;
    }
  };

  function* judging(series: string, point: { at: Timestamp; value: number }, o: BaselineOptions): Judging {
    stats.judgements++;
    const key = trainingKey(o);
    const now = toMs(point.at);
    const entry = entries.get(series);
    // Settled without loading anything: too old, or used up by this instance alone.
    if (entry && key === entry.trained.key && now >= entry.trained.at && now - entry.trained.at <= policy.maxAgeMs && entry.uses < policy.maxPoints) {
      const { trained } = entry;
      const since = yield trained.at;
      stats.pointsLoaded += since.length;
      const judged = timed(() => {
        if (retrainReason(trained, key, since, now, policy) !== null) return null;
        const result = judgeTrained(trained, since, point, o);
        // A trained model with nothing to say at this time (no points of this hour yet when it
        // was trained): a training now may know more.
        return result.verdict === "learning" && trained.models !== null ? null : result;
      });
      if (judged !== null) {
        remember(series, { trained, uses: entry.uses + 1 });
        return judged;
      }
    }
    const history = yield null;
    stats.pointsLoaded += history.length;
    stats.trainings++;
    const trained = timed(() => trainBaseline(history, point.at, o), true);
    remember(series, { trained, uses: 0 });
    return timed(() => judgeTrained(trained, [], point, o));
  }

  return {
    stats,
    async judge(series, point, o, load) {
      const steps = judging(series, point, o);
      let step = steps.next();
      while (!step.done) step = steps.next(await load(step.value));
      return step.value;
    },
    judgeSync(series, point, o, load) {
      const steps = judging(series, point, o);
      let step = steps.next();
      while (!step.done) step = steps.next(load(step.value));
      return step.value;
    },
  };
}
