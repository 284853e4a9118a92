// Seasonal level fits over a window of timed values: one season (same hour, same weekday) with
// additive noise, or hour x weekday multiplied, with noise relative to the level. Pure math;
// a fit is trained once and read at any time (TrainedSeason).
import {
  leaveOneOutResiduals,
  median,
  medianVariance,
  persistenceFactor,
  robustSigma,
  tailPenalty,
  theilSenSlope,
  type TimedValue,
} from "./robust-stats.js";
import { phaseOf, type Seasonality, type SingleSeason } from "./season-phases.js";

export type { Seasonality } from "./season-phases.js";

export interface SeasonalFit {
  seasonality: Seasonality;
  expected: number;
  /** Standard deviation of (new value - expected) for a normal new value. */
  scale: number;
  /** Degrees of freedom behind `scale`: few means the threshold must widen. */
  dof: number;
  /** Points behind the expectation at `now`'s phase. */
  phasePoints: number;
  slopePerDay: number;
  /** Typical prediction spread over the window times its tail penalty, to compare models. */
  criterion: number;
  /** The expectation at another time, for summing expected changes over a gap. */
  expectedAt: (t: number) => number;
}

export interface SeasonOptions {
  trend: boolean;
  timeZone: string;
}

const DAY_MS = 86_400_000;
/** Same-phase points needed before a seasonal model may judge (two Mondays, two 9 o'clocks). */
export const MIN_PHASE_POINTS = 2;
/** Points of today's weekday needed before hour x weekday may judge: a weekday seen for hours. */
const MIN_WEEKDAY_POINTS = 12;
/** Phases of a single season: hours 0–23, weekdays 0–6, or 0 for none. */
const PHASES = 24;

/**
 * A seasonal fit trained once on a window and read at any time: `at(now)` is what fitting the
 * same window at `now` gives (exactly at the training time, and extrapolated along the slope
 * after it), so a judge may reuse one training for several new points.
 */
export interface TrainedSeason {
  seasonality: Seasonality;
  /** Null when `now`'s phase has too few points to judge. */
  at(now: number): SeasonalFit | null;
}

/** Trains on `train` with the trend measured from `ref` (the time it is trained for); null
 * when no time could be judged by it. */
export function trainSeasonal(train: readonly TimedValue[], ref: number, s: Seasonality, o: SeasonOptions): TrainedSeason | null {
  return s === "hour_and_weekday" ? trainHourAndWeekday(train, ref, o) : trainSingleSeason(train, ref, s, o);
}

/**
 * What a trained single-season fit keeps: per phase its centre (detrended to `ref`), point
 * count and mean time, and the noise figures. Numbers only, nothing of the window: trainings
 * are cached, and a closure over the window would keep all of it alive.
 */
interface SingleSeasonParams {
  season: SingleSeason;
  ref: number;
  slope: number;
  centres: Float64Array;
  counts: Uint32Array;
  meanTimes: Float64Array;
  /** Centre for a phase without points. */
  fallback: number;
  sigma: number;
  dof: number;
  sxx: number;
  persistence: number;
  penalty: number;
}

/**
 * Detrends the window with a Theil–Sen slope and takes the median of the points in the same
 * phase as `now` as the expectation. The noise comes from leave-one-out residuals within each
 * phase; the prediction scale adds the uncertainty of a median of only a few same-phase points
 * and of extrapolating the slope.
 */
function trainSingleSeason(train: readonly TimedValue[], ref: number, s: SingleSeason, o: SeasonOptions): TrainedSeason | null {
  const phases = new Uint8Array(train.length);
  for (let i = 0; i < train.length; i++) phases[i] = phaseOf(train[i]!.t, s, o.timeZone);
  const groups = groupBy(train, (_, i) => phases[i]!);
  // Same weekday means another week: on hourly points, two hours of one Monday are no trend.
  const slope = o.trend ? theilSenSlope([...groups.values()], s === "day_of_week" ? 6 * DAY_MS : 0) : 0;

  const centres = new Float64Array(PHASES);
  const counts = new Uint32Array(PHASES);
  const meanTimes = new Float64Array(PHASES);
  const residuals: number[] = [];
  let groupsUsed = 0;
  for (const [phase, group] of groups) {
    const detrended = group.map((p) => p.v - slope * (p.t - ref));
    [centres[phase], counts[phase], meanTimes[phase]] = [median(detrended), group.length, meanTime(group)];
    if (detrended.length < 2) continue;
    groupsUsed++;
    for (const r of leaveOneOutResiduals(detrended)) residuals.push(r);
  }
  // Each phase median and the slope use up a degree of freedom.
  const dof = residuals.length - groupsUsed - (o.trend ? 1 : 0);
  if (dof < 2) return null;
  const sigma = robustSigma(residuals);
  const inOrder = train.map((p, i) => p.v - slope * (p.t - ref) - centres[phases[i]!]!);
  return readSingleSeason({
    season: s, ref, slope, centres, counts, meanTimes, sigma, dof,
    fallback: median([...groups.keys()].map((phase) => centres[phase]!)),
    sxx: timeSpread(train),
    persistence: persistenceFactor(inOrder, sigma),
    penalty: tailPenalty(residuals, sigma),
  }, o);
}

function readSingleSeason(p: SingleSeasonParams, o: SeasonOptions): TrainedSeason {
  return {
    seasonality: p.season,
    at(now) {
      const phaseNow = phaseOf(now, p.season, o.timeZone);
      const own = p.counts[phaseNow]!;
      if (own < MIN_PHASE_POINTS) return null;
      const factor = Math.sqrt(1 + medianVariance(own) + slopeVariance(p.sxx, p.meanTimes[phaseNow]!, now, o.trend));
      const scale = p.sigma * factor * p.persistence;
      return { seasonality: p.season, expected: p.centres[phaseNow]! + p.slope * (now - p.ref), scale, dof: p.dof, phasePoints: own,
        slopePerDay: p.slope * DAY_MS, criterion: scale * p.penalty,
        expectedAt: (t) => {
          const phase = phaseOf(t, p.season, o.timeZone);
          return (p.counts[phase]! > 0 ? p.centres[phase]! : p.fallback) + p.slope * (t - p.ref);
        } };
    },
  };
}

/** What a trained hour x weekday fit keeps (see SingleSeasonParams). */
interface HourAndWeekdayParams {
  ref: number;
  slope: number;
  hours: Float64Array;
  days: Float64Array;
  hourCounts: Uint32Array;
  dayCounts: Uint32Array;
  hourMeanTimes: Float64Array;
  /** Profile value for an hour without points. */
  hourFallback: number;
  /** Typical fitted level, to compare relative noise with other models' absolute one. */
  level: number;
  sigma: number;
  dof: number;
  sxx: number;
  persistence: number;
  penalty: number;
}

/**
 * Hourly data usually has a daily cycle whose height depends on the weekday (quiet weekends,
 * a slow Monday): value = hour profile x weekday factor, found by alternating medians of
 * ratios, so it needs one week of history instead of two of each hour of the week. Counts
 * vary in proportion to their level, so the noise is relative too: a quiet night is not
 * judged with the margin of the busy noon. Only for data that is never negative.
 */
function trainHourAndWeekday(train: readonly TimedValue[], ref: number, o: SeasonOptions): TrainedSeason | null {
  const n = train.length;
  if (train.some((p) => p.v < 0)) return null;
  // Flat arrays and plain loops (TypedArray.from with a mapper is slow): this runs for two
  // candidates of every training.
  const hour = new Uint8Array(n);
  const day = new Uint8Array(n);
  const hourOfWeek = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const t = train[i]!.t;
    [hour[i], day[i]] = [phaseOf(t, "hour_of_day", o.timeZone), phaseOf(t, "day_of_week", o.timeZone)];
    hourOfWeek[i] = day[i]! * 24 + hour[i]!;
  }
  const byHour = indexGroups(hour, 24);
  const byDay = indexGroups(day, 7);
  // Trend from the same hour of the same weekday only: within a single week a quiet weekend
  // followed by busy weekdays would pass for growth. No trend before two weeks of history.
  const slope = o.trend ? theilSenSlope(indexGroups(hourOfWeek, 168).map((group) => group.map((i) => train[i]!))) : 0;
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = train[i]!.v - slope * (train[i]!.t - ref);

  const hours = new Float64Array(24);
  const days = new Float64Array(7).fill(1);
  for (let round = 0; round < 3; round++) {
    for (let h = 0; h < 24; h++) hours[h] = median(byHour[h]!.map((i) => v[i]! / days[day[i]!]!));
    for (let d = 0; d < 7; d++) {
      const ratios = byDay[d]!.filter((i) => hours[hour[i]!]! > 0).map((i) => v[i]! / hours[hour[i]!]!);
      days[d] = ratios.length > 0 ? median(ratios) : 1;
    }
    const norm = median([...days].filter((_, d) => byDay[d]!.length > 0));
    if (!(norm > 0)) return null;
    for (let d = 0; d < 7; d++) days[d] = days[d]! / norm;
  }
  const residuals: number[] = [];
  const levels: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = hours[hour[i]!]! * days[day[i]!]!;
    if (f > 0) residuals.push((v[i]! - f) / f);
    levels.push(f);
  }
  const usedHours = byHour.filter((g) => g.length > 0).length;
  const usedDays = byDay.filter((g) => g.length > 0).length;
  const dof = residuals.length - usedHours - usedDays - (o.trend ? 1 : 0);
  if (dof < 2) return null;
  // Fitted in-sample, so widen by the parameters used.
  const rawSigma = robustSigma(residuals);
  return readHourAndWeekday({
    ref, slope, hours, days, dof,
    hourCounts: Uint32Array.from(byHour.map((g) => g.length)),
    dayCounts: Uint32Array.from(byDay.map((g) => g.length)),
    hourMeanTimes: Float64Array.from(byHour.map((g) => (g.length > 0 ? meanTime(g.map((i) => train[i]!)) : 0))),
    hourFallback: median([...hours].filter((_, h) => byHour[h]!.length > 0)),
    level: median(levels),
    sigma: rawSigma * Math.sqrt(residuals.length / dof),
    sxx: timeSpread(train),
    persistence: persistenceFactor(residuals, rawSigma),
    penalty: tailPenalty(residuals, rawSigma),
  }, o);
}

function readHourAndWeekday(p: HourAndWeekdayParams, o: SeasonOptions): TrainedSeason {
  const hourOf = (t: number) => phaseOf(t, "hour_of_day", o.timeZone);
  const dayOf = (t: number) => phaseOf(t, "day_of_week", o.timeZone);
  const centreAt = (t: number) => {
    const h = hourOf(t);
    return (p.hourCounts[h]! > 0 ? p.hours[h]! : p.hourFallback) * p.days[dayOf(t)]!;
  };
  return {
    seasonality: "hour_and_weekday",
    at(now) {
      const h = hourOf(now);
      const ownHour = p.hourCounts[h]!;
      const ownDay = p.dayCounts[dayOf(now)]!;
      if (ownHour < MIN_PHASE_POINTS || ownDay < MIN_WEEKDAY_POINTS) return null;
      const expected = centreAt(now) + p.slope * (now - p.ref);
      if (!(expected > 0)) return null;
      // The error of both medians, and of extrapolating the slope.
      const medianError = (Math.PI / 2) * (1 / ownHour + 1 / ownDay);
      const widen = Math.sqrt(1 + medianError + slopeVariance(p.sxx, p.hourMeanTimes[h]!, now, o.trend)) * p.persistence;
      return { seasonality: "hour_and_weekday", expected, scale: p.sigma * expected * widen, dof: p.dof, phasePoints: ownHour,
        slopePerDay: p.slope * DAY_MS, criterion: p.sigma * p.level * widen * p.penalty,
        expectedAt: (t) => centreAt(t) + p.slope * (t - p.ref) };
    },
  };
}

/** Indexes of the points in each of `size` groups. */
function indexGroups(keys: Uint8Array, size: number): number[][] {
  const groups = Array.from({ length: size }, (): number[] => []);
  keys.forEach((k, i) => groups[k]!.push(i));
  return groups;
}

/** Sum of squared deviations of the training times from their mean. */
function timeSpread(train: readonly TimedValue[]): number {
  const mean = meanTime(train);
  return train.reduce((a, p) => a + (p.t - mean) ** 2, 0);
}

const meanTime = (points: readonly TimedValue[]): number => points.reduce((a, p) => a + p.t, 0) / points.length;

/**
 * Extrapolating the slope to `now` adds its own error, largest when the same-phase points
 * (centred at `ownMean`) are old: Var(slope) ~ sigma^2 / Sxx, with 10% more for Theil–Sen's
 * lower efficiency.
 */
function slopeVariance(sxx: number, ownMean: number, now: number, trend: boolean): number {
  if (!trend) return 0;
  const reach = now - ownMean;
  return sxx > 0 ? (1.1 * reach * reach) / sxx : 0;
}

function groupBy<P>(points: readonly P[], key: (p: P, i: number) => number): Map<number, P[]> {
  const groups = new Map<number, P[]>();
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    const k = key(p, i);
    const group = groups.get(k);
    if (group) group.push(p);
    else groups.set(k, [p]);
  }
  return groups;
}
