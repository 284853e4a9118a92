// Freshness judgement: how far the newest timestamp of a column lags behind now, judged
// against a fixed limit or against the learned baseline of past lags. Pure, no I/O.
import {
  judgeBaseline,
  toMs,
  type BaselineJudgement,
  type BaselineOptions,
  type MetricPoint,
  type Timestamp,
} from "./baselines.js";

export interface FreshnessInput {
  /** Newest value of the timestamp column; null when the table is empty or the column all null. */
  latest: Timestamp | null;
  now: Timestamp;
  /** How far the replica we read is behind its primary; that part of the lag is not the data's fault. */
  replicationLagSeconds?: number;
  /** Fixed limit on the data lag. When set it decides alone: predictable beats clever here. */
  maxLagSeconds?: number;
  /** Past data lags in seconds (what `dataLagSeconds` returned), for a learned limit. */
  history?: readonly MetricPoint[];
  baseline?: BaselineOptions;
}

export interface FreshnessJudgement extends BaselineJudgement {
  /** now - latest, as seen on the replica; null without any timestamp. */
  lagSeconds: number | null;
  /** lagSeconds minus the replication lag: what is judged and what the history should record. */
  dataLagSeconds: number | null;
  replicationLagSeconds: number;
}

/**
 * Learned limits only watch spikes (data getting fresher is never a problem) and ignore
 * changes under a minute or under half the usual lag, so an hourly batch job that lands a
 * few minutes late does not page anyone. A lag is judged as a level, and its anomalous points
 * never become the pattern: a feed that stopped has a lag growing a second a second, which as
 * a running total (the "change" model) read as "the usual change", and once most of a weekday
 * or of the window was flagged, was learnt as that weekday's normal; either way the stop
 * passed within hours. It stays anomalous until data arrives again (or a fixed
 * `max_lag_seconds` says what is acceptable).
 */
export const FRESHNESS_BASELINE_DEFAULTS: BaselineOptions = {
  direction: "spike",
  model: "level",
  relearnAnomalies: false,
  minDeviation: { absolute: 60, relative: 0.5 },
  label: "data lag",
};

export function judgeFreshness(input: FreshnessInput): FreshnessJudgement {
  const step = prepareFreshness(input);
  return "finish" in step ? step.finish(judgeBaseline(input.history ?? [], step.point, step.options)) : step;
}

/** What a learned limit must judge, and how its verdict becomes the freshness judgement. */
export interface FreshnessBaselineStep {
  point: { at: number; value: number };
  options: BaselineOptions;
  finish(judged: BaselineJudgement): FreshnessJudgement;
}

/** judgeFreshness up to the baseline: the judgement itself when no baseline is needed (a fixed
 * limit, no timestamp), else the step a baseline (cached or not) finishes. */
export function prepareFreshness(input: FreshnessInput): FreshnessJudgement | FreshnessBaselineStep {
  const replicationLagSeconds = Math.max(0, input.replicationLagSeconds ?? 0);
  if (input.latest === null) {
    return { verdict: "anomaly", expected: 0, lower: 0, upper: 0, score: 0, model: "level", seasonality: "none", samples: 0,
      reason: "no timestamp found: the table is empty or the column holds only nulls",
      lagSeconds: null, dataLagSeconds: null, replicationLagSeconds };
  }
  const now = toMs(input.now);
  // A timestamp in the future (clock skew, timezone-less columns) reads as fresh, not negative.
  const lagSeconds = Math.max(0, (now - toMs(input.latest)) / 1000);
  const dataLagSeconds = Math.max(0, lagSeconds - replicationLagSeconds);
  const replicaNote = replicationLagSeconds > 0 ? `; the replica itself is ${formatDuration(replicationLagSeconds)} behind` : "";
  const lags = { lagSeconds, dataLagSeconds, replicationLagSeconds };

  if (input.maxLagSeconds !== undefined) {
    const limit = input.maxLagSeconds;
    const stale = dataLagSeconds > limit;
    const reason = `data lag ${formatDuration(dataLagSeconds)} is ${stale ? "over" : "within"} the limit of ${formatDuration(limit)}`;
    return { verdict: stale ? "anomaly" : "ok", expected: limit, lower: 0, upper: limit,
      score: limit > 0 ? dataLagSeconds / limit : dataLagSeconds > 0 ? 1 : 0,
      model: "level", seasonality: "none", samples: 0, reason: reason + replicaNote, ...lags };
  }
  return {
    point: { at: now, value: dataLagSeconds },
    options: { ...FRESHNESS_BASELINE_DEFAULTS, formatValue: formatDuration, ...input.baseline },
    finish: (judged) => ({ ...judged, lower: Math.max(0, judged.lower), reason: judged.reason + replicaNote, ...lags }),
  };
}

/** 45 s, 12 min, 3 h 5 min, 2 d 4 h: precise enough for a person reading an alert. */
export function formatDuration(seconds: number): string {
  const s = Math.round(Math.max(0, seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86_400) {
    const m = Math.round((s % 3600) / 60);
    return m === 0 || m === 60 ? `${Math.round(s / 3600)} h` : `${Math.floor(s / 3600)} h ${m} min`;
  }
  const h = Math.round((s % 86_400) / 3600);
  return h === 0 || h === 24 ? `${Math.round(s / 86_400)} d` : `${Math.floor(s / 86_400)} d ${h} h`;
}
