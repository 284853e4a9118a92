// Robust statistics for the baselines: median, MAD and the Theil–Sen slope. Pure functions,
// no I/O; one outlier in a window of row counts must not move any of these much.

/** Converts a median absolute deviation into a standard deviation for Gaussian noise. */
export const MAD_TO_SIGMA = 1.4826;
/** Same for the mean absolute deviation (sqrt(pi/2)), used only when the MAD is zero. */
export const MEAN_AD_TO_SIGMA = 1.2533;

/** Median of the values; NaN for an empty list. Does not modify its input. */
export function median(values: readonly number[]): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  // Selection, not sorting: the streaming bench takes millions of medians.
  const copy = Float64Array.from(values);
  const upper = select(copy, n >> 1);
  if (n % 2 === 1) return upper;
  let lower = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n >> 1; i++) if (copy[i]! > lower) lower = copy[i]!;
  return (lower + upper) / 2;
}

/** Hoare's quickselect: puts the k-th smallest at index k, smaller ones before it. */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const tmp = a[i]!;
        a[i++] = a[j]!;
        a[j--] = tmp;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k]!;
}

/**
 * Robust standard deviation of residuals that are already centred. The MAD alone is robust
 * but inefficient (a window of 28 daily points estimates sigma like 10 Gaussian points would),
 * so it only sets a clipping level: the result is the root mean square of the residuals
 * winsorized at 3 MADs-as-sigma, which keeps ~95% efficiency while one outlier can add at most
 * 9 sigma^2 / n. When more than half the residuals are exactly zero (integer counts that rarely
 * change) the mean absolute deviation sets the level instead; 0 only for a constant series.
 */
export function robustSigma(residuals: readonly number[]): number {
  const n = residuals.length;
  if (n === 0) return 0;
  const abs = residuals.map(Math.abs);
  let level = MAD_TO_SIGMA * median(abs);
  if (level === 0) level = (MEAN_AD_TO_SIGMA * abs.reduce((a, b) => a + b, 0)) / n;
  if (level === 0) return 0;
  const clip = 3 * level;
  let sumSquares = 0;
  for (const a of abs) sumSquares += Math.min(a, clip) ** 2;
  return Math.sqrt(sumSquares / n);
}

/**
 * How badly a model misses its own history, as a factor on its scale: the exponentiated
 * mean Student-t (4 dof) log-loss of the residuals. Unlike the winsorized sigma it keeps
 * growing with the size of a miss (logarithmically), so a model that is wrong on every
 * Monday loses to the weekly one, while one shared outlier costs both models alike.
 */
export function tailPenalty(residuals: readonly number[], sigma: number): number {
  if (residuals.length === 0) return 1;
  const s = Math.max(sigma, Number.MIN_VALUE);
  let loss = 0;
  for (const r of residuals) loss += Math.log1p((r / s) ** 2 / 4);
  return Math.exp((2.5 * loss) / residuals.length);
}

/**
 * How much runs of same-sign residuals (in time order) widen a level model's real error:
 * sqrt((1 + rho) / (1 - rho)), the long-run variance factor of a lag-1 autocorrelation rho,
 * counting only the part of rho beyond two standard errors of chance. A running total around
 * a trend line wanders like a random walk: it gets a large factor, and loses to the change
 * model. White noise gets 1.
 */
export function persistenceFactor(residuals: readonly number[], sigma: number): number {
  const n = residuals.length;
  if (n < 8 || !(sigma > 0)) return 1;
  const clip = 3 * sigma;
  const c = residuals.map((r) => Math.max(-clip, Math.min(clip, r)));
  let lagged = 0;
  let squares = c[0]! ** 2;
  for (let i = 1; i < n; i++) {
    lagged += c[i]! * c[i - 1]!;
    squares += c[i]! ** 2;
  }
  const rho = Math.min(0.9, Math.max(0, lagged / squares - 2 / Math.sqrt(n)));
  return Math.sqrt((1 + rho) / (1 - rho));
}

// n * Var(median of n standard Gaussians), simulated (400k draws each); tends to pi/2.
const MEDIAN_VARIANCE_TIMES_N = [1, 1, 1.344, 1.198, 1.43, 1.288, 1.472, 1.347, 1.494, 1.379, 1.517, 1.405,
  1.522, 1.426, 1.526, 1.444, 1.529, 1.456, 1.538, 1.469];

/** Variance of the median of n Gaussian points, in units of one point's variance. */
export function medianVariance(n: number): number {
  if (n < 1) return Number.POSITIVE_INFINITY;
  return (MEDIAN_VARIANCE_TIMES_N[n - 1] ?? Math.PI / 2) / n;
}

/**
 * Student-t quantile matching the Gaussian quantile z at `dof` degrees of freedom
 * (Cornish–Fisher expansion, within 1% for dof >= 5). Turns a z threshold into the wider one
 * that keeps the same false alarm rate when sigma itself was estimated from few points.
 */
export function studentQuantile(z: number, dof: number): number {
  const v = Math.max(dof, 3);
  const z2 = z * z;
  const g1 = (z * (z2 + 1)) / 4;
  const g2 = (z * (5 * z2 * z2 + 16 * z2 + 3)) / 96;
  const g3 = (z * (3 * z2 ** 3 + 19 * z2 * z2 + 17 * z2 - 15)) / 384;
  const g4 = (z * (79 * z2 ** 4 + 776 * z2 ** 3 + 1482 * z2 * z2 - 1920 * z2 - 945)) / 92160;
  return z + g1 / v + g2 / v ** 2 + g3 / v ** 3 + g4 / v ** 4;
}

/**
 * Leave-one-out residuals of a group: each value minus the median of the others, the exact
 * analogue of "new point minus the median of its history". Divided by their expected spread
 * (sqrt(1 + medianVariance(n - 1))) so groups of any size pool into one sigma estimate.
 */
export function leaveOneOutResiduals(values: readonly number[]): number[] {
  const n = values.length;
  if (n < 2) return [];
  const sorted = Float64Array.from(values).sort();
  const m = n - 1;
  const norm = Math.sqrt(1 + medianVariance(m));
  const at = (j: number, skip: number): number => sorted[j < skip ? j : j + 1]!;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const centre = m % 2 === 1 ? at((m - 1) / 2, i) : (at(m / 2 - 1, i) + at(m / 2, i)) / 2;
    out.push((sorted[i]! - centre) / norm);
  }
  return out;
}

export interface TimedValue {
  t: number;
  v: number;
}

/**
 * Theil–Sen slope (value per ms): the median of the slopes between pairs of points taken
 * within the same group and at least `minGap` ms apart. Grouping by seasonal phase compares
 * Monday with Monday, so a weekly pattern does not bias the trend; the gap keeps two hours of
 * the same Monday from measuring the daily cycle instead. Large groups are thinned to their
 * most recent points so the pair count stays near `pairBudget`. Returns 0 without pairs.
 */
export function theilSenSlope(groups: readonly (readonly TimedValue[])[], minGap = 0, pairBudget = 600): number {
  const usable = groups.filter((g) => g.length >= 2);
  if (usable.length === 0) return 0;
  const perGroup = Math.max(2, Math.floor(Math.sqrt((2 * pairBudget) / usable.length)));
  const slopes: number[] = [];
  for (const group of usable) {
    const pts = thinToRecent(group, perGroup);
    for (let i = 0; i < pts.length; i++) {
      for (let j = i + 1; j < pts.length; j++) {
        const a = pts[i]!;
        const b = pts[j]!;
        const dt = b.t - a.t;
        if (dt !== 0 && Math.abs(dt) >= minGap) slopes.push((b.v - a.v) / dt);
      }
    }
  }
  return slopes.length === 0 ? 0 : median(slopes);
}

/** Keeps at most `max` points, evenly strided and always including the newest one. */
function thinToRecent(points: readonly TimedValue[], max: number): readonly TimedValue[] {
  if (points.length <= max) return points;
  const stride = points.length / max;
  const kept: TimedValue[] = [];
  for (let k = max - 1; k >= 0; k--) kept.push(points[points.length - 1 - Math.floor(k * stride)]!);
  return kept;
}
