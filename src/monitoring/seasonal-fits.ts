// Seasonal level fits over a window of timed values: one season (same hour, same weekday) with
// additive noise, or hour x weekday multiplied, with noise relative to the level. Pure math.
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

export type Seasonality = "none" | "hour_of_day" | "day_of_week" | "hour_and_weekday";
type SingleSeason = Exclude<Seasonality, "hour_and_weekday">;

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

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Same-phase points needed before a seasonal model may judge (two Mondays, two 9 o'clocks). */
export const MIN_PHASE_POINTS = 2;
/** Points of today's weekday needed before hour x weekday may judge: a weekday seen for hours. */
const MIN_WEEKDAY_POINTS = 12;

export function fitSeasonal(train: readonly TimedValue[], now: number, s: Seasonality, o: SeasonOptions): SeasonalFit | null {
  return s === "hour_and_weekday" ? fitHourAndWeekday(train, now, o) : fitSingleSeason(train, now, s, o);
}

/**
 * Detrends the window to `now` with a Theil–Sen slope and takes the median of the points in
 * the same phase as `now` as the expectation. The noise comes from leave-one-out residuals
 * within each phase; the prediction scale adds the uncertainty of a median of only a few
 * same-phase points and of extrapolating the slope.
 */
function fitSingleSeason(train: readonly TimedValue[], now: number, s: SingleSeason, o: SeasonOptions): SeasonalFit | null {
  const phaseNow = phaseOf(now, s, o.timeZone);
  const groups = groupBy(train, (p) => phaseOf(p.t, s, o.timeZone));
  const own = groups.get(phaseNow);
  if (own === undefined || own.length < MIN_PHASE_POINTS) return null;
  // Same weekday means another week: on hourly points, two hours of one Monday are no trend.
  const slope = o.trend ? theilSenSlope([...groups.values()], s === "day_of_week" ? 6 * DAY_MS : 0) : 0;

  const centres = new Map<number, number>();
  const residuals: number[] = [];
  let groupsUsed = 0;
  for (const [phase, group] of groups) {
    const detrended = group.map((p) => p.v - slope * (p.t - now));
    centres.set(phase, median(detrended));
    if (detrended.length < 2) continue;
    groupsUsed++;
    for (const r of leaveOneOutResiduals(detrended)) residuals.push(r);
  }
  // Each phase median and the slope use up a degree of freedom.
  const dof = residuals.length - groupsUsed - (o.trend ? 1 : 0);
  if (dof < 2) return null;
  const factor = Math.sqrt(1 + medianVariance(own.length) + slopeVariance(train, own, now, o.trend));
  const expected = centres.get(phaseNow)!;
  const fallback = median([...centres.values()]);
  const sigma = robustSigma(residuals);
  const inOrder = train.map((p) => p.v - slope * (p.t - now) - centres.get(phaseOf(p.t, s, o.timeZone))!);
  const scale = sigma * factor * persistenceFactor(inOrder, sigma);
  return { seasonality: s, expected, scale, dof, phasePoints: own.length, slopePerDay: slope * DAY_MS,
    criterion: scale * tailPenalty(residuals, sigma),
    expectedAt: (t) => (centres.get(phaseOf(t, s, o.timeZone)) ?? fallback) + slope * (t - now) };
}

/**
 * Hourly data usually has a daily cycle whose height depends on the weekday (quiet weekends,
 * a slow Monday): value = hour profile x weekday factor, found by alternating medians of
 * ratios, so it needs one week of history instead of two of each hour of the week. Counts
 * vary in proportion to their level, so the noise is relative too: a quiet night is not
 * judged with the margin of the busy noon. Only for data that is never negative.
 */
function fitHourAndWeekday(train: readonly TimedValue[], now: number, o: SeasonOptions): SeasonalFit | null {
  const n = train.length;
  if (train.some((p) => p.v < 0)) return null;
  const hourOf = (t: number) => phaseOf(t, "hour_of_day", o.timeZone);
  const dayOf = (t: number) => phaseOf(t, "day_of_week", o.timeZone);
  // Flat arrays, not objects: this runs for every candidate of every judgement.
  const hour = Uint8Array.from(train, (p) => hourOf(p.t));
  const day = Uint8Array.from(train, (p) => dayOf(p.t));
  const byHour = indexGroups(hour, 24);
  const byDay = indexGroups(day, 7);
  const ownHour = byHour[hourOf(now)]!;
  const ownDay = byDay[dayOf(now)]!;
  if (ownHour.length < MIN_PHASE_POINTS || ownDay.length < MIN_WEEKDAY_POINTS) return null;
  // Trend from the same hour of the same weekday only: within a single week a quiet weekend
  // followed by busy weekdays would pass for growth. No trend before two weeks of history.
  const slope = o.trend ? theilSenSlope(indexGroups(Uint8Array.from(train, (_, i) => day[i]! * 24 + hour[i]!), 168)
    .map((group) => group.map((i) => train[i]!))) : 0;
  const v = Float64Array.from(train, (p) => p.v - slope * (p.t - now));

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
  const expected = hours[hourOf(now)]! * days[dayOf(now)]!;
  if (dof < 2 || !(expected > 0)) return null;
  // Fitted in-sample, so widen by the parameters used; then add the error of both medians.
  const rawSigma = robustSigma(residuals);
  const sigma = rawSigma * Math.sqrt(residuals.length / dof);
  const medianError = (Math.PI / 2) * (1 / ownHour.length + 1 / ownDay.length);
  const factor = Math.sqrt(1 + medianError + slopeVariance(train, ownHour.map((i) => train[i]!), now, o.trend));
  const hourFallback = median([...hours].filter((_, h) => byHour[h]!.length > 0));
  const centreAt = (t: number) => {
    const h = hourOf(t);
    return (byHour[h]!.length > 0 ? hours[h]! : hourFallback) * days[dayOf(t)]!;
  };
  const widen = factor * persistenceFactor(residuals, rawSigma);
  return { seasonality: "hour_and_weekday", expected, scale: sigma * expected * widen, dof, phasePoints: ownHour.length,
    slopePerDay: slope * DAY_MS, criterion: sigma * median(levels) * widen * tailPenalty(residuals, rawSigma),
    expectedAt: (t) => centreAt(t) + slope * (t - now) };
}

/** Indexes of the points in each of `size` groups. */
function indexGroups(keys: Uint8Array, size: number): number[][] {
  const groups = Array.from({ length: size }, (): number[] => []);
  keys.forEach((k, i) => groups[k]!.push(i));
  return groups;
}

/**
 * Extrapolating the slope to `now` adds its own error, largest when the same-phase points are
 * old: Var(slope) ~ sigma^2 / Sxx, with 10% more for Theil–Sen's lower efficiency.
 */
function slopeVariance(train: readonly TimedValue[], own: readonly TimedValue[], now: number, trend: boolean): number {
  if (!trend) return 0;
  const meanT = train.reduce((a, p) => a + p.t, 0) / train.length;
  const sxx = train.reduce((a, p) => a + (p.t - meanT) ** 2, 0);
  const reach = now - own.reduce((a, p) => a + p.t, 0) / own.length;
  return sxx > 0 ? (1.1 * reach * reach) / sxx : 0;
}

function groupBy<P>(points: readonly P[], key: (p: P) => number): Map<number, P[]> {
  const groups = new Map<number, P[]>();
  for (const p of points) {
    const k = key(p);
    const group = groups.get(k);
    if (group) group.push(p);
    else groups.set(k, [p]);
  }
  return groups;
}

const weekdayIndex: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };
const zoneFormats = new Map<string, Intl.DateTimeFormat>();
/** Zone lookups are slow; every zone offset is a multiple of 15 minutes, so cache per quarter hour. */
const zonePhases = new Map<string, [hour: number, weekday: number]>();
const QUARTER_MS = 15 * 60 * 1000;

/** Season of `t` in `timeZone`: the hour (0–23) or the weekday (0 = Sunday); 0 for none. */
export function phaseOf(t: number, season: SingleSeason, timeZone: string): number {
  if (season === "none") return 0;
  if (timeZone === "UTC") {
    // 1970-01-01 was a Thursday.
    return season === "hour_of_day" ? Math.floor(t / HOUR_MS) % 24 : (Math.floor(t / DAY_MS) + 4) % 7;
  }
  const key = `${timeZone}:${Math.floor(t / QUARTER_MS)}`;
  let phases = zonePhases.get(key);
  if (phases === undefined) {
    let format = zoneFormats.get(timeZone);
    if (format === undefined) {
      format = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", hour: "numeric", weekday: "short" });
      zoneFormats.set(timeZone, format);
    }
    const parts = format.formatToParts(t);
    const hour = Number(parts.find((p) => p.type === "hour")?.value ?? 0) % 24;
    phases = [hour, weekdayIndex[parts.find((p) => p.type === "weekday")?.value ?? "Sun"] ?? 0];
    if (zonePhases.size >= 50_000) zonePhases.clear(); // a few years of quarter hours; then start over
    zonePhases.set(key, phases);
  }
  return season === "hour_of_day" ? phases[0] : phases[1];
}
