// The candidate models behind judgeBaseline: a seasonal level with a robust trend, or the
// change since the last normal point (for running totals), and the choice between them.
// Training (the costly part) and reading a trained model at the judged time are apart, so
// a judge may reuse one training for a few new points.
import { median, type TimedValue } from "./robust-stats.js";
import { trainSeasonal, type SeasonalFit, type Seasonality, type TrainedSeason } from "./seasonal-fits.js";

export type { Seasonality } from "./seasonal-fits.js";
/** "level": the value itself. "change": the change since the last normal point (running totals). */
export type ModelKind = "level" | "change";

export interface ModelOptions {
  trend: boolean;
  timeZone: string;
  sensitivity: number;
}

const levelFit = (f: SeasonalFit | null): Fit | null =>
  f && { model: "level", seasonality: f.seasonality, expected: f.expected, scale: f.scale, dof: f.dof,
    typical: Math.abs(f.expected), phasePoints: f.phasePoints, slopePerDay: f.slopePerDay, criterion: f.criterion };

export interface Fit {
  model: ModelKind;
  seasonality: Seasonality;
  expected: number;
  /** Standard deviation of (new value - expected) for a normal new value. */
  scale: number;
  /** Degrees of freedom behind `scale`: few means the threshold must widen. */
  dof: number;
  /** Magnitude the relative minimum deviation applies to: the level, or the expected change. */
  typical: number;
  /** Points behind the median: same-phase points (level) or same-phase changes (change). */
  phasePoints: number;
  /** Level: the trend. Change: the expected growth per day. */
  slopePerDay: number;
  /** Change model: the point the change is measured from. */
  anchor?: "last normal" | "previous";
  /** One-step prediction spread in value units times the tail penalty, to compare models. */
  criterion: number;
}

const DAY_MS = 86_400_000;
/** A seasonal model must predict this much better than none to be chosen automatically. */
const SEASONAL_GAIN = 0.9;
/** Share of single steps that must not go down for "auto" to treat a series as a running total. */
const RUNNING_TOTAL_SHARE = 0.95;
const SEASONALITIES: readonly Seasonality[] = ["none", "hour_of_day", "day_of_week", "hour_and_weekday"];

/** Every allowed (model, seasonality) pair trained on one window, in the order they are tried. */
export interface TrainedModels {
  candidates: readonly Candidate[];
  /** The usual time between points. */
  step: number;
  /** Seasonality was "auto": seasonal candidates must beat "none" clearly. */
  autoSeasons: boolean;
}

type Candidate = { model: "level"; season: TrainedSeason } | { model: "change"; rate: TrainedSeason };

/**
 * Trains every allowed (model, seasonality) pair on `train`, for judging at `ref` and
 * (approximately) a little after. pickFit then keeps the one with the smallest predicted
 * spread times its tail penalty: a robust spread alone would call every Monday of a
 * Monday-low series an outlier and so never see that a weekly model explains it.
 */
export function trainModels(
  train: readonly TimedValue[],
  ref: number,
  model: ModelKind | "auto",
  seasonality: Seasonality | "auto",
  o: ModelOptions,
): TrainedModels {
  const changes = changesOf(train);
  // A series that (almost) never goes down is a running total, the row count of an append-only
  // table: its level wanders like a random walk around any trend line, which a level fit on
  // a few weeks cannot tell from noise; only its changes are stable.
  const rising = median(changes.rates.map((r) => r.v)) > 0 &&
    changes.rates.filter((r) => r.v >= 0).length >= RUNNING_TOTAL_SHARE * changes.rates.length;
  const models: readonly ModelKind[] = model !== "auto" ? [model] : rising ? ["change"] : ["level", "change"];
  // Hourly seasons cannot differ from none or weekday on daily points: skip the wasted fits.
  const subDaily = changes.step < DAY_MS;
  const seasons = seasonality !== "auto" ? [seasonality]
    : SEASONALITIES.filter((s) => subDaily || s === "none" || s === "day_of_week");
  const candidates: Candidate[] = [];
  for (const m of models) {
    for (const s of seasons) {
      const trained = trainSeasonal(m === "level" ? train : changes.rates, ref, s, o);
      if (trained !== null) candidates.push(m === "level" ? { model: m, season: trained } : { model: m, rate: trained });
    }
  }
  return { candidates, step: changes.step, autoSeasons: seasonality === "auto" };
}

/** The best trained candidate at `now` for `value`, measured from `lastNormal`; null when
 * none can judge at `now`. */
export function pickFit(
  trained: TrainedModels,
  lastNormal: TimedValue,
  run: readonly TimedValue[],
  now: number,
  value: number,
  o: ModelOptions,
): Fit | null {
  let best: Fit | null = null;
  let bestCost = Number.POSITIVE_INFINITY;
  for (const c of trained.candidates) {
    const fit = c.model === "level" ? levelFit(c.season.at(now)) : fitChange(c.rate.at(now), trained.step, lastNormal, run, now, value, o);
    if (fit === null) continue;
    const cost = fit.criterion / (fit.seasonality === "none" || !trained.autoSeasons ? 1 : SEASONAL_GAIN);
    if (cost < bestCost) [best, bestCost] = [fit, cost];
  }
  return best;
}

interface Changes {
  /** Change per ms over each single step, at the step's end. */
  rates: TimedValue[];
  /** The usual time between points. */
  step: number;
}

function changesOf(train: readonly TimedValue[]): Changes {
  const step = median(train.slice(1).map((p, i) => p.t - train[i]!.t));
  const rates: TimedValue[] = [];
  for (let i = 1; i < train.length; i++) {
    const a = train[i - 1]!;
    const b = train[i]!;
    // A change across a gap (left by excluded points) mixes several seasons: a Monday's and a
    // Tuesday's growth averaged is neither. Only single steps teach the usual change.
    if (b.t > a.t && b.t - a.t <= 1.5 * step) rates.push({ t: b.t, v: (b.v - a.v) / (b.t - a.t) });
  }
  return { rates, step };
}

/**
 * A running total that jumped and then moved normally has moved for good (rows deleted: one
 * event, then normal growth) once the jump was small, or after this many points of a big one:
 * a big jump that reverts soon is a glitch (a reload caught half way) and the return is normal.
 */
const SETTLE_AFTER = 3;
/** A jump under this many thresholds is accepted as the new level at the next normal step. */
const SMALL_JUMP = 2;

/**
 * A running total (a table's row count) is judged by its change since an anchor, against
 * the past changes per unit of time fitted like a level and summed step by step over the gap
 * (a night of slow hours is not a busy hour times eight). The anchor is the last normal
 * point, so a dip that recovered is normal again and a stall stays odd however long it lasts.
 * Once `run` (the anomalous points since) has settled (see SETTLE_AFTER), the latest point
 * is tried as an anchor too, and the one that explains the value better is kept. `rate` is
 * the fit of past changes per ms read at `now`, `step` the usual time between points.
 */
export function fitChange(
  rate: SeasonalFit | null,
  step: number,
  lastNormal: TimedValue,
  run: readonly TimedValue[],
  now: number,
  value: number,
  o: ModelOptions,
): Fit | null {
  if (rate === null) return null;
  const predict = (from: TimedValue, to: number) => {
    const elapsed = to - from.t;
    const steps = Math.max(1, Math.round(elapsed / step));
    let change = 0;
    for (let k = 1; k <= steps; k++) change += rate.expectedAt(from.t + (k * elapsed) / steps) * (elapsed / steps);
    // Over k usual steps, k independent changes add up: the spread grows with sqrt(elapsed).
    return { expected: from.v + change, change, scale: rate.scale * Math.sqrt(elapsed * step) };
  };
  const z = (p: TimedValue, from: TimedValue) => {
    const guess = predict(from, p.t);
    return Math.abs(p.v - guess.expected) / guess.scale;
  };
  const first = run[0];
  const settled = first !== undefined && (run.length >= SETTLE_AFTER || z(first, lastNormal) <= SMALL_JUMP * o.sensitivity) &&
    run.slice(1).every((p, i) => z(p, run[i]!) <= o.sensitivity);
  let best: Fit | null = null;
  for (const anchor of settled ? [lastNormal, run[run.length - 1]!] : [lastNormal]) {
    if (anchor.t >= now) continue;
    const { expected, change, scale } = predict(anchor, now);
    const fit: Fit = { model: "change", seasonality: rate.seasonality, expected, scale, dof: rate.dof, typical: Math.abs(change),
      phasePoints: rate.phasePoints, slopePerDay: rate.expected * DAY_MS, anchor: anchor === lastNormal ? "last normal" : "previous",
      // Judged per usual step, so a long gap now does not hand the choice to another model.
      criterion: rate.criterion * step };
    if (best === null || Math.abs(value - expected) / scale < Math.abs(value - best.expected) / best.scale) best = fit;
  }
  return best;
}
